"""The one place that does the real work: health checks and restarts. Every front end calls this.

It knows nothing of Discord or terminals; it returns small typed results, logs what an operator cares about
and writes every restart into the audit, whoever asked for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
from collections.abc import AsyncGenerator, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar

from bot.config import ALL, SERVER_PREFIX, Access, ServerConfig, Settings
from bot.core.clock import SYSTEM_CLOCK, Clock
from bot.core.gate_protocol import (
    GateRestart,
    RestartedProcess,
    logs_command,
    parse_logs,
    parse_processes,
    parse_restart,
    processes_command,
    restart_command,
)
from bot.core.health import HealthChecker, HealthResult
from bot.core.locks import DIR_NAME, Holder, LockDir, Locked, LockError
from bot.core.processes import LogTail, ProcessRead
from bot.core.redact import readable
from bot.core.ssh import CLOSE_WAIT, CommandOutcome, CommandResult, SshRunner
from bot.core.store import RUNNING, Origin, RestartRecord, Store

log = logging.getLogger(__name__)

# PoracleJS takes a few seconds to come back after pm2 starts it; PoracleNG's kill_timeout alone is 10 s.
RECOVERY_WAIT = 60.0
RECOVERY_POLL = 2.0
LOG_LINE_LIMIT = 4000  # characters of one log line kept (the gate sends at most 2000)
# Once the bot is stopping, a restarted server gets this long to answer again: the admin learns the outcome
# before the bot exits, and Docker's stop_grace_period need not cover the whole RECOVERY_WAIT.
STOP_RECOVERY_WAIT = 10.0
INTERRUPTED = "interrupted"
STOPPED_REASON = "the bot was stopped; outcome unknown"
CUT_OFF_REASON = "the bot crashed or was killed before it ended; outcome unknown"
NOT_STARTED_REASON = "not started: the bot is stopping"
ABANDONED_REASON = "what ran it (the bot or a command line) ended before it did; outcome unknown"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asked for a restart, and from where: what the log and the audit name."""

    origin: Origin
    name: str  # "alice (123456789012345678)" in Discord, the local user on the command line
    # Where the requester watches the outcome (the front's own reference, e.g. a Discord message), kept with
    # the audit row: a restart a crash cut off is reported there at the next start.
    reply: str | None = None

    def __str__(self) -> str:
        if self.origin is Origin.AUTOMATIC:
            return f"{self.name} (automatic)"
        return f"{self.name} (command line)" if self.origin is Origin.CLI else self.name


class GateRequired(Exception):
    """A pm2 verb asked of a server in command mode: the bot sends such a server its RESTART_CMD only."""

    def __init__(self, server: ServerConfig) -> None:
        super().__init__(
            f"{server.name}: this needs {SERVER_PREFIX}{server.index}_ACCESS=gate (`poracle-bot gate` shows how)"
        )
        self.server = server


def require_gate(server: ServerConfig) -> None:
    """Raise GateRequired unless the bot may send this server poracle-gate's verbs."""
    if server.access is not Access.GATE:
        raise GateRequired(server)


def process_target(text: str) -> str | int:
    """A pm2 process as an admin names it: digits are its id, anything else its name. ValueError when the
    gate would refuse it, and for `all` (every process, not one: a whole restart leaves the process out)."""
    text = text.strip()
    if text.casefold() == ALL:
        raise ValueError(f"'{ALL}' names no single pm2 process")
    target: str | int = int(text) if text.isdigit() and len(text) <= 6 else text
    restart_command(target)  # the gate's own rules, checked here so nothing is sent that it refuses
    return target


def restart_request(server: ServerConfig, process: str | None = None) -> str:
    """What a restart sends the server: its RESTART_CMD, or with ACCESS=gate the gate's restart of every pm2
    process there (and nothing else: a key limited to the gate would run the gate instead of any command).
    With `process`, the gate's restart of that one (GateRequired in command mode, ValueError for a bad name)."""
    if process is not None:
        require_gate(server)
        return restart_command(process_target(process))
    return restart_command(ALL) if server.access is Access.GATE else server.restart_cmd


def describe_process(process: RestartedProcess) -> str:
    """`PoracleJS (id 0): pid 4242 → 4300, online`"""
    name = process.name if process.name is not None else "(no name)"
    before, after = (pid if pid is not None else "-" for pid in (process.pid_before, process.pid_after))
    return f"{name} (id {process.pm_id}): pid {before} → {after}, {process.status or 'not listed after'}"


@dataclass(frozen=True, slots=True)
class RestartResult:
    """One restart as the admin who asked for it should see it."""

    server: str
    requested_by: Requester
    command: CommandResult | None  # None: refused, a restart of this server was already running
    health: HealthResult | None = None  # the health check after the restart
    locked: Locked | None = None  # refused: who holds the lock
    gate: GateRestart | None = None  # ACCESS=gate: what the gate restarted, when it answered ok
    process: str | None = None  # the one pm2 process asked for; None: the whole server

    def process_lines(self) -> list[str]:
        """One line per pm2 process the gate restarted (none in command mode)."""
        return [describe_process(process) for process in self.gate.processes] if self.gate else []

    @property
    def busy(self) -> bool:
        return self.command is None

    @property
    def succeeded(self) -> bool:
        return self.command is not None and self.command.succeeded

    @property
    def word(self) -> str:
        """The one word (or two) shown for this outcome."""
        if self.command is None:
            return "already restarting"
        words = {
            CommandOutcome.SUCCEEDED: "restarted",
            CommandOutcome.TIMED_OUT: "timed out",
            CommandOutcome.INTERRUPTED: INTERRUPTED,
        }
        return words.get(self.command.outcome, "failed")

    @property
    def reason(self) -> str:
        return refusal_reason(self.server, self.locked) if self.command is None else self.command.reason

    def record(self, at: datetime) -> RestartRecord:
        """The audit row of this restart, started `at`."""
        return RestartRecord(
            self.server,
            at,
            self.requested_by.origin,
            self.requested_by.name,
            self.word,
            self.reason,
            self.command.duration_s if self.command else None,
            self.command.exit_code if self.command else None,
            None if self.health is None else self.health.online,
            self.process,
        )


def refusal_reason(server: str, locked: Locked | None) -> str:
    """Why a restart of `server` is refused while `locked` is held."""
    holder = None if locked is None else locked.holder
    if holder is None:
        unread = "" if locked is None else " (its holder could not be read)"
        return f"a restart of this server is already running{unread}"
    started = f"started by {holder.who} at {holder.since.astimezone(UTC):%H:%M:%S} UTC"
    if server in holder.servers:
        return f"a restart of this server is already running, {started}"
    names = ", ".join(holder.servers[:3]) + (f" and {len(holder.servers) - 3} more" if len(holder.servers) > 3 else "")
    return f"a restart of {names} on the same SSH target is already running, {started}"


def restart_lock_key(server: ServerConfig) -> str:
    """Entries with one SSH target reach the same user's pm2 there: their restarts must never overlap, even
    when their commands differ. Host names ignore case; an IP address has one spelling."""
    try:
        host = ipaddress.ip_address(server.host).compressed
    except ValueError:
        host = server.host.lower().rstrip(".")
    return f"restart-{server.ssh_user}@{host}:{server.ssh_port}"


def _holder_name(requested_by: Requester) -> str:
    """How a refused restart names this one: the pid lets an operator find a command line that hangs."""
    if requested_by.origin is Origin.CLI:
        return f"{requested_by.name} on the command line (pid {os.getpid()})"
    if requested_by.origin is Origin.DISCORD:
        return f"{requested_by.name} in Discord"
    return str(requested_by)


def _grouped(servers: Iterable[ServerConfig], key: Callable[[ServerConfig], Hashable]) -> list[list[ServerConfig]]:
    """`servers` by `key`, in the order they first appear."""
    groups: dict[Hashable, list[ServerConfig]] = {}
    for server in servers:
        groups.setdefault(key(server), []).append(server)
    return list(groups.values())


class PoracleService:
    """Health checks and audited restarts of the configured servers. Use as an async context manager."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        clock: Clock = SYSTEM_CLOCK,
        recovery_wait: float = RECOVERY_WAIT,
        recovery_poll: float = RECOVERY_POLL,
        stop_recovery_wait: float = STOP_RECOVERY_WAIT,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.health = HealthChecker(settings.health_timeout, clock)
        self.ssh = SshRunner(settings)
        self.recovery_wait = recovery_wait
        self.recovery_poll = recovery_poll
        self.stop_recovery_wait = stop_recovery_wait
        self.locks = LockDir(settings.data_dir / DIR_NAME)
        self._active = 0  # restart_many calls in progress
        self._idle = asyncio.Event()  # set while there are none
        self._idle.set()
        self._running: set[asyncio.Task[tuple[CommandResult, GateRestart | None, list[HealthResult]]]] = set()
        self._stopping_at: float | None = None  # clock.monotonic() when stop() was called
        self._interrupted = False

    async def __aenter__(self) -> PoracleService:
        await self.health.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.health.__aexit__(*exc_info)

    @property
    def servers(self) -> tuple[ServerConfig, ...]:
        return self.settings.servers

    def running_restart(self, server: ServerConfig) -> Locked | None:
        """The restart running on this server's SSH target now, in any process; None when there is none."""
        return self.locks.locked(restart_lock_key(server))

    async def check_all(self) -> list[HealthResult]:
        return await self.health.check_all(self.servers)

    def check_each(self) -> AsyncGenerator[HealthResult, None]:
        """Every server checked at once from now on; each result as soon as it is in."""
        return self.health.check_each(self.servers)

    async def read_processes(self, server: ServerConfig, budget: float | None = None) -> ProcessRead:
        """The server's pm2 list through the gate, within `budget` seconds, login included (default
        PORACLE_SSH_TIMEOUT); a failure is the reading's reason. GateRequired in command mode."""
        require_gate(server)
        at = self.clock.now()
        budget = self.settings.ssh_timeout if budget is None else budget
        try:
            async with asyncio.timeout(budget):
                call = await self.ssh.gate(server, processes_command(), parse_processes, budget, pty=False)
        except TimeoutError:
            return ProcessRead(server.name, at, reason=f"no process list within {budget:g} s")
        if call.reply is None:
            return ProcessRead(server.name, at, reason=call.command.reason)
        return ProcessRead(server.name, at, call.reply.processes)

    async def read_all_processes(self) -> list[ProcessRead]:
        """The pm2 list of every server with ACCESS=gate, at once, each within PORACLE_HEALTH_TIMEOUT: what a
        monitor round reads beside the health checks."""
        gated = [server for server in self.servers if server.access is Access.GATE]
        budget = self.settings.health_timeout
        return list(await asyncio.gather(*(self.read_processes(server, budget) for server in gated)))

    async def read_logs(self, server: ServerConfig, process: str, lines: int) -> LogTail:
        """The last `lines` (1..200) lines of a pm2 process's out and error logs through the gate, cleaned and
        redacted again here. GateRequired in command mode; ValueError for a process or count the gate refuses."""
        require_gate(server)
        request = logs_command(process_target(process), lines)
        call = await self.ssh.gate(server, request, parse_logs, self.settings.ssh_timeout, pty=False)
        if call.reply is None:
            return LogTail(server.name, process, lines, reason=call.command.reason)
        reply = call.reply
        log.info(
            "Read the last %d log lines of pm2 process %s (id %d) on %s", lines, reply.name, reply.pm_id, server.name
        )
        return LogTail(
            server.name,
            process,
            lines,
            tuple(readable(line, LOG_LINE_LIMIT) for line in reply.lines),
            tuple(readable(line, LOG_LINE_LIMIT) for line in reply.error_lines),
            reply.name,
            reply.pm_id,
        )

    # -- stopping: the restarts running when the bot is asked to stop

    @property
    def stopping(self) -> bool:
        return self._stopping_at is not None

    @property
    def idle(self) -> bool:
        """No restart is running in this process."""
        return self._idle.is_set()

    @property
    def stop_budget(self) -> float:
        """Seconds a restart running when stop() is called may still take: the login, the command, the
        shortened recovery wait with its last check, hanging up (per command: entries of one SSH target with
        different commands run one after another)."""
        s = self.settings
        return s.ssh_connect_timeout + s.ssh_timeout + self.stop_recovery_wait + s.health_timeout + CLOSE_WAIT

    def stop(self) -> None:
        """Start no more restarts; the running ones go on, their recovery wait cut to `stop_recovery_wait`."""
        if self._stopping_at is None:
            self._stopping_at = self.clock.monotonic()

    async def wait_restarts(self, timeout: float) -> bool:
        """Wait at most `timeout` seconds for the running restarts to end; True when none runs."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        return self.idle

    def interrupt(self) -> None:
        """End the running restarts now, as interrupted: their SSH sessions close, so the remote command gets
        SIGHUP wherever it was; the requesters and the audit are told the outcome is unknown."""
        self._interrupted = True
        for work in self._running:
            work.cancel()

    async def end_cut_off_restarts(self, origins: Iterable[Origin]) -> int:
        """Restarts asked for from `origins` that are still RUNNING in the audit: the process that ran them is
        gone (only one bot runs), so they end as interrupted. How many there were."""
        count = await asyncio.to_thread(self.store.cut_off_restarts, origins, INTERRUPTED, CUT_OFF_REASON)
        if count:
            log.warning("%d restart(s) were cut off when the bot last stopped; audited as interrupted", count)
        return count

    async def end_abandoned_restarts(self) -> int:
        """Restarts still RUNNING in the audit on SSH targets whose lock nobody holds: a restart runs only under
        its target's lock and its row ends before the lock is let go, so whatever ran it is gone (a command line
        killed mid-restart). Each target's lock is taken for the look, so none starts meanwhile; a target in
        use is left for later. How many ended."""
        count = 0
        for key in dict.fromkeys(map(restart_lock_key, self.settings.servers)):
            try:
                lock = await self.locks.acquire(key, Holder("the bot (ending cut-off restarts)", (), self.clock.now()))
            except LockError:
                continue  # the restarts themselves will say what is wrong with the lock directory
            if not isinstance(lock, Locked):
                with lock:
                    count += await self._end_abandoned(key)
        return count

    async def _end_abandoned(self, key: str) -> int:
        """Under `key`'s lock: every RUNNING row of its servers is one whose process is gone."""
        names = [server.name for server in self.settings.servers if restart_lock_key(server) == key]
        try:
            count = await asyncio.to_thread(self.store.cut_off_restarts_of, names, INTERRUPTED, ABANDONED_REASON)
        except Exception:  # tidying the audit must never stop a restart
            log.exception("Could not end the restarts of %s left running", ", ".join(names))
            return 0
        if count:
            names_text = ", ".join(names)
            log.warning("%d restart(s) of %s left running by a process that ended: interrupted", count, names_text)
        return count

    async def restart(
        self, server: ServerConfig, requested_by: Requester, *, process: str | None = None
    ) -> RestartResult:
        """Restart one server (or only its pm2 `process`, through the gate) and audit it; refused at once (not
        queued) while a restart on its SSH target runs, in this process or another (the bot, the command line)."""
        (result,) = await self.restart_many([server], requested_by, process=process)
        return result

    async def _audit(self, server: str, requested_by: Requester, write: Callable[[], T]) -> T | None:
        try:
            return await asyncio.to_thread(write)
        except Exception:  # the restart happens whatever the disk says; the log keeps the record then
            log.exception("Could not write the restart of %s by %s into the audit", server, requested_by)
            return None

    async def restart_many(
        self, servers: Iterable[ServerConfig], requested_by: Requester, *, process: str | None = None
    ) -> list[RestartResult]:
        """Restart several servers, one result each, in their order. SSH targets are restarted at the same
        time; on one target, under its lock, each distinct restart command runs once (two entries for one
        pm2 must not restart it twice), one after another. So the worst case is one budget per distinct
        command on the busiest target, not one per server. With `process`, only that pm2 process of each
        (GateRequired or ValueError before anything runs when one of them cannot)."""
        chosen = list(servers)
        process = None if process is None else process.strip()
        for server in chosen if process is not None else ():
            restart_request(server, process)
        if self.stopping:
            log.warning(
                "Restart of %s by %s refused: the bot is stopping", ", ".join(s.name for s in chosen), requested_by
            )
            refusal = CommandResult(CommandOutcome.CONNECTION_ERROR, NOT_STARTED_REASON)
            return [RestartResult(server.name, requested_by, refusal, process=process) for server in chosen]
        self._active += 1
        self._idle.clear()
        try:
            done = await asyncio.gather(
                *(self._restart_target(group, requested_by, process) for group in _grouped(chosen, restart_lock_key))
            )
        finally:
            self._active -= 1
            if not self._active:
                self._idle.set()
        by_name = {result.server: result for results in done for result in results}
        return [by_name[server.name] for server in chosen]

    async def _restart_target(
        self, servers: list[ServerConfig], requested_by: Requester, process: str | None
    ) -> list[RestartResult]:
        """The entries of one SSH target, under its lock."""
        names = [server.name for server in servers]
        holder = Holder(_holder_name(requested_by), tuple(names), self.clock.now())
        try:
            lock = await self.locks.acquire(restart_lock_key(servers[0]), holder)
        except LockError as exc:  # nothing may run unguarded; reported like any restart that could not run
            reason = f"{exc}; nothing was run (PORACLE_DATA_DIR must be writable)"
            return await self._restart_group(
                servers, requested_by, process, CommandResult(CommandOutcome.CONNECTION_ERROR, reason)
            )
        if isinstance(lock, Locked):
            log.warning(
                "Restart of %s by %s refused: already restarting (%s)",
                ", ".join(names),
                requested_by,
                refusal_reason(names[0], lock),
            )
            return [RestartResult(server.name, requested_by, None, locked=lock, process=process) for server in servers]
        results: list[RestartResult] = []
        with lock:
            await self._end_abandoned(restart_lock_key(servers[0]))
            for group in _grouped(servers, lambda server: (server.access, restart_request(server, process))):
                results += await self._restart_group(group, requested_by, process)
        return results

    async def _restart_group(
        self,
        servers: list[ServerConfig],
        requested_by: Requester,
        process: str | None,
        not_run: CommandResult | None = None,
    ) -> list[RestartResult]:
        """One run of the command these entries share (one SSH target, one command), reported and audited
        for each entry, each with the health check of its own API. `not_run`: why nothing could run."""
        started, began = self.clock.now(), self.clock.monotonic()
        server = servers[0]
        names = ", ".join(entry.name for entry in servers)
        what = names if process is None else f"pm2 process {process} of {names}"
        log.info("Restart of %s requested by %s (%s)", what, requested_by, server.ssh_target)
        # The audit rows first: a restart cut off by a crash is then found at the next start.
        who = requested_by.origin, requested_by.name
        running = [RestartRecord(e.name, started, *who, RUNNING, "", None, None, None, process) for e in servers]
        rows = await self._audit(names, requested_by, lambda: self.store.begin_restarts(running, requested_by.reply))
        work = asyncio.create_task(self._restart_and_check(servers, process, not_run), name=f"restart {what}")
        self._running.add(work)
        if self._interrupted:  # interrupt() came while the rows were written
            work.cancel()
        try:
            command, gate, checks = await work
        except asyncio.CancelledError:  # interrupt(), or the caller itself was cancelled: the outcome is unknown
            elapsed = round(self.clock.monotonic() - began, 2)
            interrupted = CommandResult(CommandOutcome.INTERRUPTED, STOPPED_REASON, duration_s=elapsed)
            run = (interrupted, None, [None] * len(servers))
            results = await self._report(servers, requested_by, process, run, started, rows)
            if (task := asyncio.current_task()) is not None and task.cancelling():
                raise
            return results
        finally:
            self._running.discard(work)
        return await self._report(servers, requested_by, process, (command, gate, checks), started, rows)

    async def _restart_and_check(
        self, servers: list[ServerConfig], process: str | None, not_run: CommandResult | None
    ) -> tuple[CommandResult, GateRestart | None, list[HealthResult]]:
        command, gate = (not_run, None) if not_run else await self._run_restart(servers[0], process)
        checks = await asyncio.gather(
            *(self._wait_until_online(entry) if command.succeeded else self.health.check(entry) for entry in servers)
        )
        return command, gate, checks

    async def _report(
        self,
        servers: list[ServerConfig],
        requested_by: Requester,
        process: str | None,
        run: tuple[CommandResult, GateRestart | None, Sequence[HealthResult | None]],
        started: datetime,
        rows: Sequence[int] | None,
    ) -> list[RestartResult]:
        """The results of one run for each entry, audited (the rows written at the start completed) and logged."""
        command, gate, checks = run
        results = [
            RestartResult(entry.name, requested_by, command, health, gate=gate, process=process)
            for entry, health in zip(servers, checks, strict=True)
        ]
        records = [result.record(started) for result in results]
        names = ", ".join(result.server for result in results)
        if rows is None:  # the start could not be written: the whole rows then
            await self._audit(names, requested_by, lambda: self.store.record_restarts(records))
        else:
            await self._audit(names, requested_by, lambda: self.store.end_restarts(zip(rows, records, strict=True)))
        for result in results:
            health = result.health
            log.log(
                logging.INFO if result.succeeded else logging.WARNING,
                "Restart of %s by %s: %s (%s) in %.1f s; health check: %s",
                result.server if process is None else f"pm2 process {process} of {result.server}",
                requested_by,
                result.word,
                command.reason,
                command.duration_s,
                "none" if health is None else "online" if health.online else f"offline ({health.reason})",
            )
        return results

    async def _run_restart(self, server: ServerConfig, process: str | None) -> tuple[CommandResult, GateRestart | None]:
        """The restart the server's access mode calls for, and in gate mode the gate's answer."""
        request = restart_request(server, process)
        if server.access is Access.COMMAND:
            return await self.ssh.run(server, request, self.settings.ssh_timeout), None
        call = await self.ssh.gate(server, request, parse_restart, self.settings.ssh_timeout)
        if call.reply is None:
            return call.command, None
        if call.reply.log_error:
            log.warning("poracle-gate on %s could not write its log: %s", server.name, call.reply.log_error)
        processes = "; ".join(map(describe_process, call.reply.processes))
        log.info("poracle-gate on %s restarted %s", server.name, processes or "no process")
        return replace(call.command, output=readable("\n".join(call.reply.output))), call.reply

    async def _wait_until_online(self, server: ServerConfig) -> HealthResult:
        deadline = self.clock.monotonic() + self.recovery_wait
        while True:
            result = await self.health.check(server)
            if self._stopping_at is not None:
                deadline = min(deadline, self._stopping_at + self.stop_recovery_wait)
            if result.online or self.clock.monotonic() + self.recovery_poll > deadline:
                return result
            await self.clock.sleep(self.recovery_poll)
