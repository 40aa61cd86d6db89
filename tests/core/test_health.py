"""Health checks against real HTTP servers on 127.0.0.1: any answer is online, no answer is offline; an answer
that refuses the bot, or (METRICS=on) a /metrics that cannot be read, is degraded."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

from bot.config import ServerConfig, load_settings
from bot.core.health import REMOTE_WORDS, Cause, Condition, HealthChecker, HealthResult
from bot.core.metrics import PoracleMetrics
from tests.support.local_http import Handler, delayed, http_server, hung_server, refused_port, status
from tests.support.poracle_http import PoracleJsLike, PoracleNgLike, poracle_js, poracle_ng


def servers(*apis: str, **fields: str) -> tuple[ServerConfig, ...]:
    """Servers at `apis`, each with the `fields` given (e.g. METRICS="on")."""
    env = {}
    for number, api in enumerate(apis, 1):
        env[f"PORACLE_SERVER_{number}_HOST"] = "127.0.0.1"
        env[f"PORACLE_SERVER_{number}_API"] = api
        env |= {f"PORACLE_SERVER_{number}_{name}": value for name, value in fields.items()}
    return load_settings(env).servers


async def test_any_http_answer_is_online_with_its_status_and_latency() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.2)
        return web.Response(text="late but alive")

    routes = {"/ok/health": status(200), "/broken/health": status(500), "/locked/health": status(401)}
    async with http_server({**routes, "/slow/health": slow}) as http, HealthChecker(timeout=2) as checker:
        ok, broken, locked, late = servers(
            f"{http.url}/ok", f"{http.url}/broken", f"{http.url}/locked", f"{http.url}/slow"
        )
        results = await checker.check_all([ok, broken, locked, late])
    assert [(r.server, r.online, r.status, r.reason) for r in results] == [
        ("Server 1", True, 200, None),
        ("Server 2", True, 500, None),
        ("Server 3", True, 401, None),
        ("Server 4", True, 200, None),
    ]
    for result in results:
        assert result.latency_ms is not None and 0 < result.latency_ms < 2000
    assert results[3].latency_ms is not None and results[3].latency_ms >= 190  # measured, not made up
    assert sorted(http.requests) == ["/broken/health", "/locked/health", "/ok/health", "/slow/health"]


async def test_the_configured_health_path_is_asked_for() -> None:
    async with http_server() as http:
        env = {
            "PORACLE_SERVER_1_HOST": "127.0.0.1",
            "PORACLE_SERVER_1_API": f"{http.url}/api/",
            "PORACLE_SERVER_1_HEALTH_PATH": "/status",
        }
        settings = load_settings(env)
        async with HealthChecker(settings.health_timeout) as checker:
            (result,) = await checker.check_all(settings.servers)
    assert result.online
    assert http.requests == ["/api/status"]


async def test_refused_port_is_offline() -> None:
    (server,) = servers(f"http://127.0.0.1:{refused_port()}")
    async with HealthChecker(timeout=2) as checker:
        result = await checker.check(server)
    assert not result.online
    assert result.status is None and result.latency_ms is None
    assert result.reason == "connection refused"


async def test_a_server_that_never_answers_is_offline_after_the_timeout() -> None:
    async with hung_server() as hung, HealthChecker(timeout=0.5) as checker:
        (server,) = servers(hung.url)
        started = time.monotonic()
        result = await checker.check(server)
        elapsed = time.monotonic() - started
    assert hung.accepted == 1
    assert not result.online
    assert result.status is None
    assert result.reason is not None and "0.5 s" in result.reason
    assert 0.45 <= elapsed < 1.5


async def test_hung_servers_do_not_add_up() -> None:
    timeout = 0.5
    async with hung_server() as hung, http_server() as good:
        # 5 hung servers on one listener (each check opens its own connection), 5 good ones.
        settings = load_settings(
            {
                "PORACLE_HEALTH_TIMEOUT": str(timeout),
                **{f"PORACLE_SERVER_{n}_HOST": "127.0.0.1" for n in range(1, 11)},
                **{f"PORACLE_SERVER_{n}_API": f"{hung.url}/{n}" for n in range(1, 6)},
                **{f"PORACLE_SERVER_{n}_API": f"{good.url}/{n}" for n in range(6, 11)},
            }
        )
        async with HealthChecker(settings.health_timeout) as checker:
            started = time.monotonic()
            results = await checker.check_all(settings.servers)
            elapsed = time.monotonic() - started
    assert hung.accepted == 5
    assert [r.online for r in results] == [False] * 5 + [True] * 5
    assert [r.server for r in results] == [f"Server {n}" for n in range(1, 11)]  # order kept
    assert elapsed < 1.8 * timeout, f"{elapsed:.2f} s: the checks ran one after another"


async def test_a_redirect_is_online_and_not_followed() -> None:
    async with http_server() as target:
        redirect = status(302, Location=f"{target.url}/elsewhere")
        async with http_server({"/health": redirect}) as http, HealthChecker(timeout=2) as checker:
            (server,) = servers(http.url)
            result = await checker.check(server)
    assert result.online
    assert result.status == 302
    assert target.requests == []


async def test_a_redirect_to_a_dead_server_is_still_online() -> None:
    redirect = status(301, Location=f"http://127.0.0.1:{refused_port()}/health")
    async with http_server({"/health": redirect}) as http, HealthChecker(timeout=2) as checker:
        (server,) = servers(http.url)
        result = await checker.check(server)
    assert (result.online, result.status) == (True, 301)


async def test_result_carries_an_aware_utc_checked_at() -> None:
    async with http_server() as http, HealthChecker(timeout=2) as checker:
        (up, down) = servers(http.url, f"http://127.0.0.1:{refused_port()}")
        before = datetime.now(UTC)
        results = await checker.check_all([up, down])
        after = datetime.now(UTC)
    for result in results:
        assert result.checked_at.tzinfo is not None
        assert result.checked_at.utcoffset() == timedelta(0)
        assert before <= result.checked_at <= after


async def test_a_server_that_goes_away_is_seen_as_offline_by_the_same_checker() -> None:
    async with HealthChecker(timeout=1) as checker:
        async with http_server() as http:
            (server,) = servers(http.url)
            assert (await checker.check(server)).online
        result = await checker.check(server)
    assert not result.online
    assert result.reason == "connection refused"


async def test_check_each_starts_every_check_at_once_and_yields_the_fastest_first() -> None:
    async with (
        http_server({"/health": delayed(0.3)}) as slow,
        http_server() as fast,
        hung_server() as hung,
        HealthChecker(timeout=1) as checker,
    ):
        configured = servers(slow.url, hung.url, fast.url)
        stream = checker.check_each(configured)
        deadline = time.monotonic() + 5
        while not (fast.requests and slow.requests and hung.accepted):  # no result asked for yet: checks run
            assert time.monotonic() < deadline, "the checks did not start before their results were asked for"
            await asyncio.sleep(0.01)
        order = [(result.server, result.online) async for result in stream]
    assert order == [("Server 3", True), ("Server 1", True), ("Server 2", False)]


async def test_closing_check_each_early_cancels_the_checks_still_running() -> None:
    async with http_server() as fast, hung_server() as hung, HealthChecker(timeout=30) as checker:
        stream = checker.check_each(servers(fast.url, hung.url))
        first = await anext(stream)
        (still_running,) = [t for t in asyncio.all_tasks() if "HealthChecker.check" in repr(t.get_coro())]
        await stream.aclose()
        await asyncio.wait([still_running], timeout=5)
    assert first.server == "Server 1"
    assert still_running.cancelled()  # not left waiting out its 30 s


# ------------------------------------------------------------------------------- what the answer says


async def check_one(api: str, timeout: float = 2, **fields: str) -> HealthResult:
    (server,) = servers(api, **fields)
    async with HealthChecker(timeout) as checker:
        return await checker.check(server)


async def test_poraclejs_refusing_the_bot_answers_200_and_is_degraded_with_its_reason() -> None:
    fake = PoracleJsLike(refusing="ip 127.0.0.1 not in whitelist")
    async with poracle_js(fake) as http:
        refused = await check_one(http.url)
        fake.refusing = None
        happy = await check_one(http.url)
    assert (refused.online, refused.status, refused.condition) == (True, 200, Condition.DEGRADED)
    assert refused.cause is Cause.REFUSED and not refused.cause.restart_may_help
    assert refused.reason == "refuses the bot: ip 127.0.0.1 not in whitelist"
    assert (happy.condition, happy.cause, happy.reason, happy.detail) == (Condition.ONLINE, None, None, None)


async def test_poracleng_refusing_the_bot_is_a_403_with_an_empty_body() -> None:
    async with poracle_ng(PoracleNgLike(refusing=True)) as http:
        result = await check_one(http.url)
    assert (result.online, result.status, result.condition) == (True, 403, Condition.DEGRADED)
    assert result.reason == "refuses the bot: HTTP 403"


async def test_poracleng_shows_its_status_and_its_version_when_it_has_one() -> None:
    fake = PoracleNgLike(version="5.1.0")
    async with poracle_ng(fake) as http:
        develop = await check_one(http.url)
        fake.version = None  # the released 5.0 line: {"status": "healthy"} only
        released = await check_one(http.url)
    assert develop.condition is Condition.ONLINE
    assert develop.detail == "status healthy, version 5.1.0"
    assert released.detail == "status healthy"


class Stall:
    """A handler that sends its headers and `first`, then nothing more while `held()`."""

    def __init__(self, first: bytes, content_type: str = "application/json") -> None:
        self.first, self.content_type = first, content_type
        self._release = asyncio.Event()

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": self.content_type})
        await response.prepare(request)
        await response.write(self.first)
        await self._release.wait()
        return response

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """Enter it inside the server's block: the server's shutdown would wait for the handler."""
        try:
            yield
        finally:
            self._release.set()


async def endless(request: web.Request) -> web.StreamResponse:
    """JSON without end (no Content-Length), until the reader hangs up: it must stop at its limit."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    with contextlib.suppress(ConnectionError):
        await response.write(b'{"status": "')
        while request.transport is not None and not request.transport.is_closing():
            await response.write(b"x" * 64 * 1024)
    return response


def json_text(text: str | bytes, code: int = 200) -> Handler:
    body = text.encode() if isinstance(text, str) else text

    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=code, body=body, content_type="application/json")

    return handler


async def test_a_broken_huge_or_stalled_body_still_answers_and_in_time() -> None:
    bodies = {
        "/garbage/health": json_text("{not json"),
        "/deep/health": json_text("[" * 50_000 + "]" * 50_000),
        "/huge/health": json_text(json.dumps({"status": "healthy", "pad": "x" * 1024 * 1024})),
        "/binary/health": json_text(b"\xff\x00\x01"),
        "/webserver-only/health": json_text('{"webserver": "unhappy"}', 200),
    }
    stalled = Stall(b'{"status": "heal')
    async with http_server(bodies | {"/stalled/health": stalled}) as http, stalled.held():
        names = [path.split("/")[1] for path in [*bodies, "/stalled/health"]]
        started = time.monotonic()
        async with HealthChecker(timeout=0.5) as checker:
            results = await checker.check_all(servers(*(f"{http.url}/{name}" for name in names)))
        elapsed = time.monotonic() - started
    found = {name: (r.online, r.status, r.condition, r.detail) for name, r in zip(names, results, strict=True)}
    for name in ("garbage", "deep", "huge", "binary", "stalled"):
        assert found[name] == (True, 200, Condition.ONLINE, None), name
    assert results[names.index("webserver-only")].reason == "refuses the bot: webserver unhappy"
    assert elapsed < 1.5, f"{elapsed:.2f} s: a body held the check past its timeout"


async def test_an_endless_body_is_read_no_further_than_its_limit() -> None:
    async with http_server({"/health": endless}) as http:
        started = time.monotonic()
        result = await check_one(http.url, timeout=10)
        elapsed = time.monotonic() - started
    assert (result.online, result.status, result.condition) == (True, 200, Condition.ONLINE)
    assert elapsed < 3, f"{elapsed:.2f} s: it read on until the timeout"


async def test_a_servers_own_words_are_one_clean_line_cut_short() -> None:
    fake = PoracleJsLike(refusing="ip 127.0.0.1\x1b[31m not\nin\r\n whitelist\x07 " + "y" * 1000)
    async with poracle_js(fake) as http:
        result = await check_one(http.url)
    assert result.reason is not None
    words = result.reason.removeprefix("refuses the bot: ")
    assert words.startswith("ip 127.0.0.1 not in whitelist yyy") and words.endswith("…")
    assert len(words) == REMOTE_WORDS
    assert all(ch.isprintable() for ch in words)


# ------------------------------------------------------------------------------------------ /metrics


async def test_metrics_are_read_with_metrics_on_and_never_asked_for_without() -> None:
    fake = PoracleNgLike(queue=12, webhooks={"pokemon": 4_000_000, "raid": 2})
    async with poracle_ng(fake) as http:
        on = await check_one(http.url, METRICS="on")
        off = await check_one(http.url)
    assert on.condition is Condition.ONLINE
    assert on.metrics == PoracleMetrics(12, 4_000_002)
    assert on.detail == "status healthy, version 5.1.0, delivery queue 12, 4000002 webhooks received"
    assert off.metrics is None
    assert fake.metrics_asked == 1 and sorted(http.requests) == ["/health", "/health", "/metrics"]


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        (status(403), "metrics unreadable: HTTP 403"),
        (status(404), "metrics unreadable: HTTP 404"),
        (json_text('{"statusCode": 404}'), "metrics unreadable: not Prometheus text (Invalid labels"),
        (json_text("go_goroutines 3\n"), "metrics unreadable: no poracle_delivery_queue_depth (is this PoracleNG?)"),
        (endless, "metrics unreadable: more than 4 MiB"),
    ],
)
async def test_unreadable_metrics_make_a_server_that_answers_degraded_saying_why(route: Handler, reason: str) -> None:
    async with http_server({"/health": json_text('{"status":"healthy"}'), "/metrics": route}) as http:
        result = await check_one(http.url, METRICS="on")
    assert (result.online, result.condition, result.cause) == (True, Condition.DEGRADED, Cause.METRICS)
    assert result.reason is not None and result.reason.startswith(reason), result.reason


async def test_a_stalled_metrics_is_degraded_within_the_one_timeout_and_offline_stays_offline() -> None:
    stalled = Stall(b"# HELP go_", "text/plain")
    async with http_server({"/health": json_text('{"status":"healthy"}'), "/metrics": stalled}) as http, stalled.held():
        started = time.monotonic()
        result = await check_one(http.url, timeout=0.5, METRICS="on")
        elapsed = time.monotonic() - started
    assert result.condition is Condition.DEGRADED and result.reason == "metrics unreadable: no answer within 0.5 s"
    assert elapsed < 1.2
    down = await check_one(f"http://127.0.0.1:{refused_port()}", METRICS="on")
    assert (down.condition, down.reason) == (Condition.OFFLINE, "connection refused")


async def test_a_refused_bot_is_not_also_reported_for_its_refused_metrics() -> None:
    async with poracle_ng(PoracleNgLike(refusing=True)) as http:
        result = await check_one(http.url, METRICS="on")
    assert (result.cause, result.reason, result.metrics) == (Cause.REFUSED, "refuses the bot: HTTP 403", None)
