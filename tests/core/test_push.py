"""The heartbeat push in the monitor's round, against real loopback HTTP servers: a request after every
completed round (the URL's path and query as configured), at most one at a time, a failure logged once per
streak without the URL's secret, and a hung or refusing URL that the rounds do not wait for. Through the real
bot and its own loop in tests/discord_bot/test_watching.py."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web

from bot.core.health import HealthResult
from bot.core.push import HeartbeatPush
from bot.core.store import Store
from bot.core.watchdog import Watchdog
from tests.support.clock import FakeClock
from tests.support.local_http import HttpServer, SwitchableServer, http_server, hung_server, status
from tests.support.watchdog import Fleet, Sink, World, settings_for

SECRET = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
PATH = f"/ping/{SECRET}"


def pushing(tmp_path: Path, url: str, **extra: str) -> World:
    clock = FakeClock()
    return World(tmp_path / "data", clock, Fleet(clock, "Main"), Sink(), PORACLE_HEARTBEAT_URL=url, **extra)


@pytest.fixture
async def receiver() -> AsyncIterator[HttpServer]:
    async with http_server() as server:
        yield server


def push_of(world: World) -> HeartbeatPush:
    assert world.watchdog.push is not None
    return world.watchdog.push


async def rounds_settled(world: World, count: int) -> None:
    """`count` rounds, each one's push answered (or given up) before the next."""
    for _ in range(count):
        await world.rounds(1)
        await push_of(world).settled()


def logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "bot.core.push"]


async def test_every_completed_round_requests_the_url_as_configured(tmp_path: Path) -> None:
    query: list[str] = []

    async def ping(request: web.Request) -> web.Response:
        query.append(request.query_string)
        return web.Response(text="OK")

    async with http_server({PATH: ping}) as server:
        world = pushing(tmp_path, f"{server.url}{PATH}?status=up&msg=OK")
        await rounds_settled(world, 3)
        await world.watchdog.close()
    assert server.requests == [PATH] * 3
    assert query == ["status=up&msg=OK"] * 3
    world.store.close()


async def test_a_round_that_fails_pushes_nothing(tmp_path: Path, receiver: HttpServer) -> None:
    settings = settings_for(tmp_path / "data", "Main", PORACLE_HEARTBEAT_URL=f"{receiver.url}{PATH}")
    store = Store.open(settings.data_dir)
    fleet = Fleet(FakeClock(), "Main")
    broken = True

    async def check() -> list[HealthResult]:
        if broken:
            raise ConnectionResetError("a bug in a check")
        return await fleet.check()

    watchdog = Watchdog(settings, store, check, Sink(), FakeClock())
    with pytest.raises(ConnectionResetError):
        await watchdog.run_round()
    broken = False
    await watchdog.run_round()
    assert watchdog.push is not None
    await watchdog.push.settled()
    await watchdog.close()
    store.close()
    assert receiver.requests == [PATH]  # the completed round's only


async def test_a_failure_is_logged_once_per_streak_without_the_secret_and_its_end_once(
    tmp_path: Path, switchable: Callable[[], SwitchableServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    target = switchable()  # not up yet: refused
    world = pushing(tmp_path, f"{target.url}{PATH}")
    world.fleet.up["Main"] = False
    await rounds_settled(world, 4)
    assert world.sink.kinds() == [("Outage", "Main")]  # the alerts go out all the same
    await target.up()
    await rounds_settled(world, 3)
    await world.watchdog.close()
    world.store.close()
    assert logged(caplog) == [
        f"Heartbeat push to http://127.0.0.1:{target.port}/******** failed: connection refused; the monitor goes "
        "on (logged once until a push works again)",
        f"Heartbeat push to http://127.0.0.1:{target.port}/******** works again",
    ]
    assert SECRET not in caplog.text


async def test_an_answer_that_is_not_2xx_is_a_failure(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with http_server({PATH: status(404)}) as server:
        world = pushing(tmp_path, f"{server.url}{PATH}")
        await rounds_settled(world, 2)
        await world.watchdog.close()
    world.store.close()
    (failed,) = logged(caplog)
    assert "failed: HTTP 404;" in failed


async def test_a_hung_url_holds_no_round_up_and_one_push_at_a_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with hung_server() as hung:
        world = pushing(tmp_path, f"{hung.url}{PATH}", PORACLE_HEALTH_TIMEOUT="0.5")
        await world.rounds(1)  # returned: its push has not been answered
        await hung.wait_accepted(1)
        await world.rounds(5)  # while the first push hangs: no second one
        world.fleet.up["Main"] = False
        await world.rounds(2)
        assert hung.accepted == 1 and world.fleet.checks == 8
        assert world.sink.kinds() == [("Outage", "Main")]
        await push_of(world).settled()  # gives up after PORACLE_HEALTH_TIMEOUT
        await world.rounds(1)
        await hung.wait_accepted(2)  # the next round's push: the first one had given up
        await world.watchdog.close()
    world.store.close()
    (failed,) = logged(caplog)
    assert "failed: no answer within 0.5 s;" in failed
