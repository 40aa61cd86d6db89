"""A small file the running bot rewrites after every monitor round, so `poracle-bot healthcheck` can tell
a working bot from a hung one (Docker's HEALTHCHECK runs in a separate process)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

FILE_NAME = "heartbeat.json"


@dataclass(frozen=True, slots=True)
class Heartbeat:
    round_completed_at: datetime
    connected: bool  # to Discord's gateway when the round ended
    away_since: datetime | None = None  # while not connected: since when (the start, if never connected)
    alerts_waiting: int = 0  # alerts in the outbox, not posted yet

    def problem(self, max_age: timedelta, now: datetime | None = None) -> str | None:
        """Why this heartbeat does not show a working bot, or None when it does. Discord being away is no
        such reason: the monitor works on and keeps the alerts (restarting the bot would not bring Discord
        back); `state` says so."""
        age = (now or datetime.now(UTC)) - self.round_completed_at
        if age > max_age:
            return f"last monitor round ended {age.total_seconds():.0f} s ago (limit {max_age.total_seconds():.0f} s)"
        return None

    def state(self, now: datetime | None = None) -> str:
        """What the bot is doing, in words, for a heartbeat without a problem."""
        if self.connected:
            return "connected to Discord, monitor rounds are running"
        away = f" for {_duration((now or datetime.now(UTC)) - self.away_since)}" if self.away_since else ""
        waiting = {0: "no alerts", 1: "1 alert"}.get(self.alerts_waiting, f"{self.alerts_waiting} alerts")
        return f"monitoring; not connected to Discord{away}, {waiting} waiting"


def _duration(delta: timedelta) -> str:
    minutes, seconds = divmod(max(0, int(delta.total_seconds())), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{seconds} s"


def write(data_dir: Path, heartbeat: Heartbeat) -> None:
    """Replace the file atomically: a reader never sees half of it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / FILE_NAME
    temporary = path.with_suffix(".tmp")
    away = heartbeat.away_since.isoformat() if heartbeat.away_since else None
    temporary.write_text(
        json.dumps(
            {
                "round_completed_at": heartbeat.round_completed_at.isoformat(),
                "connected": heartbeat.connected,
                "away_since": away,
                "alerts_waiting": heartbeat.alerts_waiting,
            }
        )
    )
    os.replace(temporary, path)


def read(data_dir: Path) -> Heartbeat | None:
    """The last heartbeat, or None when there is none or it cannot be read."""
    try:
        data = json.loads((data_dir / FILE_NAME).read_text())
        away = data.get("away_since")
        return Heartbeat(
            datetime.fromisoformat(data["round_completed_at"]),
            bool(data["connected"]),
            datetime.fromisoformat(away) if away else None,
            int(data.get("alerts_waiting", 0)),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
