"""The pm2 commands and alerts through the Discord double, against a REAL sshd whose key forces the REAL gate
in front of a REAL pm2 (tests/support/gate.py: poracle with secrets, helper with a long log, looper that
crash-loops, broken that pm2 gave up on). An admin sees the processes, restarts one (its pid changes, the
others' do not), reads a log with no secret in it; a crash loop is announced while HTTP answers, then its
recovery; outsiders learn no name and are refused."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.discord_bot.client import PoracleBot
from tests.support.clock import FakeClock
from tests.support.discord_double import DiscordDouble, Message
from tests.support.gate import SECRETS, GateHost, Recorder, bot_env
from tests.support.local_http import HttpServer, refused_port
from tests.support.sshd import SshServer
from tests.support.world import confirmed_restart, discord_env, rounds, running_bot

pytestmark = pytest.mark.usefixtures("token_stays_out_of_the_log")
REFUSAL = "Only Poracle admins can do that."
ON_CALL = 1191168914227200099  # DISCORD_ALERT_ROLE_ID: crash loops page it, as outages do
GATE_NEEDED = "Main: this needs PORACLE_SERVER_1_ACCESS=gate (`poracle-bot gate` shows how)"


def env_for(discord: DiscordDouble, host: GateHost, tmp_path: Path, **extra: str) -> dict[str, str]:
    return discord_env(discord, tmp_path / "data") | bot_env(host.server, tmp_path, host.api, **extra)


@pytest.fixture
async def poracle(discord_double: DiscordDouble, gate_host: GateHost, tmp_path: Path) -> AsyncIterator[PoracleBot]:
    """The bot, its monitor resting, with Main behind the gate."""
    async with running_bot(discord_double, env_for(discord_double, gate_host, tmp_path), monitor=False) as bot:
        yield bot


def shown(discord: DiscordDouble) -> str:
    """Everything the bot ever showed in Discord: every version of every message, and every file."""
    texts = [json.dumps([v.content, v.embeds]) for message in discord.messages for v in message.versions]
    files = [data.decode() for message in discord.messages for data in discord.files(message).values()]
    return "\n".join(texts + files)


def assert_nothing_secret(discord: DiscordDouble, host: GateHost, caplog: pytest.LogCaptureFixture) -> None:
    logged = "\n".join(logging.Formatter().format(record) for record in caplog.records)
    assert [s for s in SECRETS if s in shown(discord) or s in logged] == []
    host.check_secrets("")


async def ask(discord: DiscordDouble, *command: str, timeout: float = 20, **options: object) -> Message:
    record = await discord.slash(discord.admins[0], "poracle", *command, **options)
    return await record.wait_original(lambda m: not m.loading, timeout=timeout)


async def test_an_admin_sees_every_process_in_a_table(
    discord_double: DiscordDouble, gate_host: GateHost, poracle: PoracleBot, caplog: pytest.LogCaptureFixture
) -> None:
    listed = await ask(discord_double, "processes", server="Main")
    assert not listed.ephemeral
    (embed,) = listed.embeds
    assert embed["title"].startswith("pm2 on Main: ")
    assert "broken errored" in embed["title"]
    table = embed["description"].removeprefix("```\n").removesuffix("\n```").splitlines()
    assert table[0].split() == ["NAME", "ID", "STATUS", "PID", "UPTIME", "RESTARTS", "MEMORY", "CPU"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert set(rows) == {"poracle", "helper", "looper", "broken"}
    assert rows["poracle"][2:4] == ["online", str(gate_host.running()["poracle"])]
    assert rows["broken"][2:5] == ["errored", "-", "-"]
    assert (rows["helper"][-3], rows["helper"][-1]) == ("MB", "%")  # "50 MB  0.5 %"
    assert_nothing_secret(discord_double, gate_host, caplog)


async def test_an_admin_restarts_one_process_and_only_its_pid_changes(
    discord_double: DiscordDouble, gate_host: GateHost, poracle: PoracleBot, caplog: pytest.LogCaptureFixture
) -> None:
    alice = discord_double.admins[0]
    offered = await discord_double.autocomplete(alice, "poracle", "restart", "process", "", options={"server": "Main"})
    assert [choice["name"] for choice in offered] == ["broken", "helper", "looper", "poracle"]
    assert await discord_double.autocomplete(alice, "poracle", "restart", "process", "hel", options={"server": "Main"})
    before = gate_host.running()
    final, _ = await confirmed_restart(discord_double, process="helper", timeout=30)
    after = gate_host.running()
    (asked,) = final.versions[0].embeds
    assert asked["title"] == "Restart helper on Main?"
    assert asked["fields"][0]["value"].endswith("```\nporacle-gate 1 restart helper\n```")
    assert final.title == "helper on Main: restarted"
    assert after["helper"] != before["helper"] and after["poracle"] == before["poracle"]
    pids = f"pid {before['helper']} → {after['helper']}"
    assert f"helper (id {gate_host.pm_ids['helper']}): {pids}, online" in final.fields["Main"]
    assert "Answers its health check again: **yes**" in final.fields["Main"]
    announced = await discord_double.wait_for_message(lambda m: "restarted by" in m.content, timeout=5)
    assert announced.content == f"pm2 process `helper` of **Main** restarted by <@{alice.id}>: restarted"
    history = await ask(discord_double, "history", server="Main")
    assert "**Main** restart of `helper`" in history.embeds[0]["description"]
    assert_nothing_secret(discord_double, gate_host, caplog)


async def test_an_admin_reads_a_log_only_they_see_a_short_one_inline_a_long_one_as_a_file(
    discord_double: DiscordDouble, gate_host: GateHost, poracle: PoracleBot, caplog: pytest.LogCaptureFixture
) -> None:
    short = await ask(discord_double, "logs", server="Main", process="poracle")  # 50 lines by default
    assert short.ephemeral and short.attachments == []
    (embed,) = short.embeds
    assert embed["footer"]["text"].startswith("last 50 lines asked · ")
    assert embed["title"] == f"Log of poracle (id {gate_host.pm_ids['poracle']}) on Main"
    assert embed["description"].startswith("```\n") and embed["description"].endswith("\n```")
    assert "DISCORD_TOKEN=[REDACTED] db password [REDACTED]" in embed["description"]
    assert "--- error log, last 1 line(s) ---\nrequest headers: x-poracle-secret: [REDACTED]" in embed["description"]

    long = await ask(discord_double, "logs", server="Main", process="helper", lines=200)
    assert long.ephemeral
    assert "attached as a text file" in long.embeds[0]["description"]
    assert long.embeds[0]["footer"]["text"].startswith("last 200 lines asked · 200 out, 0 error line(s)")
    (name,) = discord_double.files(long)
    text = discord_double.files(long)[name].decode()
    assert name == "Main-helper-log.txt"
    assert text.count("helper warming up") == 200 and text.endswith("all is well so far\n")
    assert [m for m in discord_double.messages if not m.ephemeral] == []  # nothing in the channel
    assert_nothing_secret(discord_double, gate_host, caplog)


async def test_a_crash_loop_is_announced_while_http_answers_then_its_recovery(
    discord_double: DiscordDouble, gate_host: GateHost, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(datetime.now(UTC))  # rounds minutes apart, in seconds
    env = env_for(discord_double, gate_host, tmp_path, DISCORD_ALERT_ROLE_ID=str(ON_CALL))
    async with running_bot(discord_double, env, monitor=False, clock=clock) as bot:
        await rounds(bot, 1)
        first = await discord_double.wait_for_message(lambda m: "broken" in m.title, timeout=5)
        assert first.title == "🟠 pm2 process broken on Main: errored (exit code 1)"
        seen = next(p.restarts for p in bot.watchdog.process_reads["Main"].processes or () if p.name == "looper")
        gate_host.wait_restarts("looper", seen + 3)
        clock.advance(60)
        await rounds(bot, 1)
        looping = await discord_double.wait_for_message(lambda m: "looper" in m.title, timeout=5)
        assert looping.title.startswith("🟠 pm2 process looper on Main: ")
        assert looping.title.endswith(" restarts in 10 min")
        assert looping.fields["Why"] == "`/poracle logs server:Main process:looper`"
        assert bot.watchdog.monitor.watches["Main"].state == "online"  # HTTP answered all along
        status = await ask(discord_double, "status")
        assert "⚙️ pm2 " in status.fields["Main"] and "broken errored" in status.fields["Main"]
        assert "💡 looper " in status.fields["Main"]

        gate_host.stop_looping()
        clock.advance(60)
        await rounds(bot, 1)  # it may have restarted once more before it settled
        clock.advance(11 * 60)
        await rounds(bot, 1)
        stable = await discord_double.wait_for_message(lambda m: "stable again" in m.title, timeout=5)
        assert stable.title == "🟢 pm2 process looper on Main is stable again"
    posted = [m.title for m in discord_double.channel_messages() if m.interaction_metadata is None]
    assert posted == [first.title, looping.title, stable.title]  # no outage: HTTP answered
    assert [m.pinged_role_ids for m in (first, looping, stable)] == [{ON_CALL}, {ON_CALL}, set()]  # as outages
    assert_nothing_secret(discord_double, gate_host, caplog)


async def test_an_outage_alert_says_what_pm2_shows(
    discord_double: DiscordDouble, gate_host: GateHost, tmp_path: Path
) -> None:
    env = discord_env(discord_double, tmp_path / "data", PORACLE_DOWN_AFTER="1")
    env |= bot_env(gate_host.server, tmp_path, f"http://127.0.0.1:{refused_port()}")
    async with running_bot(discord_double, env, monitor=False) as bot:
        await rounds(bot, 1)
        alert = await discord_double.wait_for_message(lambda m: m.title == "🔴 Main is offline", timeout=5)
    assert alert.fields["Reason"] == "connection refused"
    assert alert.fields["💡 Hint"] == "broken errored (exit code 1): its log says why (`/poracle logs`)"
    assert alert.button("Restart")  # the outage's own alert, as ever


async def test_outsiders_get_no_names_and_are_refused_and_nothing_is_asked_of_the_gate(
    discord_double: DiscordDouble, gate_host: GateHost, poracle: PoracleBot
) -> None:
    carol = discord_double.member
    gate_log = gate_host.log_text()
    main = {"server": "Main"}
    for command, option, options in (
        ("processes", "server", {}),
        ("logs", "server", {}),
        ("logs", "process", main),
        ("restart", "process", main),
        ("restart", "server", {}),
    ):
        assert await discord_double.autocomplete(carol, "poracle", command, option, "", options=options) == []
    for command, options in (("processes", main), ("logs", main | {"process": "poracle"})):
        record = await discord_double.slash(carol, "poracle", command, **options)
        refusal = await record.wait_original()
        assert refusal.ephemeral and refusal.content == REFUSAL
    assert gate_host.log_text() == gate_log  # not even the list was read
    assert [m for m in discord_double.messages if not m.ephemeral] == []


@pytest.mark.parametrize(
    ("command", "options", "answer"),
    [
        ("restart", {"server": "all", "process": "helper"}, "Restarting one pm2 process needs one server, not all"),
        ("restart", {"server": "Main", "process": "a b"}, "Not a pm2 process name the gate accepts: 'a b'"),
        ("logs", {"server": "Main", "process": "$(id)"},
         "Cannot read that log: not a pm2 process name the gate accepts: '$(id)'"),
        ("logs", {"server": "Nope", "process": "poracle"}, "No server called 'Nope'; servers with the gate: Main"),
        ("processes", {"server": "Nope"}, "No server called 'Nope'; servers with the gate: Main"),
    ],
)  # fmt: skip
async def test_a_bad_request_gets_a_clear_answer_and_nothing_is_sent(
    discord_double: DiscordDouble,
    gate_host: GateHost,
    poracle: PoracleBot,
    command: str,
    options: dict[str, str],
    answer: str,
) -> None:
    gate_log = gate_host.log_text()
    record = await discord_double.slash(discord_double.admins[0], "poracle", command, **options)
    refusal = await record.wait_original()
    assert refusal.ephemeral and refusal.content == answer
    assert gate_host.log_text() == gate_log
    assert [m for m in discord_double.messages if not m.ephemeral] == []


async def test_a_server_in_command_mode_is_told_it_needs_the_gate_and_sent_nothing(
    discord_double: DiscordDouble, recording_sshd: tuple[SshServer, Recorder], api: HttpServer, tmp_path: Path
) -> None:
    server, recorder = recording_sshd
    env = discord_env(discord_double, tmp_path / "data")
    env |= bot_env(server, tmp_path, api.url, PORACLE_SERVER_1_ACCESS="command", PORACLE_SERVER_1_RESTART_CMD="true")
    async with running_bot(discord_double, env, monitor=False) as bot:
        await rounds(bot, 1)  # a round reads no process list of it
        alice = discord_double.admins[0]
        main = {"server": "Main"}
        assert await discord_double.autocomplete(alice, "poracle", "restart", "process", "", options=main) == []
        assert await discord_double.autocomplete(alice, "poracle", "logs", "server", "") == []
        for command, options in (
            ("processes", main),
            ("logs", main | {"process": "poracle"}),
            ("restart", main | {"process": "poracle"}),
        ):
            record = await discord_double.slash(alice, "poracle", command, **options)
            refusal = await record.wait_original()
            assert refusal.ephemeral and refusal.content == GATE_NEEDED
        status = await ask(discord_double, "status")
    assert "pm2" not in status.fields["Main"]
    assert recorder.commands() == []
