"""Waiting for something another process (or task) does, when there is no event to wait on: polling,
with a deadline that says what did not happen."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def eventually(condition: Callable[[], bool], what: str | Callable[[], str], timeout: float = 10.0) -> None:
    """Return once `condition()` holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"no {what if isinstance(what, str) else what()} within {timeout} s")
        await asyncio.sleep(0.02)
