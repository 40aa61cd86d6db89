"""Hints from what the health check and pm2's list say together, where the facts allow one. Pure: no I/O.

PoracleJS opens its API only after its Discord login, and retries a failed login every 2 s forever: pm2
then shows it `online`, its restart count still, while the API port refuses connections. PoracleNG logs
"Discord bot failed to start:" and keeps running with its API up, so its HTTP says nothing of that.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from bot.core.crashloop import TROUBLED
from bot.core.processes import ProcessReport

# A process started this recently may simply not be listening yet (PoracleJS takes seconds to start).
SETTLED = timedelta(minutes=1)
REFUSED = "connection refused"
LOGIN_HINT = (
    "PoracleJS is running but its API does not listen: it waits for its Discord login; check its token "
    "(`/poracle logs`)"
)


def hints(report: ProcessReport | None, offline: str | None, shown: Callable[[str], str] = str) -> list[str]:
    """What to look at next for one server, given its pm2 list and why its health check failed (`offline`;
    None while it answers), most telling first; none when the facts say nothing. `shown` writes a process
    name (pm2's names are remote text: a front may escape them)."""
    if report is None or report.read.processes is None:
        return []
    processes = report.read.processes
    found = [f"{shown(name)} {reason}: its log says why (`/poracle logs`)" for name, reason in report.troubles.items()]
    if offline is None:
        return found
    stopped = [p for p in processes if p.status in TROUBLED and p.name not in report.troubles]
    found += [
        f"pm2 shows {shown(p.name)} {p.status}: read why with `/poracle logs`, then `/poracle restart` it"
        for p in stopped
    ]
    if not processes:
        found.append("pm2 lists no processes for the SSH user: PoracleJS is not running under pm2 there")
    elif offline == REFUSED and report.all_online and not report.troubles and _settled(report):
        found.append(LOGIN_HINT)
    return found


def _settled(report: ProcessReport) -> bool:
    at = report.read.at
    return all(p.started_at is not None and at - p.started_at >= SETTLED for p in report.read.processes or ())
