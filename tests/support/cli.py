"""Running the command line as an operator does: `python -m bot ...` in a directory with a `.env`, and, with
`as_user`, as the unprivileged user the bot is in production (uid 1000 in Docker): root passes every
permission check, so whether the bot may write somewhere is only tested truthfully without root."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import resource
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass(frozen=True)
class User:
    uid: int
    gid: int


def _drop_to(user: User) -> list[str]:
    """setpriv to the user's uid and gid, without supplementary groups, keeping one capability:
    CAP_DAC_READ_SEARCH, to read the interpreter and its packages wherever they are (/root/.pyenv is
    root's alone). It bypasses read and search permission only: every write is checked as the user."""
    ids = [f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups"]
    return ["setpriv", *ids, "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]


def unprivileged_user() -> User:
    """This user when the tests do not run as root; `nobody` when they do (CI)."""
    if os.geteuid() != 0:
        return User(os.getuid(), os.getgid())
    nobody = pwd.getpwnam("nobody")
    return User(nobody.pw_uid, nobody.pw_gid)


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
    cwd: Path,
    *args: str,
    stdin: bool = False,
    as_user: User | None = None,
    open_files: tuple[int, int] | None = None,
) -> asyncio.subprocess.Process:
    """Start the CLI as its own process. Its stdin is a pipe when `stdin`; `as_user` runs it as that user;
    `open_files` limits its RLIMIT_NOFILE."""
    argv = [sys.executable, "-m", "bot", *args]
    env = cli_env()
    if as_user is not None:
        env["HOME"] = str(cwd)  # asyncssh looks into ~/.ssh: root's would be out of reach
        if os.geteuid() == 0:
            argv = [*_drop_to(as_user), *argv]
    return await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd, env=env,
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
    cwd: Path,
    *args: str,
    stdin: bytes | None = None,
    timeout: float = 60,
    as_user: User | None = None,
    open_files: tuple[int, int] | None = None,
) -> Run:
    """Run the CLI without blocking the event loop (the test's HTTP servers must keep answering)."""
    process = await start_cli(cwd, *args, stdin=stdin is not None, as_user=as_user, open_files=open_files)
    out, err = await asyncio.wait_for(process.communicate(stdin), timeout)
    assert process.returncode is not None
    run = Run(process.returncode, out.decode(), err.decode())
    assert "Traceback" not in run.out + run.err, run
    return run


def write_env(directory: Path, **variables: str) -> Path:
    path = directory / ".env"
    path.write_text("".join(f"{key}={value}\n" for key, value in variables.items()))
    return path
