"""Running one configured command on a server over SSH, bounded in time, with honest outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from enum import StrEnum

import asyncssh

from bot.config import HostKeyPolicy, ServerConfig, Settings
from bot.hostkeys import HostKeyChecker, KnownHosts, fingerprint, host_pattern
from bot.output import OutputTail, clean_output

log = logging.getLogger(__name__)


class CommandOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed out"
    CONNECTION_ERROR = "connection error"


@dataclass(frozen=True, slots=True)
class CommandResult:
    """How a remote command ended. `output` is already cleaned for people to read."""

    outcome: CommandOutcome
    reason: str
    exit_code: int | None = None
    output: str = ""
    duration_s: float = 0.0

    @property
    def succeeded(self) -> bool:
        return self.outcome is CommandOutcome.SUCCEEDED


class _ConnectionProblem(Exception):
    """A reason, in words, why no command could run."""


class SshRunner:
    """Runs commands with the bot's key: key auth only, never a prompt, host keys per the policy."""

    def __init__(self, settings: Settings) -> None:
        self.known_hosts = KnownHosts(settings.ssh_known_hosts)
        self.policy = settings.ssh_host_key_policy
        self.connect_timeout = settings.ssh_connect_timeout

    async def run(self, server: ServerConfig, command: str, timeout: float) -> CommandResult:
        """Run `command` through the remote login shell; stop it for real if `timeout` passes."""
        started = time.monotonic()
        try:
            async with self._connect(server) as conn:
                outcome = await self._run(conn, command, timeout)
        except _ConnectionProblem as exc:
            outcome = CommandResult(CommandOutcome.CONNECTION_ERROR, str(exc))
        return replace(outcome, duration_s=round(time.monotonic() - started, 2))

    @contextlib.asynccontextmanager
    async def _connect(self, server: ServerConfig) -> AsyncIterator[asyncssh.SSHClientConnection]:
        key = self._read_key(server)
        checker = HostKeyChecker(self.known_hosts, self.policy, server.host, server.ssh_port)
        if self.policy is HostKeyPolicy.OFF:
            log.warning("Host key checking is OFF: connecting to %s without verifying who answers", server.ssh_target)
            known_hosts = None
            already_known = False
        else:
            known_hosts = self.known_hosts.load()
            already_known = bool(self.known_hosts.keys_for(server.host, server.ssh_port))
        try:
            conn = await asyncssh.connect(
                server.host,
                port=server.ssh_port,
                username=server.ssh_user,
                client_factory=lambda: checker,
                known_hosts=known_hosts,
                client_keys=[key],
                # Nothing from the environment: no ~/.ssh/config, no agent, no password or keyboard prompts.
                config=None,
                agent_path=None,
                password=None,
                kbdint_auth=False,
                gss_auth=False,
                host_based_auth=False,
                connect_timeout=self.connect_timeout,
            )
        except asyncssh.HostKeyNotVerifiable:
            raise _ConnectionProblem(self._host_key_reason(server, checker, already_known)) from None
        except asyncssh.PermissionDenied:
            raise _ConnectionProblem(f"SSH key rejected by {server.ssh_user}@{server.host}") from None
        except TimeoutError:
            raise _ConnectionProblem(f"no SSH login within {self.connect_timeout:g} s") from None
        except ConnectionRefusedError:
            raise _ConnectionProblem(f"SSH connection refused on port {server.ssh_port}") from None
        except socket.gaierror:
            raise _ConnectionProblem(f"cannot resolve host {server.host}") from None
        except OSError as exc:
            raise _ConnectionProblem(f"cannot connect: {exc.strerror or exc}") from None
        except asyncssh.Error as exc:
            raise _ConnectionProblem(f"SSH error: {exc.reason}") from None
        try:
            yield conn
        finally:
            conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 5)

    def _read_key(self, server: ServerConfig) -> asyncssh.SSHKey:
        try:
            return asyncssh.read_private_key(server.ssh_key_path)
        except OSError as exc:
            raise _ConnectionProblem(f"cannot read SSH key {server.ssh_key_path}: {exc.strerror}") from None
        except asyncssh.KeyImportError as exc:
            if "assphrase" in str(exc):
                raise _ConnectionProblem(
                    f"SSH key {server.ssh_key_path} has a passphrase; the bot needs a key without one"
                ) from None
            raise _ConnectionProblem(f"SSH key {server.ssh_key_path} is not a private key: {exc}") from None

    def _host_key_reason(self, server: ServerConfig, checker: HostKeyChecker, already_known: bool) -> str:
        offered = f" (offered {fingerprint(checker.offered_key)})" if checker.offered_key else ""
        where = host_pattern(server.host, server.ssh_port)
        if already_known:
            log.error("Host key of %s CHANGED%s: refused, nothing was run", where, offered)
            return (
                f"host key of {where} has CHANGED{offered}; refused (possible man-in-the-middle). If the server "
                f"was reinstalled, remove its line from {self.known_hosts.path} and pin the new key"
            )
        return f"host key of {where} is not trusted{offered}; pin it with `poracle-bot trust {server.name}`"

    @staticmethod
    async def _run(conn: asyncssh.SSHClientConnection, command: str, timeout: float) -> CommandResult:
        tail = OutputTail()
        try:
            # A pty ties the remote command to the session: when we hang up, it gets SIGHUP and stops.
            process = await conn.create_process(
                command, term_type="dumb", stderr=asyncssh.STDOUT, encoding="utf-8", errors="replace"
            )
        except asyncssh.Error as exc:
            raise _ConnectionProblem(f"SSH session refused: {exc.reason}") from None
        try:
            async with asyncio.timeout(timeout):
                process.stdin.write_eof()
                while chunk := await process.stdout.read(4096):
                    tail.feed(chunk)
                completed = await process.wait()
        except TimeoutError:
            with contextlib.suppress(Exception):
                process.send_signal("KILL")
            process.close()
            return CommandResult(
                CommandOutcome.TIMED_OUT,
                f"no result within {timeout:g} s; the command was stopped",
                output=clean_output(tail.text),
            )
        except asyncssh.Error as exc:
            return CommandResult(
                CommandOutcome.CONNECTION_ERROR, f"connection lost: {exc.reason}", output=clean_output(tail.text)
            )
        output = clean_output(tail.text)
        if completed.exit_status == 0:
            return CommandResult(CommandOutcome.SUCCEEDED, "exit code 0", exit_code=0, output=output)
        if completed.exit_status is None or completed.exit_status < 0:
            signal = completed.exit_signal[0] if completed.exit_signal else "unknown"
            return CommandResult(CommandOutcome.FAILED, f"killed by signal {signal}", output=output)
        return CommandResult(
            CommandOutcome.FAILED, f"exit code {completed.exit_status}", exit_code=completed.exit_status, output=output
        )
