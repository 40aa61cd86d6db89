"""Automatic restarts end to end: the real bot, restarting over a real sshd (and through the gate, a real pm2),
posting through the Discord double, its rounds driven on a FakeClock a minute apart (each round waits for the
automatic restart it started). The rails themselves are tested fast in tests/core/test_autorestart.py.

The notices and the "needs a human" alert as messages (pure builders) come first."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.core.autorestart import AutoRestarted, NeedsHuman, Restart
from bot.core.health import HealthResult
from bot.core.selfheal import AUTOMATIC, notice
from bot.core.service import RestartResult
from bot.core.ssh import CommandOutcome, CommandResult
from bot.core.store import NeedsHumanRecord, Origin, RestartRecord
from bot.discord_bot.client import PoracleBot
from bot.discord_bot.embeds import auto_restart_notice, history_embeds, needs_human_embed
from tests.support.clock import FakeClock
from tests.support.discord_double import DiscordDouble, Message
from tests.support.fixtures import lines
from tests.support.gate import GateHost, bot_env
from tests.support.local_http import refused_port
from tests.support.pm2 import Pm2App
from tests.support.sshd import SshServer
from tests.support.world import acknowledge, discord_env, posts, rounds, running_bot, server_env, ssh_env

live = pytest.mark.usefixtures("token_stays_out_of_the_log")  # the bot runs: its log must hold no token

ON_CALL = 1191168914227200099  # DISCORD_ALERT_ROLE_ID
NOW = datetime.now(UTC).replace(microsecond=0)


def done(word: CommandOutcome, online: bool, process: str | None = None) -> AutoRestarted:
    command = CommandResult(word, "exit code 0" if word is CommandOutcome.SUCCEEDED else "exit code *1*", 0, "", 1.0)
    health = HealthResult("Main", online, NOW, reason=None if online else "connection refused")
    result = RestartResult("Main", AUTOMATIC, command, health, process=process)
    return notice(result, Restart("Main", process, 2, 3, "offline (connection refused)", NOW), NOW)


def test_the_notice_says_what_was_restarted_how_it_went_and_why() -> None:
    assert auto_restart_notice(done(CommandOutcome.SUCCEEDED, True)) == (
        "🔁 **Main** restarted automatically: restarted (answers again: yes)\n"
        "Attempt 2 of 3 in 6 h · offline (connection refused)"
    )
    failed = auto_restart_notice(done(CommandOutcome.FAILED, False, process="poracle"))
    assert failed.startswith(
        "🔁 pm2 process `poracle` of **Main** restarted automatically: failed, exit code \\*1\\* (answers again: no)"
    )


def test_the_call_for_a_human_and_the_history_say_why() -> None:
    given_up = NeedsHuman("Main", "3 automatic restart(s) in 6 h did not bring it back", NOW)
    embed = needs_human_embed([given_up])
    assert embed.title == "🆘 Main needs a human"
    assert embed.fields[0].value == given_up.reason
    assert "No more automatic restarts until someone restarts it" in str(embed.description)
    assert needs_human_embed([given_up, NeedsHuman("Backup", "x", NOW)]).title == "🆘 Need a human: Main, Backup"
    automatic = RestartRecord("Main", NOW, Origin.AUTOMATIC, "poracle-bot", "restarted", "exit code 0", 1.0, 0, False)
    (page,) = history_embeds([NeedsHumanRecord("Main", NOW, given_up.reason), automatic], "Main")
    first, second = str(page.description).splitlines()
    assert first == f"🆘 <t:{int(NOW.timestamp())}:f> **Main** needs a human · {given_up.reason}"
    assert f"**Main** restart <t:{int(NOW.timestamp())}:R> automatically: **restarted**" in second


# -- end to end


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)  # today: a mute set through Discord (by the real clock) holds in the rounds' time


def healing_env(discord: DiscordDouble, sshd: SshServer, tmp_path: Path, api: str, command: str) -> dict[str, str]:
    """Main, with AUTO_RESTART=on, AFTER 1 minute: restarted by `command` over the real sshd."""
    env = discord_env(discord, tmp_path / "data", PORACLE_DOWN_AFTER="2", DISCORD_ALERT_ROLE_ID=str(ON_CALL))
    env |= ssh_env(sshd, tmp_path / "known_hosts") | server_env(1, "Main", api, sshd, command)
    return env | {"PORACLE_SERVER_1_AUTO_RESTART": "on", "PORACLE_AUTO_RESTART_AFTER": "1"}


def automatic_restarts(bot: PoracleBot) -> list[RestartRecord]:
    """The audit's automatic restarts, oldest first."""
    entries = bot.store.history("Main")
    return sorted((e for e in entries if isinstance(e, RestartRecord) and e.origin is Origin.AUTOMATIC), key=at)


def at(record: RestartRecord) -> datetime:
    return record.at


def notices(discord: DiscordDouble) -> list[Message]:
    return [m for m in posts(discord) if m.content.startswith("🔁")]


@live
async def test_a_server_that_stays_down_gets_limit_restarts_with_growing_gaps_then_one_ping_for_a_human(
    discord_double: DiscordDouble, sshd: SshServer, marker: Path, tmp_path: Path, clock: FakeClock
) -> None:
    api = f"http://127.0.0.1:{refused_port()}"
    env = healing_env(discord_double, sshd, tmp_path, api, f"echo ran >> {marker}")
    async with running_bot(discord_double, env, monitor=False, clock=clock) as bot:
        await rounds(bot, 20, clock)
        audited = automatic_restarts(bot)
        history = await discord_double.slash(discord_double.admins[0], "poracle", "history", server="Main")
        shown = await history.wait_original()
        # The human it calls for must hold the admin role when pressing Restart, and then confirm.
        carol, alice = discord_double.member, discord_double.admins[0]
        refused = await discord_double.click(carol, posts(discord_double)[-1], "Restart")
        assert refused.original is not None and refused.original.content == "Only Poracle admins can do that."
        asked = await discord_double.click(alice, posts(discord_double)[-1], "Restart")
        prompt = await asked.wait_original()
        assert prompt.title == "Restart Main?" and len(lines(marker)) == 3  # asked, nothing run yet
        await discord_double.click(alice, prompt, "Cancel")
        await asked.wait_original(lambda m: "cancelled" in m.text)
    assert len(lines(marker)) == 3  # LIMIT, the default: the command ran three times, no more
    assert [record.outcome for record in audited] == ["restarted"] * 3
    assert all(record.healthy_after is False and record.requested_by == "poracle-bot" for record in audited)
    first, second = (later.at - earlier.at for earlier, later in itertools.pairwise(audited))
    assert timedelta(minutes=2) <= first < second and second >= timedelta(minutes=4)  # growing: AFTER x 2, x 4

    outage, *restarted, given_up = posts(discord_double)
    assert outage.title == "🔴 Main is offline" and outage.pinged_role_ids == {ON_CALL}
    assert [m.content.splitlines()[0] for m in restarted] == [
        "🔁 **Main** restarted automatically: restarted (answers again: no)"
    ] * 3
    assert [m.content.splitlines()[1] for m in restarted] == [
        f"Attempt {n} of 3 in 6 h · offline (connection refused)" for n in (1, 2, 3)
    ]
    assert all(m.pinged_role_ids == set() and m.allowed_mentions == {"parse": []} for m in restarted)
    assert given_up.title == "🆘 Main needs a human"
    assert given_up.fields["Why"] == "3 automatic restart(s) in 6 h did not bring it back"
    assert given_up.pinged_role_ids == {ON_CALL} and given_up.allowed_mentions == {"parse": [], "roles": [ON_CALL]}
    assert [button["label"] for button in given_up.buttons] == ["Restart"]
    assert shown.text.count("automatically: **restarted**") == 3 and "**Main** needs a human" in shown.text


@live
async def test_one_that_comes_back_after_the_first_restart_gets_exactly_one(
    discord_double: DiscordDouble, sshd: SshServer, pm2_app: Pm2App, marker: Path, tmp_path: Path, clock: FakeClock
) -> None:
    pm2_app.pm2("stop", pm2_app.name)
    api = pm2_app.health_url.removesuffix("/health")
    env = healing_env(
        discord_double, sshd, tmp_path, api, f"echo ran >> {marker}; {pm2_app.restart_until_listening_command}"
    )
    async with running_bot(discord_double, env, monitor=False, clock=clock) as bot:
        await rounds(bot, 30, clock)
        (audited,) = automatic_restarts(bot)
    assert len(lines(marker)) == 1 and pm2_app.healthy()
    assert (audited.outcome, audited.healthy_after) == ("restarted", True)
    outage, restarted, recovery = posts(discord_double)
    assert restarted.content.splitlines()[0] == "🔁 **Main** restarted automatically: restarted (answers again: yes)"
    assert (outage.title, recovery.title) == ("🔴 Main is offline", "🟢 Main is online again")


@live
@pytest.mark.parametrize("hold", ["muted", "acknowledged"])
async def test_a_muted_or_acknowledged_server_gets_no_automatic_restart(
    discord_double: DiscordDouble, sshd: SshServer, marker: Path, tmp_path: Path, clock: FakeClock, hold: str
) -> None:
    api = f"http://127.0.0.1:{refused_port()}"
    env = healing_env(discord_double, sshd, tmp_path, api, f"echo ran >> {marker}")
    env["PORACLE_AUTO_RESTART_AFTER"] = "5"  # time to take the outage on after its alert
    alice = discord_double.admins[0]
    async with running_bot(discord_double, env, monitor=False, clock=clock) as bot:
        if hold == "muted":
            answer = await discord_double.slash(alice, "poracle", "mute", server="Main", minutes=600)
            await answer.wait_original()
        await rounds(bot, 2, clock)
        if hold == "acknowledged":
            (outage,) = posts(discord_double)
            await acknowledge(discord_double, alice, outage, "on it")
        await rounds(bot, 60, clock)
        audited = automatic_restarts(bot)
    assert not marker.exists() and audited == []
    assert notices(discord_double) == [] and not any("needs a human" in m.title for m in posts(discord_double))


@pytest.fixture
def looping_stopped(gate_host: GateHost) -> Iterator[GateHost]:
    gate_host.stop_looping()  # one failing process on the server: broken (errored)
    yield gate_host


@live
async def test_through_the_gate_only_the_failing_pm2_process_is_restarted(
    discord_double: DiscordDouble, looping_stopped: GateHost, tmp_path: Path, clock: FakeClock
) -> None:
    host = looping_stopped
    env = discord_env(discord_double, tmp_path / "data") | bot_env(host.server, tmp_path, host.api)
    env |= {"PORACLE_SERVER_1_AUTO_RESTART": "on", "PORACLE_AUTO_RESTART_AFTER": "1"}
    before, broken = host.running(), host.restarts("broken")
    async with running_bot(discord_double, env, monitor=False, clock=clock) as bot:
        await rounds(bot, 3, clock)
        audited = automatic_restarts(bot)
    first = audited[0]
    assert (first.process, first.outcome, first.healthy_after) == ("broken", "restarted", True)
    after = host.running()
    assert {name: after.get(name) for name in ("poracle", "helper", "looper")} == {
        name: before[name] for name in ("poracle", "helper", "looper")
    }
    assert host.restarts("broken") > broken
    (restarted, *_) = notices(discord_double)
    assert restarted.content.splitlines() == [
        "🔁 pm2 process `broken` of **Main** restarted automatically: restarted (answers again: yes)",
        "Attempt 1 of 3 in 6 h · pm2 process broken: errored (exit code 1)",
    ]
    host.check_secrets("\n".join(m.text for m in discord_double.messages))
