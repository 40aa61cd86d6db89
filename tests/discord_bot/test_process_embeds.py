"""The pm2 messages are pure builders: the words, the compact table when there are many, the inline-or-file
choice for logs, the escaping of pm2's names, the status line and the restart of one process."""

from __future__ import annotations

from datetime import timedelta

import discord

from bot.config import load_settings
from bot.core.crashloop import GONE, CrashLoop, ProcessRecovery
from bot.core.health import HealthResult
from bot.core.processes import LogTail, ProcessRead, ProcessReport
from bot.core.service import Requester, RestartResult
from bot.core.ssh import CommandOutcome, CommandResult
from bot.core.store import Origin, RestartRecord
from bot.core.watchdog import StatusReport
from bot.discord_bot import limits
from bot.discord_bot.embeds import (
    GREEN,
    ORANGE,
    RED,
    history_embeds,
    restart_announcement,
    restart_prompt_embed,
    restart_result_embed,
    status_embeds,
)
from bot.discord_bot.limits import DESCRIPTION, fit
from bot.discord_bot.process_embeds import FENCES, log_message, process_alert_embed, processes_embed
from tests.support.clock import START
from tests.support.pm2_lists import process
from tests.support.sshd import HOST

LATER = START + timedelta(hours=2)


def report(*processes: object, recent: tuple[int | None, ...] = ()) -> ProcessReport:
    return ProcessReport(ProcessRead("Main", LATER, tuple(processes)), recent)  # type: ignore[arg-type]


def description_rows(embed: discord.Embed) -> list[str]:
    assert embed.description is not None
    return embed.description.removeprefix("```\n").removesuffix("\n```").splitlines()


def test_the_list_is_a_table_with_the_summary_in_the_title() -> None:
    listed = (process("poracle", restarts=12), process("helper", pm_id=1), process("cron", 3, "stopped", 2))
    embed = processes_embed("Main", report(*listed, recent=(4, 0, None)))
    assert embed.title == "pm2 on Main: 2/3 online · poracle 4 restarts in 1 h · cron stopped"
    assert embed.colour == ORANGE and embed.timestamp == LATER
    rows = description_rows(embed)
    assert rows[0].split() == ["NAME", "ID", "STATUS", "PID", "UPTIME", "RESTARTS", "MEMORY", "CPU"]
    assert rows[1].split() == [
        "poracle",
        "0",
        "online",
        "4000",
        "2h",
        "12",
        "(4",
        "in",
        "1",
        "h)",
        "50",
        "MB",
        "0.5",
        "%",
    ]
    assert rows[3].split() == ["cron", "2", "stopped", "-", "-", "3", "-", "-"]  # pm2 reads 0 when not online
    all_up = processes_embed("Main", report(process("poracle")))
    assert all_up.colour == GREEN and all_up.title == "pm2 on Main: 1/1 online"


def test_many_processes_get_the_compact_table_then_as_many_rows_as_fit() -> None:
    many = [process(f"worker-{i:03}-" + "x" * 40, restarts=i, pm_id=i) for i in range(60)]
    compact = processes_embed("Main", report(*many[:50]))
    assert description_rows(compact)[0].split() == ["NAME", "STATUS", "RESTARTS"]
    assert len(description_rows(compact)) == 51
    cut = processes_embed("Main", report(*many + [process(f"w{i}-" + "y" * 60, pm_id=100 + i) for i in range(60)]))
    shown = len(description_rows(cut)) - 1
    assert 0 < shown < 120
    assert cut.footer.text is not None and cut.footer.text.startswith(
        f"{120 - shown} more not shown: `poracle-bot processes`"
    )
    assert len(cut.description or "") <= DESCRIPTION and fit(None, [cut]).embeds[0].description == cut.description


def test_names_are_remote_text_kept_in_the_code_block() -> None:
    embed = processes_embed("Main", report(process("a```b <@&1> **x**")))
    assert embed.description is not None and "```" not in embed.description[4:-4]


def test_a_list_that_was_not_read_says_why() -> None:
    embed = processes_embed("Main", ProcessReport(ProcessRead("Main", LATER, reason="no process list within 5 s")))
    assert (embed.title, embed.description, embed.colour) == (
        "pm2 on Main: not read",
        "no process list within 5 s",
        RED,
    )


def tail(lines: tuple[str, ...], errors: tuple[str, ...] = ()) -> LogTail:
    return LogTail("Main", "poracle", 50, lines, errors, "poracle", 0)


def test_a_log_that_fits_is_a_code_block_and_a_longer_one_an_attached_text_file() -> None:
    room = DESCRIPTION - FENCES
    fits = log_message(tail(("x" * room,)))
    assert fits.attachment is None and fits.embed.description == f"```\n{'x' * room}\n```"
    longer = log_message(tail(("x" * room, "y")))
    assert longer.attachment is not None and longer.attachment.text == "x" * room + "\ny\n"
    assert longer.attachment.file().filename == "Main-poracle-log.txt"
    assert longer.embed.description == f"{room + 2:,} characters: too long to show here, attached as a text file."
    both = log_message(tail(("out",), ("err",)))
    assert both.embed.description == "```\nout\n--- error log, last 1 line(s) ---\nerr\n```"
    assert both.embed.footer.text == "last 50 lines asked · 1 out, 1 error line(s) · redacted"
    assert log_message(tail(())).embed.description == "```\n(both logs are empty)\n```"
    failed = log_message(LogTail("Main", "nope", 50, reason='poracle-gate 1.0.0: pm2 has no process "nope"'))
    assert (failed.embed.title, failed.embed.colour, failed.attachment) == ("Log of nope on Main: not read", RED, None)


def test_crash_alerts_one_or_several_and_their_recoveries() -> None:
    loop = CrashLoop("Main", "po_racle", "12 restarts in 10 min", START)
    single = process_alert_embed([loop])
    assert single.title == "🟠 pm2 process po\\_racle on Main: 12 restarts in 10 min"
    assert [f.value for f in single.fields] == [
        "`/poracle logs server:Main process:po_racle`",
        "`/poracle restart server:Main process:po_racle`",
    ]
    several = process_alert_embed([loop, CrashLoop("Backup", "helper", "errored", START)])
    assert several.title == "🟠 pm2 processes in trouble: po\\_racle on Main, helper on Backup"
    assert [f.name for f in several.fields] == ["po\\_racle on Main", "helper on Backup"]
    stable = process_alert_embed([ProcessRecovery("Main", "helper", START, LATER)])
    assert stable.title == "🟢 pm2 process helper on Main is stable again"
    assert stable.fields[0].value == "2 h" and stable.colour == GREEN
    gone = process_alert_embed([ProcessRecovery("Main", "helper", START, LATER, GONE)])
    assert gone.title == "⚪ pm2 process helper on Main: no longer in pm2's list"


def test_the_status_has_a_pm2_line_per_gate_server_and_a_hint_where_the_facts_allow() -> None:
    refused = HealthResult("Main", False, LATER, reason="connection refused")
    backup = HealthResult("Backup", True, LATER, 200, 10.0)
    status = StatusReport(
        (refused, backup),
        processes={"Main": report(process("poracle"), process("helper_1", status="errored", pm_id=1))},
    )
    (embed,) = status_embeds(status)
    main, other = (field.value for field in embed.fields)
    assert "⚙️ pm2 1/2 online · helper\\_1 errored" in main
    assert "💡 pm2 shows helper\\_1 errored: read why with `/poracle logs`, then `/poracle restart` it" in main
    assert "pm2" not in other  # not a gate server: no line
    login = StatusReport((refused,), processes={"Main": report(process("poracle"))})
    (embed,) = status_embeds(login)
    assert "💡 PoracleJS is running but its API does not listen" in (embed.fields[0].value or "")


def test_a_restart_of_one_process_says_so_everywhere() -> None:
    settings = load_settings(
        {"PORACLE_SERVER_1_NAME": "Main", "PORACLE_SERVER_1_HOST": HOST, "PORACLE_SERVER_1_API": f"http://{HOST}:1",
         "PORACLE_SERVER_1_ACCESS": "gate"}
    )  # fmt: skip
    prompt = restart_prompt_embed(settings.servers, 60, "helper")
    assert prompt.title == "Restart helper on Main?"
    assert (prompt.fields[0].value or "").endswith("```\nporacle-gate 1 restart helper\n```")
    done = CommandResult(CommandOutcome.SUCCEEDED, "exit code 0", 0, duration_s=1.2)
    result = RestartResult("Main", Requester(Origin.DISCORD, "alice (1)"), done, process="helper")
    assert restart_result_embed([result]).title == "helper on Main: restarted"
    user = discord.Object(31)
    user.mention = "<@31>"  # type: ignore[attr-defined]
    assert restart_announcement([result], user) == "pm2 process `helper` of **Main** restarted by <@31>: restarted"  # type: ignore[arg-type]
    record = RestartRecord(
        "Main", LATER, Origin.DISCORD, "alice (1)", "restarted", "exit code 0", 1.2, 0, True, "helper"
    )
    (page,) = history_embeds([record], "Main")
    assert "**Main** restart of `helper` " in (page.description or "")


def test_attachments_keep_their_end_within_the_limit_and_plain_names() -> None:
    text = "é" * limits.ATTACHMENT  # two bytes a character: twice too long
    data = limits.file_bytes(text)
    assert len(data) <= limits.ATTACHMENT and data.decode() == "é" * (len(data) // 2)
    assert limits.file_bytes("short") == b"short"
    assert limits.file_name("Main server-po racle/../x*.txt") == "Main_server-po_racle_.._x_.txt"
    assert limits.file_name("...") == "file" and len(limits.file_name("a" * 300 + ".txt")) == limits.FILE_NAME
