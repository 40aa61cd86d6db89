"""Running the command line as an operator does: `python -m bot ...` in a directory with a `.env`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass
class Run:
    code: int
    out: str
    err: str


def cli_env() -> dict[str, str]:
    """The test process's environment without configuration of its own, and with `bot` importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORACLE_", "DISCORD_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def open_files_limit(soft: int, hard: int) -> Callable[[], None]:
    """A preexec_fn: the child starts with this RLIMIT_NOFILE (soft, hard), as under `ulimit -n`."""
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def start_cli(
    cwd: Path, *args: str, stdin: bool = False, open_files: tuple[int, int] | None = None
) -> asyncio.subprocess.Process:
    """Start the CLI as its own process. Its stdin is a pipe when `stdin`; `open_files` limits its RLIMIT_NOFILE."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args,
        cwd=cwd, env=cli_env(),
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        preexec_fn=open_files_limit(*open_files) if open_files else None,
    )  # fmt: skip


@contextlib.asynccontextmanager
async def running_cli(cwd: Path, *args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """The CLI running in the background for the block; killed if still running at its end."""
    process = await start_cli(cwd, *args)
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def cli(
    cwd: Path, *args: str, stdin: bytes | None = None, timeout: float = 60, open_files: tuple[int, int] | None = None
) -> Run:
    """Run the CLI without blocking the event loop (the test's HTTP servers must keep answering)."""
    process = await start_cli(cwd, *args, stdin=stdin is not None, open_files=open_files)
    out, err = await asyncio.wait_for(process.communicate(stdin), timeout)
    assert process.returncode is not None
    run = Run(process.returncode, out.decode(), err.decode())
    assert "Traceback" not in run.out + run.err, run
    return run


def write_env(directory: Path, **variables: str) -> Path:
    path = directory / ".env"
    path.write_text("".join(f"{key}={value}\n" for key, value in variables.items()))
    return path
