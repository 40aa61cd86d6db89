"""`poracle-bot run` as a process of its own, so tests can send it real signals (SIGTERM, SIGKILL): the
production CLI (`python -m bot run`), with discord.py pointed at the test's Discord double by
discord_site/sitecustomize.py."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from tests.support.cli import cli_env
from tests.support.waiting import eventually

SITE = Path(__file__).resolve().parent / "discord_site"
PORT_VARIABLE = "DISCORD_DOUBLE_PORT"  # read by discord_site/sitecustomize.py


class BotProcess:
    """A running bot; `lines` is its log so far (stdout and stderr), read as it comes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.lines.append(line.decode(errors="replace").rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def matching(self, text: str) -> list[str]:
        return [line for line in self.lines if text in line]

    async def wait_for_line(self, text: str, timeout: float = 15.0) -> str:
        """The first log line containing `text`, once it is there."""
        await self.wait_until(lambda: bool(self.matching(text)), f"a log line with {text!r}", timeout)
        return self.matching(text)[0]

    async def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
        def done() -> bool:
            assert not self._reader.done(), f"the bot exited while waiting for {what}:\n{self.output}"
            return condition()

        await eventually(done, lambda: f"{what}; the bot said:\n{self.output}", timeout)

    def send(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    async def exited(self, timeout: float) -> int:
        """The exit status, once the process has ended and its output is read."""
        code = await asyncio.wait_for(self.process.wait(), timeout)
        await self._reader
        return code


@contextlib.asynccontextmanager
async def bot_process(directory: Path, discord_port: int) -> AsyncIterator[BotProcess]:
    """`poracle-bot run` in `directory` (its `.env` is the configuration); killed at the end if still running."""
    env = cli_env()
    env |= {"PYTHONPATH": os.pathsep.join([str(SITE), env["PYTHONPATH"]]), PORT_VARIABLE: str(discord_port)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run",
        cwd=directory, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    bot = BotProcess(process)
    try:
        yield bot
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        await bot._reader
