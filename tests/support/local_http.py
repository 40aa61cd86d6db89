"""Real HTTP servers on 127.0.0.1 for tests and benchmarks: aiohttp apps, and sockets that never answer."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

HOST = "127.0.0.1"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class HttpServer:
    """A running aiohttp server; `requests` lists every path it was asked for, in order."""

    port: int
    requests: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


@contextlib.asynccontextmanager
async def http_server(routes: dict[str, Handler] | None = None, port: int = 0) -> AsyncIterator[HttpServer]:
    """Serve `routes` (path -> handler); any other path answers 200 "ok". Every request is recorded."""
    server = HttpServer(port)
    routes = routes or {}

    async def dispatch(request: web.Request) -> web.StreamResponse:
        server.requests.append(request.path)
        handler = routes.get(request.path)
        return await handler(request) if handler else web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", dispatch)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, HOST, port).start()
    server.port = runner.addresses[0][1]
    try:
        yield server
    finally:
        await runner.cleanup()


class SwitchableServer:
    """A health server that can be taken down (its port then refuses) and brought back on the same port."""

    def __init__(self) -> None:
        self.port = refused_port()
        self._running: contextlib.AsyncExitStack | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def is_up(self) -> bool:
        return self._running is not None

    async def up(self) -> None:
        assert self._running is None
        stack = contextlib.AsyncExitStack()
        await stack.enter_async_context(http_server(port=self.port))
        self._running = stack

    async def down(self) -> None:
        assert self._running is not None
        stack, self._running = self._running, None
        await stack.aclose()


def delayed(seconds: float) -> Handler:
    """Answer 200 after `seconds`: a server that is slow, not hung."""

    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(seconds)
        return web.Response(text="ok")

    return handler


def status(code: int, **headers: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=code, headers=headers, text=f"status {code}")

    return handler


@dataclass
class HungServer:
    """Accepts TCP connections and reads the request, but never answers."""

    port: int
    accepted: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event, repr=False)  # set at each connection

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    async def wait_accepted(self, count: int, timeout: float = 5.0) -> None:
        """Until `count` connections were accepted in all."""
        async with asyncio.timeout(timeout):
            while self.accepted < count:
                self.arrived.clear()
                await self.arrived.wait()


@contextlib.asynccontextmanager
async def hung_server(port: int = 0) -> AsyncIterator[HungServer]:
    """On `port` (0: a free one). Leaving the block closes the connections it held."""
    hung = HungServer(port)
    held: set[asyncio.StreamWriter] = set()

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hung.accepted += 1
        hung.arrived.set()
        held.add(writer)
        with contextlib.suppress(Exception):
            while await reader.read(4096):
                pass

    server = await asyncio.start_server(swallow, HOST, port)
    hung.port = server.sockets[0].getsockname()[1]
    try:
        yield hung
    finally:
        server.close()
        for writer in held:
            writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)


def refused_port() -> int:
    """A loopback port with nothing listening (bound and released: the kernel will refuse connections)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port
