"""Running one configured command, or one poracle-gate request, on a server over SSH, bounded in time, with
honest outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Generic, TypeVar

import asyncssh

from bot.config import HostKeyPolicy, ServerConfig, Settings
from bot.core.gate_protocol import GateError, GateReply
from bot.core.hostkeys import HostKeyChecker, KnownHosts, fingerprint, host_pattern
from bot.core.output import OutputTail
from bot.core.redact import readable, remote_words

log = logging.getLogger(__name__)

# The gate's answer is the last line of its output; a list of many processes is long, so keep more than
# the tail a person reads.
GATE_OUTPUT_KEEP = 1024 * 1024
ReplyT = TypeVar("ReplyT", bound=GateReply)
CLOSE_WAIT = 5.0  # seconds to wait for a connection to close after the command ended


class CommandOutcome(StrEnum):
    """The ways a remote command ends, kept apart: each asks the admin for something else."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"  # it ran and said no (an exit code, a signal)
    TIMED_OUT = "timed out"  # stopped by the bot after PORACLE_SSH_TIMEOUT
    CONNECTION_ERROR = "connection error"  # nothing ran
    INTERRUPTED = "interrupted"  # the bot was stopped while it ran: whether it finished is unknown


@dataclass(frozen=True, slots=True)
class CommandResult:
    """How a remote command ended. `output` is already cleaned for people to read, and redacted: a RESTART_CMD
    may print what pm2 knows of a process's environment."""

    outcome: CommandOutcome
    reason: str
    exit_code: int | None = None
    output: str = ""
    duration_s: float = 0.0

    @property
    def succeeded(self) -> bool:
        return self.outcome is CommandOutcome.SUCCEEDED


@dataclass(frozen=True, slots=True)
class GateResult(Generic[ReplyT]):
    """One poracle-gate request. `command` says how it ended, as for any command: succeeded only when the gate
    answered ok (then `reply` is its typed answer); a refusal or failure of the gate is FAILED with the gate's
    words as the reason and its code in `error_code` ("no-reply": nothing answered as the gate, e.g. the key
    runs a plain shell). `command.output` is empty: the gate's answer is data, read through `reply`."""

    command: CommandResult
    reply: ReplyT | None = None
    error_code: str | None = None


class ConnectionProblem(Exception):
    """A reason, in words, why no command could run."""


def read_client_key(path: Path) -> asyncssh.SSHKey:
    """The bot's private key; ConnectionProblem says why it cannot be used."""
    try:
        return asyncssh.read_private_key(path)
    except OSError as exc:
        raise ConnectionProblem(f"cannot read SSH key {path}: {exc.strerror}") from None
    except asyncssh.KeyImportError as exc:
        if "assphrase" in str(exc):
            raise ConnectionProblem(f"SSH key {path} has a passphrase; the bot needs a key without one") from None
        raise ConnectionProblem(f"SSH key {path} is not a private key: {exc}") from None


class SshRunner:
    """Runs commands with the bot's key: key auth only, never a prompt, host keys per the policy."""

    def __init__(self, settings: Settings) -> None:
        self.known_hosts = KnownHosts(settings.ssh_known_hosts)
        self.policy = settings.ssh_host_key_policy
        self.connect_timeout = settings.ssh_connect_timeout

    async def run(self, server: ServerConfig, command: str, timeout: float) -> CommandResult:
        """Run `command` through the remote login shell; stop it for real if `timeout` passes."""
        tail = OutputTail()
        return await self._session(server, lambda conn: self._run(conn, command, timeout, tail))

    async def gate(
        self,
        server: ServerConfig,
        request: str,
        parse: Callable[[str], ReplyT],
        timeout: float,
        *,
        pty: bool = True,
    ) -> GateResult[ReplyT]:
        """Send one request built by bot.core.gate_protocol and read the answer with its `parse`. With a pty
        (for a restart) the gate and its pm2 die with the session if `timeout` passes; without one, a verb
        that only reads needs no `pty` on the key line."""
        tail = OutputTail(GATE_OUTPUT_KEEP)
        ended = await self._session(server, lambda conn: self._run(conn, request, timeout, tail, pty=pty, show=False))
        if ended.outcome in (CommandOutcome.TIMED_OUT, CommandOutcome.CONNECTION_ERROR):
            return GateResult(replace(ended, output=""))
        try:
            reply = parse(tail.text)
        except GateError as exc:
            # Nothing answered as the gate: how the session ended (exit 127, a signal) is part of the story.
            message = remote_words(exc.message)
            reason = message if ended.succeeded or exc.code != "no-reply" else f"{ended.reason}; {message}"
            failed = replace(ended, outcome=CommandOutcome.FAILED, reason=reason, output="")
            return GateResult(failed, error_code=exc.code)
        return GateResult(replace(ended, output=""), reply)

    async def login(self, server: ServerConfig) -> CommandResult:
        """Log in and out again without opening a session: nothing runs on the server, not even the
        forced command of a key limited with `command=` in authorized_keys."""
        return await self._session(server, _logged_in)

    async def host_key(self, server: ServerConfig) -> asyncssh.SSHKey:
        """The key the server offers now, without logging in, trusting or pinning it. Of a pinned key's
        type when one is pinned, as a login negotiates it; of any type if the server has none of those."""
        pinned = self.known_hosts.keys_for(server.host, server.ssh_port)
        algorithms = [alg.decode() for key in pinned for alg in key.sig_algorithms]
        with self._connection_errors(server):
            try:
                key = await self._fetch_host_key(server, algorithms)
            except asyncssh.KeyExchangeFailed:
                if not algorithms:
                    raise
                key = await self._fetch_host_key(server, [])
        if key is None:
            raise ConnectionProblem(f"{server.ssh_target} offered no host key")
        return key

    async def _fetch_host_key(self, server: ServerConfig, algorithms: list[str]) -> asyncssh.SSHKey | None:
        return await asyncio.wait_for(
            asyncssh.get_server_host_key(
                server.host, server.ssh_port, server_host_key_algs=algorithms or (), config=None
            ),
            self.connect_timeout,
        )

    async def _session(
        self, server: ServerConfig, work: Callable[[asyncssh.SSHClientConnection], Awaitable[CommandResult]]
    ) -> CommandResult:
        started = time.monotonic()
        try:
            async with self._connect(server) as conn:
                outcome = await work(conn)
        except ConnectionProblem as exc:
            outcome = CommandResult(CommandOutcome.CONNECTION_ERROR, str(exc))
        return replace(outcome, duration_s=round(time.monotonic() - started, 2))

    @contextlib.asynccontextmanager
    async def _connect(self, server: ServerConfig) -> AsyncIterator[asyncssh.SSHClientConnection]:
        key = read_client_key(server.ssh_key_path)
        checker = HostKeyChecker(self.known_hosts, self.policy, server.host, server.ssh_port)
        if self.policy is HostKeyPolicy.OFF:
            log.warning("Host key checking is OFF: connecting to %s without verifying who answers", server.ssh_target)
            known_hosts = None
            already_known = False
        else:
            try:
                known_hosts = self.known_hosts.load()
                already_known = bool(self.known_hosts.keys_for(server.host, server.ssh_port))
            except (OSError, ValueError) as exc:
                # A hand-edited line asyncssh cannot parse, or an unreadable file: a reason naming the file,
                # not a traceback (the CLI and the Discord command would otherwise just crash).
                problem = exc.strerror if isinstance(exc, OSError) else str(exc)
                raise ConnectionProblem(f"cannot use known_hosts file {self.known_hosts.path}: {problem}") from None
        with self._connection_errors(server):
            try:
                conn = await asyncssh.connect(
                    server.host,
                    port=server.ssh_port,
                    username=server.ssh_user,
                    client_factory=lambda: checker,
                    known_hosts=known_hosts,
                    client_keys=[key],
                    # Nothing from the environment: no ~/.ssh/config, no agent, no password or keyboard prompts,
                    # and no X.509 trust files from ~/.ssh (reading them fails where HOME is not the bot's own).
                    config=None,
                    agent_path=None,
                    x509_trusted_certs=None,
                    x509_trusted_cert_paths=None,
                    password=None,
                    kbdint_auth=False,
                    gss_auth=False,
                    host_based_auth=False,
                    connect_timeout=self.connect_timeout,
                )
            except asyncssh.HostKeyNotVerifiable:
                raise ConnectionProblem(self._host_key_reason(server, checker, already_known)) from None
        try:
            yield conn
        finally:
            conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), CLOSE_WAIT)

    @contextlib.contextmanager
    def _connection_errors(self, server: ServerConfig) -> Iterator[None]:
        """Turn what connecting can raise into a ConnectionProblem with the reason in words."""
        try:
            yield
        except asyncssh.PermissionDenied:
            raise ConnectionProblem(
                f"SSH key rejected by {server.ssh_user}@{server.host}; add its public key to "
                f"~/.ssh/authorized_keys of {server.ssh_user} there"
            ) from None
        except TimeoutError:
            raise ConnectionProblem(f"no SSH login within {self.connect_timeout:g} s") from None
        except ConnectionRefusedError:
            raise ConnectionProblem(f"SSH connection refused on port {server.ssh_port}") from None
        except socket.gaierror:
            raise ConnectionProblem(f"cannot resolve host {server.host}") from None
        except OSError as exc:
            raise ConnectionProblem(f"cannot connect: {exc.strerror or exc}") from None
        except asyncssh.Error as exc:
            raise ConnectionProblem(f"SSH error: {remote_words(exc.reason)}") from None

    def _host_key_reason(self, server: ServerConfig, checker: HostKeyChecker, already_known: bool) -> str:
        offered = f" (offered {fingerprint(checker.offered_key)})" if checker.offered_key else ""
        where = host_pattern(server.host, server.ssh_port)
        if checker.pin_error is not None:
            return (
                f"cannot pin the host key of {where}{offered}: {checker.pin_error.strerror or checker.pin_error}; "
                f"make {self.known_hosts.path} writable (PORACLE_SSH_KNOWN_HOSTS)"
            )
        if already_known:
            log.error("Host key of %s CHANGED%s: refused, nothing was run", where, offered)
            return (
                f"host key of {where} has CHANGED{offered}; refused (possible man-in-the-middle). If the server "
                f"was reinstalled, remove its line from {self.known_hosts.path} and pin the new key"
            )
        return f"host key of {where} is not trusted{offered}; pin it with `poracle-bot trust {server.name}`"

    @staticmethod
    async def _run(
        conn: asyncssh.SSHClientConnection,
        command: str,
        timeout: float,
        tail: OutputTail,
        *,
        pty: bool = True,
        show: bool = True,
    ) -> CommandResult:
        """`show`: with the output as people read it; the gate's answer is data, read from `tail`, and long."""

        def shown() -> str:
            return readable(tail.text) if show else ""

        try:
            # A pty ties the remote command to the session: when we hang up, it gets SIGHUP and stops.
            process = await conn.create_process(
                command,
                term_type="dumb" if pty else None,
                stderr=asyncssh.STDOUT,
                encoding="utf-8",
                errors="replace",
            )
        except asyncssh.ChannelOpenError as exc:
            if "PTY" in exc.reason:  # `restrict` in authorized_keys forbids the terminal we need
                raise ConnectionProblem(
                    "the server refused a terminal for the command; if the key is limited in authorized_keys, "
                    'add `pty` to its options (restrict,pty,command="...")'
                ) from None
            raise ConnectionProblem(f"SSH session refused: {remote_words(exc.reason)}") from None
        except asyncssh.Error as exc:
            raise ConnectionProblem(f"SSH session refused: {remote_words(exc.reason)}") from None
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
                output=shown(),
            )
        except asyncssh.Error as exc:
            return CommandResult(
                CommandOutcome.CONNECTION_ERROR, f"connection lost: {remote_words(exc.reason)}", output=shown()
            )
        output = shown()
        if completed.exit_status == 0:
            return CommandResult(CommandOutcome.SUCCEEDED, "exit code 0", exit_code=0, output=output)
        if completed.exit_status is None or completed.exit_status < 0:
            signal = completed.exit_signal[0] if completed.exit_signal else "unknown"
            return CommandResult(CommandOutcome.FAILED, f"killed by signal {signal}", output=output)
        return CommandResult(
            CommandOutcome.FAILED, f"exit code {completed.exit_status}", exit_code=completed.exit_status, output=output
        )


async def _logged_in(conn: asyncssh.SSHClientConnection) -> CommandResult:
    return CommandResult(CommandOutcome.SUCCEEDED, "logged in; nothing was run")
