"""Configuration: defaults, every error naming its variable, all errors at once, `.env` precedence, gaps in N."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.config import (
    SERVER_PREFIX,
    ConfigError,
    HostKeyPolicy,
    Settings,
    likely_typos,
    load_settings,
    read_environment,
)
from tests.support.cli import cli
from tests.support.local_http import HttpServer

ONE_SERVER = {"PORACLE_SERVER_1_HOST": "192.0.2.10", "PORACLE_SERVER_1_API": "http://192.0.2.10:3030"}


def problems_of(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    # The exception text is what the CLI prints: it must carry every problem too.
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


def test_every_global_default() -> None:
    settings = load_settings(ONE_SERVER)
    assert settings.discord_token is None
    assert settings.discord_guild_id is None
    assert settings.discord_admin_role_ids == frozenset()
    assert settings.discord_alert_channel_id is None
    assert settings.ssh_key_path == Path("/app/ssh_key")
    assert settings.ssh_known_hosts == Path("/app/data/known_hosts")
    assert settings.ssh_host_key_policy is HostKeyPolicy.ACCEPT_NEW
    assert settings.ssh_timeout == 30.0
    assert settings.ssh_connect_timeout == 10.0
    assert settings.health_timeout == 5.0
    assert settings.health_interval == 60.0
    assert settings.down_after == 2
    assert settings.up_after == 1
    assert settings.data_dir == Path("/app/data")
    assert settings.status_channel_id is None
    assert settings.remind_every == 0
    assert settings.discord_alert_role_id is None
    assert (settings.maintenance, settings.timezone) == (None, "UTC")
    assert settings.maintenance_schedule(settings.servers[0]).until(datetime.now(UTC)) is None


def test_every_server_default() -> None:
    (server,) = load_settings(ONE_SERVER).servers
    assert server.index == 1
    assert server.name == "Server 1"
    assert server.host == "192.0.2.10"
    assert server.api == "http://192.0.2.10:3030"
    assert server.health_path == "/health"
    assert server.health_url == "http://192.0.2.10:3030/health"
    assert server.ssh_user == "root"
    assert server.ssh_port == 22
    assert server.ssh_key_path == Path("/app/ssh_key")
    assert server.restart_cmd == "pm2 restart all"
    assert server.ssh_target == "root@192.0.2.10:22"
    assert server.maintenance is None


def test_every_value_set() -> None:
    settings = load_settings(
        {
            "DISCORD_TOKEN": "abc.def.ghi",
            "DISCORD_GUILD_ID": "123",
            "DISCORD_ADMIN_ROLE_IDS": " 7, 5 ,,9 ",
            "DISCORD_ALERT_CHANNEL_ID": "44",
            "DISCORD_ALERT_ROLE_ID": "45",
            "PORACLE_MAINTENANCE": "daily 04:00-04:30",
            "PORACLE_TIMEZONE": "Europe/Berlin",
            "PORACLE_SSH_KEY_PATH": "/keys/bot",
            "PORACLE_SSH_KNOWN_HOSTS": "/keys/known",
            "PORACLE_SSH_HOST_KEY_POLICY": "strict",
            "PORACLE_SSH_TIMEOUT": "12.5",
            "PORACLE_SSH_CONNECT_TIMEOUT": "3",
            "PORACLE_HEALTH_TIMEOUT": "0.5",
            "PORACLE_HEALTH_INTERVAL": "15",
            "PORACLE_DOWN_AFTER": "4",
            "PORACLE_UP_AFTER": "3",
            "PORACLE_DATA_DIR": "/data",
            "PORACLE_SERVER_1_NAME": "Main",
            "PORACLE_SERVER_1_HOST": "poracle.example.org",
            "PORACLE_SERVER_1_API": "https://poracle.example.org:8443/api/",
            "PORACLE_SERVER_1_HEALTH_PATH": "/status",
            "PORACLE_SERVER_1_SSH_USER": "deploy",
            "PORACLE_SERVER_1_SSH_PORT": "2222",
            "PORACLE_SERVER_1_RESTART_CMD": "pm2 restart poracle",
            "PORACLE_SERVER_2_HOST": "2001:db8::1",
            "PORACLE_SERVER_2_API": "http://[2001:db8::1]:3030",
            "PORACLE_SERVER_2_SSH_KEY_PATH": "/keys/other",
            "PORACLE_SERVER_2_MAINTENANCE": "none",
        }
    )
    assert settings.discord_token is not None
    assert settings.discord_token.get_secret_value() == "abc.def.ghi"
    assert settings.discord_guild_id == 123
    assert settings.discord_admin_role_ids == frozenset({5, 7, 9})
    assert settings.discord_alert_channel_id == 44
    assert settings.discord_alert_role_id == 45
    assert (settings.maintenance, settings.timezone) == ("daily 04:00-04:30", "Europe/Berlin")
    assert settings.ssh_known_hosts == Path("/keys/known")
    assert settings.ssh_host_key_policy is HostKeyPolicy.STRICT
    assert (settings.ssh_timeout, settings.ssh_connect_timeout) == (12.5, 3.0)
    assert (settings.health_timeout, settings.health_interval) == (0.5, 15.0)
    assert (settings.down_after, settings.up_after) == (4, 3)
    assert settings.data_dir == Path("/data")
    main, second = settings.servers
    assert main.name == "Main"
    assert main.health_url == "https://poracle.example.org:8443/api/status"  # the trailing / is dropped
    assert main.ssh_target == "deploy@poracle.example.org:2222"
    assert main.restart_cmd == "pm2 restart poracle"
    assert main.ssh_key_path == Path("/keys/bot")  # the global key is every server's default
    assert second.ssh_key_path == Path("/keys/other")
    assert second.host == "2001:db8::1"
    at_four_ten = datetime(2026, 3, 2, 3, 10, tzinfo=UTC)  # 04:10 in Berlin
    assert settings.maintenance_schedule(main).until(at_four_ten) == datetime(2026, 3, 2, 3, 30, tzinfo=UTC)
    assert settings.maintenance_schedule(second).until(at_four_ten) is None  # "none" overrides the default


@pytest.mark.parametrize(
    ("env", "variable", "words"),
    [
        ({"PORACLE_SERVER_3_API": "http://192.0.2.1:3030"}, "PORACLE_SERVER_3_HOST", "required"),
        ({"PORACLE_SERVER_3_HOST": "192.0.2.1"}, "PORACLE_SERVER_3_API", "required"),
        (
            {"PORACLE_SERVER_3_HOST": "192.0.2.1", "PORACLE_SERVER_3_API": "192.0.2.1:3030"},
            "PORACLE_SERVER_3_API",
            "http",
        ),
        ({"PORACLE_SERVER_3_HOST": "192.0.2.1", "PORACLE_SERVER_3_API": "ftp://h"}, "PORACLE_SERVER_3_API", "http"),
        ({"PORACLE_SERVER_3_HOST": "h", "PORACLE_SERVER_3_API": "http://h:99999"}, "PORACLE_SERVER_3_API", "port"),
        ({"PORACLE_SERVER_3_HOST": "h", "PORACLE_SERVER_3_API": "http://h:30x0"}, "PORACLE_SERVER_3_API", "port"),
        ({"PORACLE_SERVER_3_HOST": "h", "PORACLE_SERVER_3_API": "http://h/?a=1"}, "PORACLE_SERVER_3_API", "query"),
        ({"PORACLE_SERVER_3_HOST": "h", "PORACLE_SERVER_3_API": "http://[::1"}, "PORACLE_SERVER_3_API", "IPv6"),
        ({"PORACLE_SERVER_3_HOST": "bad host!", "PORACLE_SERVER_3_API": "http://h"}, "PORACLE_SERVER_3_HOST", "host"),
        (
            {"PORACLE_SERVER_3_HOST": "h", "PORACLE_SERVER_3_API": "http://h", "PORACLE_SERVER_3_SSH_PORT": "ssh"},
            "PORACLE_SERVER_3_SSH_PORT",
            "integer",
        ),
        (
            {"PORACLE_SERVER_3_HOST": "h", "PORACLE_SERVER_3_API": "http://h", "PORACLE_SERVER_3_SSH_PORT": "70000"},
            "PORACLE_SERVER_3_SSH_PORT",
            "from 1 to 65535",
        ),
        (
            {"PORACLE_SERVER_3_HOST": "h", "PORACLE_SERVER_3_API": "http://h", "PORACLE_SERVER_3_HEALTH_PATH": "x"},
            "PORACLE_SERVER_3_HEALTH_PATH",
            "/",
        ),
        (
            {"PORACLE_SERVER_3_HOST": "h", "PORACLE_SERVER_3_API": "http://h", "PORACLE_SERVER_3_SSH_USER": "a b"},
            "PORACLE_SERVER_3_SSH_USER",
            "pattern",
        ),
        (
            {"PORACLE_SERVER_3_HOST": "h", "PORACLE_SERVER_3_API": "http://h", "PORACLE_SERVER_3_NAME": "All"},
            "PORACLE_SERVER_3_NAME",
            "reserved",
        ),
        (
            {"PORACLE_SERVER_3_HOST": "h", "PORACLE_SERVER_3_API": "http://h", "PORACLE_SERVER_3_NAME": " ALL "},
            "PORACLE_SERVER_3_NAME",
            "reserved",
        ),
        ({**ONE_SERVER, "PORACLE_SERVER_1_HSOT": "h"}, "PORACLE_SERVER_1_HSOT", "unknown server setting"),
        ({**ONE_SERVER, "PORACLE_SERVER_1_PORT": "22"}, "PORACLE_SERVER_1_PORT", "unknown server setting"),
        ({**ONE_SERVER, "PORACLE_SERVER_X_HOST": "h"}, "PORACLE_SERVER_X_HOST", "not a server variable"),
        ({**ONE_SERVER, "PORACLE_SERVER_01_HOST": "h"}, "PORACLE_SERVER_01_HOST", "not a server variable"),
        ({**ONE_SERVER, "PORACLE_SERVER_1_host": "h"}, "PORACLE_SERVER_1_host", "not a server variable"),
        ({**ONE_SERVER, "PORACLE_SSH_TIMEOUT": "soon"}, "PORACLE_SSH_TIMEOUT", "number"),
        ({**ONE_SERVER, "PORACLE_SSH_TIMEOUT": "0"}, "PORACLE_SSH_TIMEOUT", "from 0.1 to 3600 seconds"),
        ({**ONE_SERVER, "PORACLE_SSH_CONNECT_TIMEOUT": "-1"}, "PORACLE_SSH_CONNECT_TIMEOUT", "from 0.1 to 3600"),
        ({**ONE_SERVER, "PORACLE_HEALTH_TIMEOUT": "5s"}, "PORACLE_HEALTH_TIMEOUT", "number"),
        ({**ONE_SERVER, "PORACLE_HEALTH_INTERVAL": "1m"}, "PORACLE_HEALTH_INTERVAL", "number"),
        ({**ONE_SERVER, "PORACLE_DOWN_AFTER": "two"}, "PORACLE_DOWN_AFTER", "integer"),
        ({**ONE_SERVER, "PORACLE_SSH_HOST_KEY_POLICY": "yes"}, "PORACLE_SSH_HOST_KEY_POLICY", "accept-new"),
        ({**ONE_SERVER, "DISCORD_GUILD_ID": "my guild"}, "DISCORD_GUILD_ID", "integer"),
        ({**ONE_SERVER, "DISCORD_ADMIN_ROLE_IDS": "1,admins"}, "DISCORD_ADMIN_ROLE_IDS", "integer"),
        ({}, "PORACLE_SERVER_1_HOST", "no servers configured"),
        ({**ONE_SERVER, "PORACLE_REMIND_EVERY": "-5"}, "PORACLE_REMIND_EVERY", "from 0 to 10080 minutes"),
        ({**ONE_SERVER, "PORACLE_STATUS_CHANNEL_ID": "#status"}, "PORACLE_STATUS_CHANNEL_ID", "integer"),
        ({**ONE_SERVER, "DISCORD_ALERT_ROLE_ID": "@oncall"}, "DISCORD_ALERT_ROLE_ID", "integer"),
        ({**ONE_SERVER, "DISCORD_ALERT_ROLE_ID": "0"}, "DISCORD_ALERT_ROLE_ID", "not a Discord id"),
        ({**ONE_SERVER, "PORACLE_MAINTENANCE": "sunday 2-3"}, "PORACLE_MAINTENANCE", "is not a window"),
        ({**ONE_SERVER, "PORACLE_MAINTENANCE": "sun 02:00-03:00,"}, "PORACLE_MAINTENANCE", "empty window"),
        ({**ONE_SERVER, "PORACLE_TIMEZONE": "CEST"}, "PORACLE_TIMEZONE", "unknown time zone 'CEST'; use an IANA"),
        (
            {**ONE_SERVER, "PORACLE_SERVER_1_MAINTENANCE": "daily 04:00-04:00"},
            "PORACLE_SERVER_1_MAINTENANCE",
            "is empty",
        ),
    ],
)
def test_each_error_names_its_variable(env: dict[str, str], variable: str, words: str) -> None:
    problems = problems_of(env)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{variable}: "), problems
    assert words in problems[0]


def test_a_block_with_neither_host_nor_api_names_both() -> None:
    assert problems_of({**ONE_SERVER, "PORACLE_SERVER_3_NAME": "Lonely", "PORACLE_SERVER_3_SSH_USER": "me"}) == [
        "PORACLE_SERVER_3_HOST: required",
        "PORACLE_SERVER_3_API: required",
    ]


def test_a_bad_value_is_quoted_back() -> None:
    (problem,) = problems_of({**ONE_SERVER, "PORACLE_SERVER_1_SSH_PORT": "twenty-two"})
    assert "'twenty-two'" in problem


def test_duplicate_names_ignore_case() -> None:
    (problem,) = problems_of(
        {
            **ONE_SERVER,
            "PORACLE_SERVER_1_NAME": "Main",
            "PORACLE_SERVER_2_HOST": "h2",
            "PORACLE_SERVER_2_API": "http://h2",
            "PORACLE_SERVER_2_NAME": "MAIN",
        }
    )
    assert problem.startswith("PORACLE_SERVER_2_NAME: ")
    assert "'MAIN'" in problem and "server 1" in problem


def test_an_explicit_name_may_not_take_another_servers_default_name() -> None:
    (problem,) = problems_of(
        {
            **ONE_SERVER,
            "PORACLE_SERVER_2_HOST": "h2",
            "PORACLE_SERVER_2_API": "http://h2",
            "PORACLE_SERVER_2_NAME": "server 1",
        }
    )
    assert problem.startswith("PORACLE_SERVER_2_NAME: ")


def test_errors_are_reported_all_at_once() -> None:
    problems = problems_of(
        {
            "PORACLE_SSH_TIMEOUT": "soon",
            "DISCORD_GUILD_ID": "x",
            "PORACLE_SERVER_1_NAME": "no host or api",
            "PORACLE_SERVER_2_HOST": "h",
            "PORACLE_SERVER_2_API": "nonsense",
            "PORACLE_SERVER_2_SSH_PORT": "abc",
            "PORACLE_SERVER_3_HOST": "h",
            "PORACLE_SERVER_3_API": "http://h",
            "PORACLE_SERVER_3_NAME": "all",
            "PORACLE_SERVER_4_HOST": "h",
            "PORACLE_SERVER_4_API": "http://h",
            "PORACLE_SERVER_4_NAME": "A",
            "PORACLE_SERVER_5_HOST": "h",
            "PORACLE_SERVER_5_API": "http://h",
            "PORACLE_SERVER_5_NAME": "a",
            "PORACLE_SERVER_6_RESTRT_CMD": "x",
        }
    )
    named = sorted(problem.split(":", 1)[0] for problem in problems)
    assert named == sorted(
        [
            "PORACLE_SSH_TIMEOUT",
            "DISCORD_GUILD_ID",
            "PORACLE_SERVER_1_HOST",
            "PORACLE_SERVER_1_API",
            "PORACLE_SERVER_2_API",
            "PORACLE_SERVER_2_SSH_PORT",
            "PORACLE_SERVER_3_NAME",
            "PORACLE_SERVER_5_NAME",
            "PORACLE_SERVER_6_RESTRT_CMD",
        ]
    )


def test_gaps_in_n_keep_order_with_no_cap() -> None:
    env: dict[str, str] = {}
    for number in (150, 12, 1, 5):  # deliberately out of order: the result must follow N, numerically
        env[f"PORACLE_SERVER_{number}_HOST"] = f"h{number}"
        env[f"PORACLE_SERVER_{number}_API"] = f"http://h{number}:3030"
    servers = load_settings(env).servers
    assert [s.index for s in servers] == [1, 5, 12, 150]
    assert [s.name for s in servers] == ["Server 1", "Server 5", "Server 12", "Server 150"]
    assert [s.host for s in servers] == ["h1", "h5", "h12", "h150"]


def test_many_servers() -> None:
    env = {}
    for number in range(1, 301):
        env[f"PORACLE_SERVER_{number}_HOST"] = "192.0.2.1"
        env[f"PORACLE_SERVER_{number}_API"] = f"http://192.0.2.1:{number + 1000}"
    servers = load_settings(env).servers
    assert len(servers) == 300
    assert servers[-1].api == "http://192.0.2.1:1300"


def test_lookup_by_name_ignores_case_and_spaces() -> None:
    settings = load_settings({**ONE_SERVER, "PORACLE_SERVER_1_NAME": "Main Server"})
    found = settings.server("  main SERVER ")
    assert found is not None and found.index == 1
    assert settings.server("main") is None


def test_empty_values_count_as_unset(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("PORACLE_SERVER_1_SSH_USER=\nPORACLE_SSH_TIMEOUT=\nPORACLE_SERVER_1_NAME=   \n")
    env = read_environment(env_file, {**ONE_SERVER, "PORACLE_SERVER_1_SSH_PORT": "", "DISCORD_TOKEN": "  "})
    settings = load_settings(env)
    assert settings.ssh_timeout == 30.0
    assert settings.discord_token is None
    (server,) = settings.servers
    assert (server.ssh_user, server.ssh_port, server.name) == ("root", 22, "Server 1")


def test_a_block_of_only_empty_values_is_no_server() -> None:
    settings = load_settings(
        read_environment(None, {**ONE_SERVER, "PORACLE_SERVER_2_HOST": "", "PORACLE_SERVER_2_API": ""})
    )
    assert len(settings.servers) == 1


def test_real_environment_wins_over_dotenv(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "PORACLE_HEALTH_TIMEOUT=3\n"
        "PORACLE_SSH_TIMEOUT=7\n"
        "PORACLE_SERVER_1_HOST=from-dotenv\n"
        "PORACLE_SERVER_1_API=http://from-dotenv:3030\n"
        "# a comment\n"
        'PORACLE_SERVER_1_RESTART_CMD="pm2 restart poracle # quoted"\n'
    )
    env = read_environment(env_file, {"PORACLE_HEALTH_TIMEOUT": "9", "PORACLE_SERVER_1_HOST": "from-env"})
    settings = load_settings(env)
    assert settings.health_timeout == 9.0  # the real environment wins
    assert settings.ssh_timeout == 7.0  # .env fills what the environment does not set
    (server,) = settings.servers
    assert server.host == "from-env"
    assert server.api == "http://from-dotenv:3030"
    assert server.restart_cmd == "pm2 restart poracle # quoted"


def test_an_empty_environment_variable_does_not_hide_the_dotenv_value(tmp_path: Path) -> None:
    # docker compose's `KEY: ${KEY}` passes an empty variable when the host has none: that is "unset",
    # so the value in .env must still apply.
    env_file = tmp_path / ".env"
    env_file.write_text("PORACLE_HEALTH_TIMEOUT=3\n")
    settings = load_settings(read_environment(env_file, {**ONE_SERVER, "PORACLE_HEALTH_TIMEOUT": ""}))
    assert settings.health_timeout == 3.0


def test_missing_dotenv_is_fine(tmp_path: Path) -> None:
    env = read_environment(tmp_path / "nope.env", ONE_SERVER)
    assert env == ONE_SERVER


def test_read_environment_defaults_to_the_process_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("PORACLE_DOWN_AFTER=5\nPORACLE_UP_AFTER=2\n")
    monkeypatch.setenv("PORACLE_UP_AFTER", "4")
    env = read_environment()
    assert env["PORACLE_DOWN_AFTER"] == "5"
    assert env["PORACLE_UP_AFTER"] == "4"


def test_require_discord() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(ONE_SERVER).require_discord()
    assert [p.split(":", 1)[0] for p in caught.value.problems] == ["DISCORD_TOKEN", "DISCORD_ADMIN_ROLE_IDS"]

    with pytest.raises(ConfigError) as caught:
        load_settings({**ONE_SERVER, "DISCORD_TOKEN": "t"}).require_discord()
    assert [p.split(":", 1)[0] for p in caught.value.problems] == ["DISCORD_ADMIN_ROLE_IDS"]

    with pytest.raises(ConfigError) as caught:
        load_settings({**ONE_SERVER, "DISCORD_ADMIN_ROLE_IDS": "1"}).require_discord()
    assert [p.split(":", 1)[0] for p in caught.value.problems] == ["DISCORD_TOKEN"]

    load_settings({**ONE_SERVER, "DISCORD_TOKEN": "t", "DISCORD_ADMIN_ROLE_IDS": "1"}).require_discord()


def test_variables_mask_the_token_and_show_defaults() -> None:
    settings = load_settings({**ONE_SERVER, "DISCORD_TOKEN": "very-secret-token"})
    shown = dict(settings.variables())
    assert "very-secret-token" not in repr(settings.variables())
    assert "very-secret-token" not in repr(settings)
    assert shown["DISCORD_TOKEN"] == "******** (set)"
    assert shown["DISCORD_GUILD_ID"] == "(unset)"
    assert shown["PORACLE_SSH_TIMEOUT"] == "30.0"
    assert shown["PORACLE_SERVER_1_SSH_PORT"] == "22"
    assert shown["PORACLE_SERVER_1_RESTART_CMD"] == "pm2 restart all"
    assert isinstance(settings, Settings)


# ------------------------------------------------------------------------------------- through the CLI


async def test_cli_bad_config_exits_2_and_touches_nothing(tmp_path: Path, api: HttpServer) -> None:
    url, seen = api.url, api.requests
    (tmp_path / ".env").write_text(
        f"PORACLE_SERVER_1_HOST=127.0.0.1\nPORACLE_SERVER_1_API={url}\nPORACLE_SERVER_2_HOST=127.0.0.1\n"
        "PORACLE_SSH_TIMEOUT=later\n"
    )
    # Prove the good server would have been checked: the same config without its problems reaches it.
    for bad in (True, False):
        if not bad:
            (tmp_path / ".env").write_text(f"PORACLE_SERVER_1_HOST=127.0.0.1\nPORACLE_SERVER_1_API={url}\n")
        run = await cli(tmp_path, "check")
        if bad:
            assert run.code == 2, run
            assert "PORACLE_SERVER_2_API" in run.err
            assert "PORACLE_SSH_TIMEOUT" in run.err
            assert seen == []
        else:
            assert run.code == 0, run
            assert seen == ["/health"]


async def test_cli_bad_maintenance_windows_exit_2_naming_each_variable_and_check_nothing(
    tmp_path: Path, api: HttpServer
) -> None:
    (tmp_path / ".env").write_text(
        f"PORACLE_SERVER_1_HOST=127.0.0.1\nPORACLE_SERVER_1_API={api.url}\nPORACLE_MAINTENANCE=daily 4:00\n"
        "PORACLE_SERVER_1_MAINTENANCE=sonday 02:00-03:00\nPORACLE_TIMEZONE=Europe/Nowhere\n"
    )
    run = await cli(tmp_path, "check")
    assert run.code == 2, run
    assert "PORACLE_MAINTENANCE: 'daily 4:00' is not a window" in run.err
    assert "PORACLE_SERVER_1_MAINTENANCE: unknown day 'sonday'" in run.err
    assert "PORACLE_TIMEZONE: unknown time zone 'Europe/Nowhere'" in run.err
    assert "Traceback" not in run.err
    assert api.requests == []


def test_a_misspelt_setting_is_pointed_out_and_others_are_left_alone() -> None:
    env = {**ONE_SERVER, "PORACLE_HEALTH_TIMOUT": "2", "PORACLE_WEB_PORT": "8082", "DISCORD_TOKN": "x"}
    assert likely_typos(env) == [
        "PORACLE_HEALTH_TIMOUT: not a setting; did you mean PORACLE_HEALTH_TIMEOUT? (ignored)",
        "DISCORD_TOKN: not a setting; did you mean DISCORD_TOKEN? (ignored)",
    ]
    assert likely_typos(ONE_SERVER) == []


# --------------------------------------------------------------------- well-formed but absurd values

SNOWFLAKE_30 = "123456789012345678901234567890"


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("PORACLE_SSH_TIMEOUT", "nan", "must be a number"),
        ("PORACLE_SSH_TIMEOUT", "inf", "must be a number"),
        ("PORACLE_SSH_TIMEOUT", "1e309", "must be a number"),
        ("PORACLE_SSH_TIMEOUT", "1e3", "must be a number"),
        ("PORACLE_SSH_TIMEOUT", "1_0", "must be a number"),
        ("PORACLE_SSH_TIMEOUT", "+5", "must be a number"),
        ("PORACLE_SSH_TIMEOUT", "\u0663\u0660", "must be a number"),  # Arabic-Indic 30: float() takes it
        ("PORACLE_SSH_TIMEOUT", "-0", "from 0.1 to 3600 seconds"),
        ("PORACLE_SSH_TIMEOUT", "0.05", "from 0.1 to 3600 seconds"),
        ("PORACLE_SSH_TIMEOUT", "3601", "from 0.1 to 3600 seconds"),
        ("PORACLE_SSH_CONNECT_TIMEOUT", "inf", "must be a number"),
        ("PORACLE_HEALTH_TIMEOUT", "99999999999999999999", "from 0.1 to 3600 seconds"),
        ("PORACLE_HEALTH_INTERVAL", "0.0001", "from 0.1 to 86400 seconds"),
        ("PORACLE_HEALTH_INTERVAL", "86401", "from 0.1 to 86400 seconds"),
        ("PORACLE_HEALTH_INTERVAL", "1000000000000000000", "from 0.1 to 86400 seconds"),
        ("PORACLE_DOWN_AFTER", "101", "from 1 to 100"),
        ("PORACLE_DOWN_AFTER", "99999999999999999999", "from 1 to 100"),
        ("PORACLE_DOWN_AFTER", "+2", "must be an integer"),
        ("PORACLE_DOWN_AFTER", "2.0", "must be an integer"),
        ("PORACLE_UP_AFTER", "0", "from 1 to 100"),
        ("PORACLE_UP_AFTER", "1_0", "must be an integer"),
        ("PORACLE_REMIND_EVERY", "10081", "from 0 to 10080 minutes"),
        ("PORACLE_REMIND_EVERY", "99999999999999999999", "from 0 to 10080 minutes"),
        ("DISCORD_GUILD_ID", SNOWFLAKE_30, "not a Discord id"),
        ("DISCORD_GUILD_ID", str(2**63), "not a Discord id"),
        ("DISCORD_GUILD_ID", "0", "not a Discord id"),
        ("DISCORD_GUILD_ID", "+5", "must be an integer"),
        ("DISCORD_GUILD_ID", "1.0", "must be an integer"),
        ("DISCORD_ALERT_CHANNEL_ID", str(2**63), "not a Discord id"),
        ("PORACLE_STATUS_CHANNEL_ID", SNOWFLAKE_30, "not a Discord id"),
        ("DISCORD_ADMIN_ROLE_IDS", f"1,{SNOWFLAKE_30}", "not a Discord id"),
        ("PORACLE_SERVER_1_SSH_PORT", "+22", "must be an integer"),
        ("PORACLE_SERVER_1_SSH_PORT", "22.0", "must be an integer"),
        ("PORACLE_SERVER_1_SSH_PORT", "\u0662\u0662", "must be an integer"),
        ("PORACLE_SERVER_1_API", "http://user:secret@192.0.2.10:3030", "user name or password"),
        ("PORACLE_SERVER_1_API", "http://token@192.0.2.10:3030", "user name or password"),
        ("PORACLE_SERVER_1_API", "http://192.0.2.10:0", "invalid port"),
        ("PORACLE_SERVER_1_API", "http://a..b:3030", "invalid host name"),
        ("PORACLE_SERVER_1_API", f"http://{'a' * 64}.example:3030", "invalid host name"),
    ],
)
def test_absurd_values_are_errors_naming_their_variable(variable: str, value: str, words: str) -> None:
    (problem,) = problems_of({**ONE_SERVER, variable: value})
    assert problem.startswith(f"{variable}: "), problem
    assert words in problem, problem


@pytest.mark.parametrize(
    ("variable", "value", "shown"),
    [
        ("PORACLE_SERVER_1_API", "http://alice:hunter2@192.0.2.10:3030", "http://********@192.0.2.10:3030"),
        ("PORACLE_SERVER_1_API", "https://hunter2@192.0.2.10", "https://********@192.0.2.10"),
        ("PORACLE_SERVER_1_API", "alice:hunter2@192.0.2.10:3030", "********@192.0.2.10:3030"),
        ("PORACLE_SERVER_1_API", "http://alice:hun/ter2@192.0.2.10", "http://********@192.0.2.10"),
    ],
)
def test_a_refused_url_is_quoted_without_its_user_name_or_password(variable: str, value: str, shown: str) -> None:
    (problem,) = problems_of({**ONE_SERVER, variable: value})
    assert problem.startswith(f"{variable}: "), problem
    assert "hunter2" not in problem and "alice" not in problem, problem
    assert f"(got {shown!r})" in problem, problem


def test_the_edges_of_every_range_are_allowed() -> None:
    settings = load_settings(
        {
            **ONE_SERVER,
            "PORACLE_SSH_TIMEOUT": "3600",
            "PORACLE_SSH_CONNECT_TIMEOUT": "0.1",
            "PORACLE_HEALTH_TIMEOUT": ".5",
            "PORACLE_HEALTH_INTERVAL": "86400",
            "PORACLE_DOWN_AFTER": "100",
            "PORACLE_UP_AFTER": "1",
            "PORACLE_REMIND_EVERY": "10080",
            "DISCORD_GUILD_ID": str(2**63 - 1),
            "PORACLE_SERVER_1_SSH_PORT": "65535",
            f"{SERVER_PREFIX}9999_HOST": "h",
            f"{SERVER_PREFIX}9999_API": "http://h",
        }
    )
    assert (settings.ssh_timeout, settings.ssh_connect_timeout, settings.health_timeout) == (3600, 0.1, 0.5)
    assert (settings.health_interval, settings.down_after, settings.remind_every) == (86400, 100, 10080)
    assert settings.discord_guild_id == 2**63 - 1
    assert [server.index for server in settings.servers] == [1, 9999]


@pytest.mark.parametrize(
    ("variable", "shown"),
    [
        ("PORACLE_SERVER_99999999999999999999_HOST", "PORACLE_SERVER_99999999999999999999_HOST"),
        ("PORACLE_SERVER_10000_HOST", "PORACLE_SERVER_10000_HOST"),
        ("PORACLE_SERVER_\u0661_HOST", "'PORACLE_SERVER_\\u0661_HOST'"),  # int() reads it as 1: not here
        ("PORACLE_SERVER_+2_HOST", "PORACLE_SERVER_+2_HOST"),
        ("PORACLE_SERVER_2_Host", "PORACLE_SERVER_2_Host"),
        ("PORACLE_SERVER_2HOST", "PORACLE_SERVER_2HOST"),
        ("PORACLE_SERVER_2_HOST\n", "'PORACLE_SERVER_2_HOST\\n'"),  # `$` in a regex would let it pass
        ("PORACLE_SERVER_2_HO\x1b[31mST", "'PORACLE_SERVER_2_HO\\x1b[31mST'"),
    ],
)
def test_malformed_server_variable_names_are_errors_naming_them(variable: str, shown: str) -> None:
    (problem,) = problems_of({**ONE_SERVER, variable: "192.0.2.99"})
    assert problem.startswith(f"{shown}: "), problem
    assert "server" in problem


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORACLE_SERVER_1_NAME", "Main\tServer"),
        ("PORACLE_SERVER_1_RESTART_CMD", "pm2 restart all\nreboot"),
        ("PORACLE_SERVER_1_HEALTH_PATH", "/health\r"),
        ("DISCORD_TOKEN", "secret-token\x1b[2J"),
        ("PORACLE_DATA_DIR", "/srv/\udcffdata"),  # a byte that is not UTF-8, from the environment
    ],
)
def test_control_characters_are_errors_that_do_not_show_the_value(variable: str, value: str) -> None:
    (problem,) = problems_of({**ONE_SERVER, variable: value})
    assert problem.startswith(f"{variable}: must be UTF-8 text without control characters"), problem
    assert value not in problem and "secret" not in problem


# ---------------------------------------------------------------- known_hosts follows the data directory


def test_known_hosts_lives_in_the_data_directory_unless_set() -> None:
    moved = load_settings({**ONE_SERVER, "PORACLE_DATA_DIR": "/srv/poracle"})
    assert moved.ssh_known_hosts == Path("/srv/poracle/known_hosts")
    both = load_settings({**ONE_SERVER, "PORACLE_DATA_DIR": "/srv/poracle", "PORACLE_SSH_KNOWN_HOSTS": "/keys/kh"})
    assert both.ssh_known_hosts == Path("/keys/kh")
    assert load_settings(ONE_SERVER).ssh_known_hosts == Path("/app/data/known_hosts")


# ------------------------------------------------------------------------ near-miss server variables


@pytest.mark.parametrize(
    ("variable", "meant"),
    [
        ("PORACLE_SEVRER_2_HOST", "PORACLE_SERVER_2_HOST"),
        ("PORACLE_SERVER2_HOST", "PORACLE_SERVER_2_HOST"),
        ("PORACLE_SERVERS_1_API", "PORACLE_SERVER_1_API"),
        ("PORACLESERVER_12_RESTART_CMD", "PORACLE_SERVER_12_RESTART_CMD"),
        ("PORACLE_SRVER_3_SSH_USER", "PORACLE_SERVER_3_SSH_USER"),
        ("poracle_server_2_host", "PORACLE_SERVER_2_HOST"),
        ("poracle_health_timeout", "PORACLE_HEALTH_TIMEOUT"),
    ],
)
def test_a_misspelt_server_variable_is_pointed_out_and_ignored(variable: str, meant: str) -> None:
    env = {**ONE_SERVER, variable: "192.0.2.99"}
    assert likely_typos(env) == [f"{variable}: not a setting; did you mean {meant}? (ignored)"]
    settings = load_settings(env)
    assert [server.host for server in settings.servers] == ["192.0.2.10"]


def test_a_shared_env_file_stays_quiet() -> None:
    # PoracleJS's own variables (config/custom-environment-variables.json), PoracleWeb's and others'.
    shared = {
        "PORACLE_SERVER_HOST": "0.0.0.0",
        "PORACLE_SERVER_PORT": "3030",
        "PORACLE_DB_HOST": "db",
        "PORACLE_DB_PORT": "3306",
        "PORACLE_DB_USER": "poracle",
        "PORACLE_IP_WHITELIST": '["127.0.0.1"]',
        "PORACLE_LANGUAGE": "en",
        "PORACLE_WEB_PORT": "8082",
        "DISCORD_ENABLED": "true",
        "REDIS_SERVER_1_HOST": "redis",
    }
    env = {**ONE_SERVER, **shared}
    assert likely_typos(env) == []
    assert len(load_settings(env).servers) == 1


def test_no_servers_is_reported_even_beside_other_problems() -> None:
    problems = problems_of({"PORACLE_SEVRER_1_HOST": "192.0.2.10", "PORACLE_SSH_TIMEOUT": "soon"})
    assert [problem.split(":", 1)[0] for problem in problems] == ["PORACLE_SSH_TIMEOUT", "PORACLE_SERVER_1_HOST"]
    assert "no servers configured" in problems[1]


def test_a_dotenv_that_is_not_utf8_is_an_error_naming_it(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_bytes(b"PORACLE_SERVER_1_HOST=192.0.2.10\nPORACLE_SERVER_1_NAME=M\xfcnchen\n")  # Latin-1
    with pytest.raises(ConfigError) as caught:
        read_environment(env_file, {})
    (problem,) = caught.value.problems
    assert problem.startswith(f"{env_file}: cannot read this .env file"), problem
