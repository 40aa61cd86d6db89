"""The store's SQLite file as it is on disk: read directly, or made as an older poracle-bot left it."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from bot.core.store import FILE_NAME

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)  # the store tests' present: fixed, so that ages and figures are exact


def rows(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    """Read the database file directly, read-only: what is really on disk."""
    connection = sqlite3.connect(f"file:{data_dir / FILE_NAME}?mode=ro", uri=True)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def migration(number: int) -> str:
    """The text of one schema migration, as shipped in the package."""
    folder = resources.files("bot.core") / "migrations"
    (script,) = [entry for entry in folder.iterdir() if entry.name.startswith(f"{number:04}_")]
    return script.read_text()


def older_database(data: Path, version: int) -> sqlite3.Connection:
    """A database in `data` as a poracle-bot of schema `version` left it, with server A (id 1); the caller
    adds its rows and closes it."""
    data.mkdir()
    connection = sqlite3.connect(data / FILE_NAME, isolation_level=None)
    scripts = "".join(migration(number) for number in range(1, version + 1))
    connection.executescript(f"{scripts}\nPRAGMA user_version = {version};")
    connection.execute("INSERT INTO servers VALUES (1, 'A')")
    return connection
