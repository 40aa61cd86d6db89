"""Embeds are pure functions: check the words, colours and Discord's size limits directly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import discord
import pytest

from bot.core.gate_protocol import GateRestart, RestartedProcess
from bot.core.health import Cause, HealthResult
from bot.core.monitor import Degraded, Healthy, Outage, Recovery
from bot.core.service import CUT_OFF_REASON, Requester, RestartResult
from bot.core.ssh import CommandOutcome, CommandResult
from bot.core.store import DegradedRecord, Origin, RestartRecord, ServerHistory
from bot.core.watchdog import StatusReport
from bot.discord_bot.embeds import (
    GOLD,
    GREEN,
    ORANGE,
    RED,
    alert_embed,
    code_block,
    duration,
    history_embeds,
    outage_embed,
    recovery_embed,
    restart_audit_embed,
    restart_result_embed,
    status_embeds,
)
from bot.discord_bot.limits import EMBED_TOTAL as EMBED_LIMIT

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def up(name: str) -> HealthResult:
    return HealthResult(name, True, NOW, status=200, latency_ms=12.3)


def down(name: str) -> HealthResult:
    return HealthResult(name, False, NOW, reason="connection refused")


def refusing(name: str) -> HealthResult:
    reason = "refuses the bot: ip *10.0.0.5* not in whitelist"  # its words, Markdown or not
    return HealthResult(name, True, NOW, 200, 8.0, reason=reason, cause=Cause.REFUSED)


def report(*results: HealthResult, down_since: dict[str, datetime] | None = None) -> StatusReport:
    return StatusReport(results, down_since or {})


def test_status_shows_words_status_latency_and_reason() -> None:
    (embed,) = status_embeds(report(up("Main"), down("Backup")))
    fields = {field.name: field.value for field in embed.fields}
    assert "online" in fields["Main"] and "HTTP 200" in fields["Main"] and "12 ms" in fields["Main"]
    assert "offline" in fields["Backup"] and "connection refused" in fields["Backup"]
    assert "down since" in fields["Backup"]
    assert embed.timestamp == NOW


@pytest.mark.parametrize(
    ("results", "colour"),
    [
        ([up("a"), up("b")], GREEN),
        ([up("a"), down("b")], ORANGE),
        ([down("a"), down("b")], RED),
        ([refusing("a"), down("b")], ORANGE),
        ([refusing("a"), up("b")], ORANGE),
    ],
)
def test_status_colour_tells_the_whole_picture(results: list[HealthResult], colour: discord.Colour) -> None:
    assert status_embeds(report(*results))[0].colour == colour


def test_down_since_comes_from_the_monitor() -> None:
    since = NOW - timedelta(hours=2)
    (embed,) = status_embeds(report(down("Main"), down_since={"Main": since}))
    assert f"<t:{int(since.timestamp())}:R>" in embed.fields[0].value


@pytest.mark.parametrize("count", [25, 26, 200])
def test_many_servers_stay_within_discord_limits(count: int) -> None:
    results = [down(f"server-with-a-long-name-{i:03}") for i in range(count)]
    embeds = status_embeds(report(*results))
    shown = "".join(str(e.description or "") + "".join(str(f.value) for f in e.fields) for e in embeds)
    for i in range(count):
        assert f"server-with-a-long-name-{i:03}" in shown or any(
            f.name == f"server-with-a-long-name-{i:03}" for e in embeds for f in e.fields
        )
    for embed in embeds:
        assert len(embed) <= EMBED_LIMIT
        assert len(embed.fields) <= 25
        assert len(embed.description or "") <= 4096


def test_code_block_cannot_be_escaped_and_is_bounded() -> None:
    block = code_block("x" * 5000 + "```@everyone", 300)
    assert len(block) <= 300
    assert block.startswith("```\n") and block.endswith("\n```")
    assert block.count("```") == 2


def restart(name: str, outcome: CommandOutcome, output: str = "", code: int | None = None) -> RestartResult:
    command = CommandResult(outcome, f"exit code {code}" if code is not None else "why", code, output, 1.5)
    return RestartResult(name, Requester(Origin.DISCORD, "alice (1)"), command, up(name))


def test_restart_result_words() -> None:
    assert restart_result_embed([restart("Main", CommandOutcome.SUCCEEDED, code=0)]).title == "Main: restarted"
    assert restart_result_embed([restart("Main", CommandOutcome.TIMED_OUT)]).title == "Main: timed out"
    failed = restart_result_embed([restart("Main", CommandOutcome.FAILED, "boom", code=3)])
    assert failed.title == "Main: failed"
    assert "exit code 3" in str(failed.fields[0].value) and "boom" in str(failed.fields[0].value)
    assert "Answers its health check again: **yes**" in str(failed.fields[0].value)
    busy = restart_result_embed([RestartResult("Main", Requester(Origin.DISCORD, "bob (2)"), None)])
    assert busy.title == "Main: already restarting"


def test_restart_all_with_long_outputs_fits_one_embed() -> None:
    results = [restart(f"s{i}", CommandOutcome.FAILED, "y" * 900, code=1) for i in range(30)]
    embed = restart_result_embed(results)
    assert len(embed) <= EMBED_LIMIT
    assert len(embed.fields) == 25 and "5 more" in str(embed.footer.text)


def gate_restart(name: str, processes: int, output: str = "") -> RestartResult:
    restarted = tuple(
        RestartedProcess(f"p{i:02}-" + "n" * 56, i, 1000 + i, 2000 + i, "online") for i in range(processes)
    )
    command = CommandResult(CommandOutcome.SUCCEEDED, "exit code 0", 0, output, 1.5)
    gate = GateRestart(target="all", exit_code=0, output=(), processes=restarted)
    return RestartResult(name, Requester(Origin.DISCORD, "alice (1)"), command, up(name), gate=gate)


def test_a_gate_restart_shows_each_process_and_its_pids() -> None:
    (field,) = restart_result_embed([gate_restart("Main", 2, "[PM2] done")]).fields
    assert f"```\np00-{'n' * 56} (id 0): pid 1000 → 2000, online\np01-" in str(field.value)
    assert str(field.value).endswith("```\n[PM2] done\n```")


@pytest.mark.parametrize(("servers", "processes"), [(1, 200), (30, 40)])
def test_a_gate_restart_of_many_processes_fits_discords_limits(servers: int, processes: int) -> None:
    embed = restart_result_embed([gate_restart(f"s{i}", processes, "y" * 900) for i in range(servers)])
    assert len(embed) <= EMBED_LIMIT
    assert all(len(str(field.value)) <= 1024 for field in embed.fields)
    assert all(
        "```" in str(field.value) or f"{processes} pm2 process(es) restarted" in str(field.value)
        for field in embed.fields
    )


def test_outage_and_recovery_embeds() -> None:
    outage = outage_embed(Outage("Main", "no answer within 5 s", NOW))
    assert "offline" in str(outage.title) and outage.colour == RED
    assert outage.fields[0].value == "no answer within 5 s"
    recovery = recovery_embed(Recovery("Main", NOW, NOW + timedelta(minutes=90)))
    assert "online" in str(recovery.title) and recovery.colour == GREEN
    assert recovery.fields[0].value == "1 h 30 min"


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0 s"), (59, "59 s"), (61, "1 min 1 s"), (3600, "1 h"), (90061, "1 d 1 h 1 min")]
)
def test_duration(seconds: int, text: str) -> None:
    assert duration(timedelta(seconds=seconds)) == text


def test_a_degraded_server_is_online_refusing_the_bot_since_its_spell_began_with_the_servers_words_escaped() -> None:
    since = NOW - timedelta(minutes=7)
    ng = HealthResult("NG", True, NOW, 200, 3.0, answer="status healthy, version 5.1.0")
    status = StatusReport((refusing("JS"), ng, down("Old")), {}, degraded_since={"JS": since})
    (embed,) = status_embeds(status)
    fields = {field.name: field.value for field in embed.fields}
    assert embed.title == "PoracleJS servers: 1/3 online, 1 degraded"
    assert fields["JS"] == (
        f"🟡 **online, refuses the bot: ip \\*10.0.0.5\\* not in whitelist** · HTTP 200 · 8 ms · degraded since "
        f"<t:{int(since.timestamp())}:R>"
    )
    assert fields["NG"] == "🟢 **online** · HTTP 200 · 3 ms · status healthy, version 5.1.0"


def test_uptime_and_degraded_time_are_told_apart() -> None:
    history = ServerHistory(0.999, 0.994, 14.0, None, degraded_24h=0.004, degraded_7d=0.0001)
    (embed,) = status_embeds(StatusReport((up("Main"),), histories={"Main": history}))
    assert embed.fields[0].value.splitlines()[1] == (
        "uptime 24 h 99.9 % · 7 d 99.4 % · degraded 24 h 0.4 % · 7 d 0.1 % · median 14 ms"
    )
    never = ServerHistory(1.0, 1.0, 14.0, None, degraded_24h=0.0, degraded_7d=0.0)
    (embed,) = status_embeds(StatusReport((up("Main"),), histories={"Main": never}))
    assert embed.fields[0].value.splitlines()[1] == "uptime 24 h 100 % · 7 d 100 % · median 14 ms"


def test_degraded_and_fully_online_alerts_have_their_own_words_and_colours() -> None:
    since = NOW - timedelta(minutes=12)
    degraded = alert_embed([Degraded("JS", "refuses the bot: HTTP 403", since, Cause.REFUSED)])
    assert (degraded.title, degraded.colour, degraded.footer.text) == ("🟡 JS is degraded", GOLD, "degraded")
    fields = {field.name: field.value for field in degraded.fields}
    assert fields["Reason"] == "online, refuses the bot: HTTP 403"
    assert "ipWhitelist" in fields["What to do"] and f"<t:{int(since.timestamp())}:f>" in fields["Degraded since"]
    healthy = alert_embed([Healthy("JS", since, NOW)])
    assert (healthy.title, healthy.colour, healthy.footer.text) == ("🟢 JS is fully online again", GREEN, "online")
    assert {field.name: field.value for field in healthy.fields}["Degraded for"] == "12 min 0 s"
    several = alert_embed([Degraded(n, "no webhooks for 10 min", since, Cause.SILENCE) for n in ("A", "B")])
    assert (several.title, several.colour) == ("🟡 Degraded: A, B", GOLD)
    assert (
        several.fields[0].value == f"**online, no webhooks for 10 min** · degraded since <t:{int(since.timestamp())}:R>"
    )
    back = alert_embed([Healthy(n, since, NOW) for n in ("A", "B")])
    assert (
        back.title == "🟢 Fully online again: A, B" and back.fields[1].value == "**online** · degraded for 12 min 0 s"
    )


def test_history_lines_of_degraded_spells() -> None:
    since = NOW - timedelta(hours=1)
    (page,) = history_embeds(
        [DegradedRecord("JS", since, "delivery queue 350 > 180", None), DegradedRecord("JS", since, "x", NOW)], None
    )
    still, ended = str(page.description).splitlines()
    assert still == f"🟡 <t:{int(since.timestamp())}:f> **JS** still degraded · online, delivery queue 350 > 180"
    assert ended == f"🟡 <t:{int(since.timestamp())}:f> **JS** degraded for 1 h · online, x"


def test_a_prompt_the_bot_could_not_finish_shows_the_audit_cut_off_or_ended() -> None:
    cut = RestartRecord("Beta", NOW, Origin.DISCORD, "alice (1)", "interrupted", CUT_OFF_REASON, None, None, None)
    done = RestartRecord("Alpha", NOW, Origin.DISCORD, "alice (1)", "restarted", "exit code 0", 3.2, 0, True)
    assert restart_audit_embed([cut]).title == f"Restart Beta: interrupted: {CUT_OFF_REASON}"
    assert restart_audit_embed([done]).title == "Alpha: restarted"  # ended, but the bot could not say so then
    both = restart_audit_embed([done, cut])
    assert both.title == "Restart of 2 servers: 1 restarted"
    assert [(f.name, f.value) for f in both.fields] == [
        ("Alpha", "**restarted** · exit code 0 · 3.2 s"),
        ("Beta", f"**interrupted** · {CUT_OFF_REASON}"),
    ]
