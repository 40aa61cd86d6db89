"""/poracle status with history and /poracle history, through the Discord double: uptime, median latency
and the last restart from the store (seeded through its public API, or from a real restart), paging."""

from __future__ import annotations

import getpass
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.core.health import HealthResult
from bot.core.monitor import Outage, Recovery
from bot.core.service import Requester, RestartResult
from bot.core.ssh import CommandOutcome, CommandResult
from bot.core.store import Origin, RestartRecord, ServerHistory, Store
from bot.core.watchdog import StatusReport
from bot.discord_bot.embeds import history_embeds, status_embeds
from bot.discord_bot.limits import EMBED_TOTAL as EMBED_LIMIT
from tests.support.cli import cli, write_env
from tests.support.discord_double import DiscordDouble, InteractionRecord, Message
from tests.support.local_http import HttpServer
from tests.support.sshd import SshServer
from tests.support.world import ask_restart, ask_status, discord_env, running_bot, server_env, ssh_env

NOW = datetime.now(UTC).replace(microsecond=0)


def restart(server: str, by: str, at: datetime) -> RestartRecord:
    """The audit row of a restart of `server` from Discord by `by` at `at` that went well."""
    command = CommandResult(CommandOutcome.SUCCEEDED, "exit code 0", 0, "", 2.0)
    return RestartResult(server, Requester(Origin.DISCORD, by), command).record(at)


def t(moment: datetime, style: str) -> str:
    return f"<t:{int(moment.timestamp())}:{style}>"


# -- the pure embeds


def test_status_lines_show_uptime_median_last_restart_and_mute() -> None:
    last = RestartRecord(
        "Main", NOW - timedelta(hours=2), Origin.DISCORD, "dave (42)", "failed", "exit code 1", 2.0, 1, False
    )
    histories = {"Main": ServerHistory(0.9996, 0.5, 19.03, last), "Backup": ServerHistory(1.0, None, None, None)}
    until = NOW + timedelta(minutes=30)
    result = HealthResult("Main", True, NOW, status=200, latency_ms=12)
    backup = HealthResult("Backup", True, NOW, status=200, latency_ms=12)
    (embed,) = status_embeds(StatusReport((result, backup), {}, histories, {"Main": until}))
    main, other = (str(field.value) for field in embed.fields)
    assert "uptime 24 h 99.9 % · 7 d 50.0 % · median 19 ms" in main  # 99.96 % is not rounded up to 100
    assert f"last restart {t(last.at, 'R')} by dave (42): **failed**" in main
    assert f"🔇 muted until {t(until, 'R')}" in main
    assert "uptime 24 h 100 %" in other and "median" not in other and "muted" not in other
    assert "HTTP 200" in main  # the live line is still first
    assert str(main).startswith("🟢")


@pytest.mark.parametrize("count", [20, 25, 30])
def test_status_with_history_stays_within_discord_limits(count: int) -> None:
    """Long names and a restart line each: 25 fields would pass 6000 characters, so compact lines are used."""
    names = [f"server-with-a-long-name-{i:03}" for i in range(count)]
    who = "someone-with-a-long-name (123456789012345678)"
    last = RestartRecord("x", NOW, Origin.DISCORD, who, "timed out", "", None, None, None)
    histories = {name: ServerHistory(0.5, 0.25, 123.0, last) for name in names}
    results = [HealthResult(name, False, NOW, reason="connection refused") for name in names]
    down = dict.fromkeys(names, NOW)
    embeds = status_embeds(StatusReport(tuple(results), down, histories, down))
    shown = "".join(str(e.description or "") + "".join(f"{f.name}{f.value}" for f in e.fields) for e in embeds)
    for name in names:
        assert name in shown
    assert shown.count("uptime 24 h 50.0 %") == count and shown.count("🔇") == count
    for embed in embeds:
        assert len(embed) <= EMBED_LIMIT and len(embed.fields) <= 25 and len(embed.description or "") <= 4096


def test_history_pages_hold_ten_entries_newest_first_within_limits() -> None:
    entries = [
        RestartRecord(
            "Main", NOW - timedelta(minutes=i), Origin.CLI, f"op-{i:02}", "restarted", "x" * 2000, 1.0, 0, True
        )
        for i in range(25)
    ]
    pages = history_embeds(entries, "Main")
    assert [str(page.footer.text) for page in pages] == [f"Page {n}/3 · newest first" for n in (1, 2, 3)]
    assert [str(page.description).count("\n") + 1 for page in pages] == [10, 10, 5]
    assert "op-00" in str(pages[0].description) and "op-10" in str(pages[1].description)
    assert all(len(page.description or "") <= 4096 and len(page) <= EMBED_LIMIT for page in pages)
    (empty,) = history_embeds([], None)
    assert empty.title == "History of all servers" and empty.description == "Nothing recorded yet."


# -- through the double


def sample(at: datetime, latency_ms: float | None) -> HealthResult:
    """A check of Main: answered in `latency_ms`, or (None) refused."""
    if latency_ms is None:
        return HealthResult("Main", False, at, reason="connection refused")
    return HealthResult("Main", True, at, status=200, latency_ms=latency_ms)


def seed(data_dir: Path) -> tuple[datetime, datetime]:
    """Main's last week as the store would have it; returns when the restart and the outage happened.

    24 h: 1500 of 2000 checks answered (500 each at 10, 20 and 40 ms); 3 days ago, 1000 more that did not.
    So many that the few checks the running bot adds cannot change the figures shown.
    """
    store = Store.open(data_dir)
    try:
        day = [sample(NOW - timedelta(hours=20, seconds=-30 * i), (10.0, 20.0, 40.0, None)[i % 4]) for i in range(2000)]
        week = [sample(NOW - timedelta(days=3, seconds=10 * i), None) for i in range(1000)]
        store.record_round(day + week, {}, [])
        outage_at = NOW - timedelta(hours=5)
        store.record_round([], {}, [Outage("Main", "connection refused", outage_at)])
        store.record_round([], {}, [Recovery("Main", outage_at, outage_at + timedelta(minutes=5))])
        # Delivered long ago: the running bot must not post them again.
        store.mark_events([stored.id for stored in store.pending_events()], "delivered")
        restart_at = NOW - timedelta(hours=2)
        store.record_restarts([restart("Main", "dave (42)", restart_at)])
        return restart_at, outage_at
    finally:
        store.close()


def env_for(discord: DiscordDouble, data_dir: Path, api: HttpServer) -> dict[str, str]:
    return discord_env(discord, data_dir) | server_env(1, "Main", api.url)


async def status_of(discord: DiscordDouble, server: str) -> str:
    final = await ask_status(discord)
    return str({f["name"]: f["value"] for f in final.embeds[0]["fields"]}[server])


async def test_status_shows_uptime_median_and_last_restart_from_the_store(
    discord_double: DiscordDouble, api: HttpServer, tmp_path: Path
) -> None:
    restart_at, _ = seed(tmp_path / "data")
    async with running_bot(discord_double, env_for(discord_double, tmp_path / "data", api)):
        main = await status_of(discord_double, "Main")
    assert "🟢 **online** · HTTP 200" in main
    assert "uptime 24 h 75.0 % · 7 d 50.0 %" in main
    median = re.search(r"median (\d+) ms", main)
    assert median is not None and 17 <= int(median[1]) <= 23  # 20 ms, within the histogram's resolution
    assert f"last restart {t(restart_at, 'R')} by dave (42): **restarted**" in main
    assert "muted" not in main


async def history(discord: DiscordDouble, **options: str) -> tuple[InteractionRecord, Message]:
    record = await discord.slash(discord.admins[0], "poracle", "history", **options)
    return record, await record.wait_original()


async def test_history_lists_restarts_and_outages_newest_first(
    discord_double: DiscordDouble, api: HttpServer, tmp_path: Path
) -> None:
    restart_at, outage_at = seed(tmp_path / "data")
    async with running_bot(discord_double, env_for(discord_double, tmp_path / "data", api)):
        _, everything = await history(discord_double)
        _, main = await history(discord_double, server="main")  # any case, like /poracle restart
        choices = await discord_double.autocomplete(discord_double.admins[0], "poracle", "history", "server", "")
    for message in (everything, main):
        assert not message.ephemeral and message.buttons == []  # one page: no buttons
        lines = message.embeds[0]["description"].splitlines()
        assert len(lines) == 2
        assert lines[0].startswith(f"🔁 {t(restart_at, 'f')} **Main** restart")
        assert "by dave (42): **restarted** · exit code 0" in lines[0]
        assert lines[1] == f"🔴 {t(outage_at, 'f')} **Main** offline for 5 min 0 s · connection refused"
    assert everything.embeds[0]["title"] == "History of all servers"
    assert main.embeds[0]["title"] == "History of Main"
    assert [choice["name"] for choice in choices] == ["Main", "all"]


async def test_history_of_an_unknown_server_is_a_private_refusal(
    discord_double: DiscordDouble, api: HttpServer, tmp_path: Path
) -> None:
    async with running_bot(discord_double, env_for(discord_double, tmp_path / "data", api)):
        _, answer = await history(discord_double, server="Nope")
    assert answer.ephemeral and "No server called 'Nope'; known: Main or all" in answer.content


async def test_a_real_restart_shows_in_status_and_history(
    discord_double: DiscordDouble, api: HttpServer, sshd: SshServer, tmp_path: Path
) -> None:
    env = env_for(discord_double, tmp_path / "data", api) | ssh_env(sshd, tmp_path / "known_hosts")
    env |= server_env(1, "Main", api.url, sshd, "echo restarting")
    alice = discord_double.admins[0]
    async with running_bot(discord_double, env):
        assert "last restart" not in await status_of(discord_double, "Main")
        prompt, record = await ask_restart(discord_double)
        before = datetime.now(UTC)
        await discord_double.click(alice, prompt, "Confirm")
        await record.wait_original(lambda m: "Main: restarted" in m.text, timeout=15)
        main = await status_of(discord_double, "Main")
        _, listed = await history(discord_double, server="Main")
    stamp = re.search(r"last restart <t:(\d+):R> by (.*): \*\*restarted\*\*", main)
    assert stamp is not None, main
    assert abs(int(stamp[1]) - before.timestamp()) < 5
    assert stamp[2] == f"{alice.name} ({alice.id})"
    (line,) = listed.embeds[0]["description"].splitlines()
    assert f"by {alice.name} ({alice.id}): **restarted** · exit code 0" in line


async def test_a_restart_made_with_the_command_line_shows_in_history(
    discord_double: DiscordDouble, api: HttpServer, sshd: SshServer, tmp_path: Path
) -> None:
    env = env_for(discord_double, tmp_path / "data", api) | ssh_env(sshd, tmp_path / "known_hosts")
    env |= server_env(1, "Main", api.url, sshd, "echo restarting")
    write_env(tmp_path, **env)
    done = await cli(tmp_path, "restart", "Main", "--yes")
    async with running_bot(discord_double, env):
        _, listed = await history(discord_double, server="Main")
        main = await status_of(discord_double, "Main")
    assert done.code == 0, done
    (line,) = listed.embeds[0]["description"].splitlines()
    assert f"by {getpass.getuser()} (command line): **restarted** · exit code 0" in line
    assert f"by {getpass.getuser()} (command line): **restarted**" in main


@pytest.fixture
def many_restarts(tmp_path: Path) -> Path:
    """25 restarts of Main, one a minute, by op-00 (the newest) to op-24."""
    store = Store.open(tmp_path / "data")
    try:
        for i in range(25):
            store.record_restarts([restart("Main", f"op-{i:02} (1)", NOW - timedelta(minutes=i))])
    finally:
        store.close()
    return tmp_path / "data"


def page(message: Message) -> str:
    return str(message.embeds[0]["footer"]["text"]).split(" ")[1]


def disabled(message: Message) -> dict[str, bool]:
    return {str(button["label"]): bool(button.get("disabled")) for button in message.buttons}


async def test_history_pages_with_previous_and_next(
    discord_double: DiscordDouble, api: HttpServer, many_restarts: Path
) -> None:
    alice = discord_double.admins[0]
    async with running_bot(discord_double, env_for(discord_double, many_restarts, api)):
        record, first = await history(discord_double)
        assert page(first) == "1/3" and disabled(first) == {"Previous": True, "Next": False}
        assert "op-00" in first.text and "op-09" in first.text and "op-10" not in first.text
        await discord_double.click(alice, first, "Next")
        second = await record.wait_original(lambda m: page(m) == "2/3")
        assert "op-10" in second.text and "op-19" in second.text and "op-09" not in second.text
        assert disabled(second) == {"Previous": False, "Next": False}
        await discord_double.click(alice, second, "Next")
        third = await record.wait_original(lambda m: page(m) == "3/3")
        assert third.embeds[0]["description"].count("\n") == 4 and "op-24" in third.text
        assert disabled(third) == {"Previous": False, "Next": True}
        await discord_double.click(alice, third, "Previous")
        back = await record.wait_original(lambda m: page(m) == "2/3")
    assert back.id == first.id  # one message, edited in place


async def test_only_the_asking_admin_may_turn_the_pages(
    discord_double: DiscordDouble, api: HttpServer, many_restarts: Path
) -> None:
    bob, carol = discord_double.admins[1], discord_double.member
    async with running_bot(discord_double, env_for(discord_double, many_restarts, api)):
        record, first = await history(discord_double)
        for intruder, words in ((bob, "Only <@"), (carol, "Only Poracle admins")):
            click = await discord_double.click(intruder, first, "Next")
            refusal = click.original
            assert refusal is not None and refusal.ephemeral and words in refusal.content
        assert page(discord_double.message(first.id)) == "1/3"
        # Still working for alice after the refusals.
        await discord_double.click(discord_double.admins[0], first, "Next")
        await record.wait_original(lambda m: page(m) == "2/3")


async def test_the_pager_expires_with_its_buttons_disabled(
    discord_double: DiscordDouble, api: HttpServer, many_restarts: Path
) -> None:
    async with running_bot(discord_double, env_for(discord_double, many_restarts, api), pager_timeout=0.5):
        record, first = await history(discord_double)
        assert not all(disabled(first).values())
        expired = await record.wait_original(lambda m: all(disabled(m).values()), timeout=5)
    assert page(expired) == "1/3" and set(disabled(expired)) == {"Previous", "Next"}
