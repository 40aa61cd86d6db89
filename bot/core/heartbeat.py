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

    def problem(self, max_age: timedelta, now: datetime | None = None) -> str | None:
        """Why this heartbeat does not show a healthy bot, or None when it does."""
        age = (now or datetime.now(UTC)) - self.round_completed_at
        if age > max_age:
            return f"last monitor round ended {age.total_seconds():.0f} s ago (limit {max_age.total_seconds():.0f} s)"
        if not self.connected:
            return "not connected to Discord"
        return None


def write(data_dir: Path, heartbeat: Heartbeat) -> None:
    """Replace the file atomically: a reader never sees half of it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / FILE_NAME
    temporary = path.with_suffix(".tmp")
    temporary.write_text(
        json.dumps({"round_completed_at": heartbeat.round_completed_at.isoformat(), "connected": heartbeat.connected})
    )
    os.replace(temporary, path)


def read(data_dir: Path) -> Heartbeat | None:
    """The last heartbeat, or None when there is none or it cannot be read."""
    try:
        data = json.loads((data_dir / FILE_NAME).read_text())
        return Heartbeat(datetime.fromisoformat(data["round_completed_at"]), bool(data["connected"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
