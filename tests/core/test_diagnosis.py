"""Hints from the health check and pm2's list together: given only where the facts allow one."""

from __future__ import annotations

from datetime import timedelta

from bot.core.diagnosis import LOGIN_HINT, hints
from bot.core.processes import ProcessRead, ProcessReport
from tests.support.clock import START
from tests.support.pm2_lists import process

LATER = START + timedelta(minutes=5)  # the processes started at START
REFUSED = "connection refused"  # why the health check failed; None: it answered


def report(*processes: object, troubles: dict[str, str] | None = None, at: object = LATER) -> ProcessReport:
    return ProcessReport(ProcessRead("Main", at, tuple(processes)), troubles=troubles or {})  # type: ignore[arg-type]


def test_online_in_pm2_but_the_port_refuses_is_the_discord_login() -> None:
    assert hints(report(process("poracle"), process("helper", pm_id=1)), REFUSED) == [LOGIN_HINT]
    assert LOGIN_HINT == (
        "PoracleJS is running but its API does not listen: it waits for its Discord login; check its token "
        "(`/poracle logs`)"
    )


def test_no_login_hint_where_the_facts_do_not_allow_it() -> None:
    up = report(process("poracle"))
    assert hints(up, None) == []
    assert hints(up, "no answer within 5 s") == []  # something answers slowly: not a port nobody listens on
    assert hints(report(process("poracle"), at=START + timedelta(seconds=20)), REFUSED) == []  # just started
    assert hints(None, REFUSED) == []
    assert hints(ProcessReport(ProcessRead("Main", LATER, reason="no process list within 5 s")), REFUSED) == []


def test_a_process_in_trouble_points_at_its_log_even_while_http_answers() -> None:
    looping = report(process("poracle", restarts=40), troubles={"poracle": "12 restarts in 10 min"})
    expected = ["poracle 12 restarts in 10 min: its log says why (`/poracle logs`)"]
    assert hints(looping, None) == expected
    assert hints(looping, REFUSED) == expected


def test_an_errored_or_stopped_process_of_a_server_down_says_so() -> None:
    down = report(process("poracle", status="errored"), process("helper", pm_id=1))
    assert hints(down, REFUSED) == [
        "pm2 shows poracle errored: read why with `/poracle logs`, then `/poracle restart` it"
    ]
    assert hints(report(), REFUSED) == [
        "pm2 lists no processes for the SSH user: PoracleJS is not running under pm2 there"
    ]


def test_names_are_written_as_the_front_asks() -> None:
    down = report(process("po_racle", status="stopped"))
    assert hints(down, REFUSED, lambda name: name.replace("_", "\\_")) == [
        "pm2 shows po\\_racle stopped: read why with `/poracle logs`, then `/poracle restart` it"
    ]
