"""Running test code as an unprivileged user, as production does (the Docker image runs the bot as uid 1000):
root ignores file modes, so a test run as root would hide the permission bugs that user meets.

The code runs in a forked child, which needs no interpreter of its own (root's pyenv is not reachable
by uid 1000) and drops to the user before it starts. What the child imports later must be importable by
that user, or already imported here (asyncio's default executor is).
"""

from __future__ import annotations

import concurrent.futures.thread  # noqa: F401 - loaded here: the child cannot read root's pyenv to import it
import multiprocessing
import os
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

UNPRIVILEGED = 1000  # the uid and gid the Docker image runs the bot as (owner of /app/data)
FORK = multiprocessing.get_context("fork")


def become_unprivileged() -> None:
    """In a child process: drop every privilege (a no-op for a non-root test run, already unprivileged)."""
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(UNPRIVILEGED)
        os.setuid(UNPRIVILEGED)


def _call(work: Callable[..., Any], args: tuple[Any, ...], pipe: Connection) -> None:
    become_unprivileged()
    try:
        pipe.send(("ok", work(*args)))
    except Exception as exc:  # the parent asserts on it, with the child's words
        pipe.send(("error", repr(exc)))


def run_unprivileged(work: Callable[..., Any], *args: Any, timeout: float = 30) -> Any:
    """`work(*args)` in a child process running as the unprivileged user; its (picklable) result."""
    ours, theirs = FORK.Pipe()
    child = FORK.Process(target=_call, args=(work, args, theirs))
    child.start()
    try:
        assert ours.poll(timeout), f"the unprivileged child did not answer in {timeout} s"
        state, value = ours.recv()
    finally:
        child.join(timeout)
    assert state == "ok", value
    return value
