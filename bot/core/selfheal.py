"""Automatic restarts, carried out. Each round the guard rails (autorestart.py) decide for the servers with
PORACLE_SERVER_<N>_AUTO_RESTART=on; here each decision is logged with its reason, the rails' state is kept in
the store, and the restarts are run.

A restart goes through PoracleService.restart as a person's does (the same cross-process lock, audit and
health re-check; audited as automatic), in a task of its own, one per server at a time: it may take
PORACLE_SSH_TIMEOUT and the recovery wait, and the rounds go on meanwhile. When it ends, its notice (pinging
nobody) and any "needs a human" it latches go into the watchdog's outbox with the rails' new state, as every
alert does: kept while Discord is away, held by mutes and maintenance windows, posted once; "needs a human"
pings DISCORD_ALERT_ROLE_ID.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Protocol

from bot.config import ServerConfig, Settings, Switch
from bot.core.autorestart import (
    AutoRestarted,
    NeedsHuman,
    Outcome,
    PersonRestart,
    Rails,
    RailState,
    Restart,
    Situation,
    Skip,
    Trouble,
)
from bot.core.clock import Clock
from bot.core.maintenance import in_maintenance
from bot.core.service import NOT_STARTED_REASON, Requester, RestartResult
from bot.core.ssh import CommandOutcome
from bot.core.store import Origin, Store

log = logging.getLogger(__name__)

AUTOMATIC = Requester(Origin.AUTOMATIC, "poracle-bot")


class Restarter(Protocol):
    """PoracleService.restart."""

    async def __call__(
        self, server: ServerConfig, requested_by: Requester, *, process: str | None = None
    ) -> RestartResult: ...


def notice(result: RestartResult, decision: Restart, at: datetime) -> AutoRestarted:
    """What the alert channel is told of an automatic restart that ran."""
    answers = None if result.health is None else result.health.online
    why = "" if result.succeeded else result.reason
    return AutoRestarted(
        result.server, result.process, at, result.word, why, answers, decision.attempt, decision.limit, decision.trouble
    )


def outcome(result: RestartResult) -> Outcome:
    command = result.command
    if command is None or command.reason == NOT_STARTED_REASON:  # another restart ran, or the bot is stopping
        return Outcome.REFUSED
    if command.outcome is CommandOutcome.INTERRUPTED:  # the bot was stopped meanwhile: it ran, with no outcome
        return Outcome.NOT_FIXED
    if not result.succeeded:
        return Outcome.FAILED
    return Outcome.FIXED if result.health is not None and result.health.online else Outcome.NOT_FIXED


class SelfHealer:
    """Runs the rails for the servers with AUTO_RESTART=on. `deliver` hands the outbox to the sink now (the
    watchdog's flush)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        clock: Clock,
        restart: Restarter,
        deliver: Callable[[], Awaitable[object]],
    ) -> None:
        self.servers = {server.name: server for server in settings.servers if server.auto_restart is Switch.ON}
        self.store = store
        self.clock = clock
        self.restart = restart
        self.deliver = deliver
        after = timedelta(minutes=settings.auto_restart_after)
        self.rails = Rails(settings.auto_restart_limit, after, store.load_auto_restarts())
        self.schedules = [(name, settings.maintenance_schedule(server)) for name, server in self.servers.items()]
        self.tasks: dict[str, asyncio.Task[None]] = {}  # the automatic restarts running, by server
        self._said: dict[str, str] = {}  # the kind of the last decision logged per server: each change is logged
        self._unsaved: list[NeedsHuman | AutoRestarted] = []  # alerts the store could not take: saved with the next

    async def decide(self, troubles: Mapping[str, Trouble | None], down_since: Mapping[str, datetime]) -> list[Restart]:
        """The round's decisions for every opted-in server (`troubles`: by server, None when all is well),
        logged and kept in the store with the "needs a human" alerts they raised; the restarts to launch."""
        now = self.clock.now()
        store = self.store
        mutes, people = await asyncio.gather(
            asyncio.to_thread(store.mutes, now), asyncio.to_thread(store.last_person_restarts)
        )
        maintenance = in_maintenance(self.schedules, now)
        before = copy.deepcopy(self.rails.states)
        restarts: list[Restart] = []
        raised = list(self._unsaved)
        for name in self.servers:
            trouble = troubles.get(name)
            since = down_since.get(name)
            ack = await asyncio.to_thread(store.acknowledgement, name, since) if trouble and since else None
            person = people.get(name)
            situation = Situation(
                trouble,
                mutes.get(name),
                maintenance.get(name),
                ack.by if ack is not None else None,
                PersonRestart(person.at, person.requested_by) if person is not None else None,
                name in self.tasks,
            )
            verdict = self.rails.decide(name, situation, now)
            for note in verdict.notes:
                log.info("Automatic restarts of %s: %s", name, note)
            decision = verdict.decision
            if isinstance(decision, Restart):
                restarts.append(decision)
            elif isinstance(decision, NeedsHuman):
                raised.append(decision)
            self._log(name, decision)
        try:
            if raised or self.rails.states != before:  # most rounds change nothing: no write then
                await asyncio.to_thread(store.save_auto_restarts, self._states(), raised)
        except Exception:  # nothing decided is kept, nothing is launched: the next round decides again
            self.rails.states = before
            raise
        self._unsaved = []
        return restarts

    def _states(self) -> dict[str, RailState]:
        return {name: self.rails.state(name) for name in self.servers}

    def _log(self, server: str, decision: Restart | Skip | NeedsHuman | None) -> None:
        if decision is None:
            self._said.pop(server, None)
            return
        if isinstance(decision, Skip):
            # Every skip is logged with its reason; a repeat of the last round's at DEBUG, so a server that
            # waits an hour is one INFO line, not sixty.
            repeat = self._said.get(server) == decision.kind
            log.log(logging.DEBUG if repeat else logging.INFO, "Automatic restart of %s not now: %s", server,
                    decision.reason)  # fmt: skip
            self._said[server] = decision.kind
            return
        self._said.pop(server, None)
        if isinstance(decision, NeedsHuman):
            log.warning(
                "Automatic restarts of %s stop until a person acts: it needs a human: %s", server, decision.reason
            )
        else:
            what = server if decision.process is None else f"pm2 process {decision.process} of {server}"
            log.warning(
                "Automatic restart of %s (attempt %d of %d in 6 h): %s", what, decision.attempt, decision.limit,
                decision.trouble,
            )  # fmt: skip

    def launch(self, restarts: list[Restart]) -> None:
        """Start each restart in a task of its own; the round does not wait for them."""
        for decision in restarts:
            task = asyncio.create_task(self._run(decision), name=f"poracle-auto-restart {decision.server}")
            self.tasks[decision.server] = task
            task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        for server, running in list(self.tasks.items()):
            if running is task:
                del self.tasks[server]

    async def _run(self, decision: Restart) -> None:
        server = self.servers[decision.server]
        try:
            result = await self.restart(server, AUTOMATIC, process=decision.process)
        except Exception:  # a bug: whether anything ran is unknown, so it counts as a failed attempt
            log.exception("Automatic restart of %s failed", server.name)
            if await self._finish(decision, Outcome.FAILED, "the restart raised an error (see the log)", None):
                await self.deliver()
            return
        ended = outcome(result)
        if ended is Outcome.REFUSED:  # nothing ran: nothing to tell
            log.info("Automatic restart of %s not run, not counted: %s", server.name, result.reason)
        told = None if ended is Outcome.REFUSED else notice(result, decision, self.clock.now())
        if await self._finish(decision, ended, result.reason, told):
            await self.deliver()

    async def _finish(self, decision: Restart, ended: Outcome, reason: str, told: AutoRestarted | None) -> bool:
        """Tell the rails how it went, and keep their state in the store with the alerts it makes (the notice
        `told`, a "needs a human" it latches); True when there is something in the outbox to deliver."""
        latched = self.rails.finish(decision.server, decision.at, ended, reason, self.clock.now())
        if latched is not None:
            self._log(decision.server, latched)
        alerts = [alert for alert in (told, latched) if alert is not None]
        try:
            await asyncio.to_thread(self.store.save_auto_restarts, self._states(), alerts)
        except Exception:  # the rails still know in memory; the next round writes them, and the alerts, again
            log.exception("Could not keep the outcome of the automatic restart of %s", decision.server)
            self._unsaved += alerts
            return False
        return bool(alerts)

    async def settled(self) -> None:
        """Wait until no automatic restart runs."""
        while self.tasks:
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    async def close(self) -> None:
        """Stop the automatic restarts still running (the bot is stopping)."""
        for task in list(self.tasks.values()):
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
