"""The monitor's round in core without the network: a scripted fleet, a sink that records what it is handed
and can refuse, settings naming the servers, and a World that is a watchdog over a real store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bot.config import Settings, load_settings
from bot.core.health import Cause, HealthResult
from bot.core.store import Store
from bot.core.watchdog import Alert, Watchdog
from tests.support.clock import FakeClock
from tests.support.fixtures import deliveries

INTERVAL = 60
REFUSED = "refuses the bot: ip 127.0.0.1 not in whitelist"


class Fleet:
    """Servers that answer or not, as the test says, and those that answer `degraded` refuse the bot; each
    check is stamped with the clock's time."""

    def __init__(self, clock: FakeClock, *names: str) -> None:
        self.clock = clock
        self.up = dict.fromkeys(names, True)
        self.degraded: set[str] = set()
        self.checks = 0

    async def check(self) -> list[HealthResult]:
        self.checks += 1
        now = self.clock.now()
        return [self._result(name, up, now) for name, up in self.up.items()]

    def _result(self, name: str, up: bool, now: datetime) -> HealthResult:
        if not up:
            return HealthResult(name, False, now, reason="refused")
        if name in self.degraded:
            return HealthResult(name, True, now, 200, 12.0, reason=REFUSED, cause=Cause.REFUSED)
        return HealthResult(name, True, now, 200, 12.0)


@dataclass
class Sink:
    """An AlertSink that keeps what it posted; `refusing` makes it say no, as a forbidden channel does."""

    enabled: bool = True
    connected: bool = True
    away_since: datetime | None = None
    refusing: bool = False
    posted: list[Alert] = field(default_factory=list)
    tries: int = 0

    async def send(self, alert: Alert) -> bool:
        self.tries += 1
        if self.refusing:
            return False
        self.posted.append(alert)
        return True

    def kinds(self) -> list[tuple[str, ...]]:
        """Each alert as its kind and servers, e.g. ("Outage", "Main")."""
        return [(type(a.events[0]).__name__, *(e.server for e in a.events)) for a in self.posted]


def settings_for(data_dir: Path, *names: str, **extra: str) -> Settings:
    env = {"PORACLE_DATA_DIR": str(data_dir), "PORACLE_DOWN_AFTER": "2", "PORACLE_UP_AFTER": "1"}
    for number, name in enumerate(names, 1):
        env |= {
            f"PORACLE_SERVER_{number}_NAME": name,
            f"PORACLE_SERVER_{number}_HOST": "127.0.0.1",
            f"PORACLE_SERVER_{number}_API": "http://127.0.0.1:9",  # never asked: the fleet answers
        }
    return load_settings(env | extra)


async def run_rounds(watchdog: Watchdog, clock: FakeClock, count: int) -> None:
    """`count` rounds, one every INTERVAL seconds."""
    for _ in range(count):
        await watchdog.run_round()
        clock.advance(INTERVAL)


class World:
    """A watchdog over a store in `data_dir`; `restart()` is the bot stopping and starting again."""

    def __init__(self, data_dir: Path, clock: FakeClock, fleet: Fleet, sink: Sink, **extra: str) -> None:
        self.settings = settings_for(data_dir, *fleet.up, **extra)
        self.clock, self.fleet, self.sink = clock, fleet, sink
        self.store = Store.open(data_dir)
        self.watchdog = Watchdog(self.settings, self.store, fleet.check, sink, clock)

    async def rounds(self, count: int = 1) -> None:
        await run_rounds(self.watchdog, self.clock, count)

    def restart(self, sink: Sink | None = None) -> None:
        self.store.close()
        self.sink = sink or self.sink
        self.store = Store.open(self.settings.data_dir)
        self.watchdog = Watchdog(self.settings, self.store, self.fleet.check, self.sink, self.clock)

    def deliveries(self) -> list[tuple[str, str, str]]:
        return deliveries(self.settings.data_dir)
