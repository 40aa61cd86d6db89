"""The gateway half of the double: a websocket that speaks Discord's gateway protocol (v10, JSON).

Frames go out as plain text JSON. discord.py asks for ``compress=zlib-stream`` but only runs BINARY
frames through its decompressor; TEXT frames are parsed as they are, which Discord itself may send.

Sessions survive their connection: dispatches made while the bot is disconnected are kept and
replayed on RESUME, as Discord does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from .model import JSON, DiscordState

HEARTBEAT, IDENTIFY, RESUME, RECONNECT, REQUEST_MEMBERS, INVALID_SESSION, HELLO, HEARTBEAT_ACK = (
    1,
    2,
    6,
    7,
    8,
    9,
    10,
    11,
)

_GUILDS, _GUILD_MEMBERS, _GUILD_MESSAGES = 1 << 0, 1 << 1, 1 << 9
_EVENT_INTENT = {
    "MESSAGE_CREATE": _GUILD_MESSAGES,
    "MESSAGE_UPDATE": _GUILD_MESSAGES,
    "MESSAGE_DELETE": _GUILD_MESSAGES,
    "CHANNEL_CREATE": _GUILDS,
    "CHANNEL_UPDATE": _GUILDS,
    "CHANNEL_DELETE": _GUILDS,
    "GUILD_MEMBER_ADD": _GUILD_MEMBERS,
}


@dataclass(eq=False)
class Connection:
    """One websocket connection from the bot."""

    ws: web.WebSocketResponse
    transport: asyncio.Transport | None
    query: dict[str, str]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    heartbeats: int = 0
    last_heartbeat_seq: int | None = None


@dataclass(eq=False)
class Session:
    """A gateway session (what RESUME refers to). ``live`` once its handshake is done on ``conn``."""

    id: str
    intents: int
    shard: list[int] | None = None
    seq: int = 0
    backlog: list[JSON] = field(default_factory=list)
    conn: Connection | None = None
    live: bool = False


class Gateway:
    def __init__(self, state: DiscordState, heartbeat_interval_ms: int = 41250) -> None:
        self.state = state
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.url = ""  # set once the server listens; also sent as resume_gateway_url
        self.sessions: dict[str, Session] = {}
        self.current: Session | None = None
        self.connections: set[Connection] = set()
        self.identifies = 0
        self.resumes = 0
        self.identify_payloads: list[JSON] = []
        self.log: list[tuple[str, int, str | None]] = []  # (direction "in"/"out", op, event name)

    # ------------------------------------------------------------------ status
    @property
    def ready(self) -> bool:
        return self.current is not None and self.current.live

    async def sync(self, timeout: float = 2.0) -> None:
        """Return once the bot has processed every frame sent so far.

        Sends a server-side heartbeat request (op 1); discord.py answers it at once with its last
        sequence number, so an answer carrying the current sequence proves it has caught up.
        """
        session = self.current
        if session is None or session.conn is None:
            raise RuntimeError("the bot is not connected to the gateway")
        conn, target, before = session.conn, session.seq, session.conn.heartbeats
        await self._send(conn, {"op": HEARTBEAT, "d": None})

        def caught_up() -> bool | None:
            seen = conn.last_heartbeat_seq if conn.last_heartbeat_seq is not None else -1
            return True if conn.heartbeats > before and seen >= target else None

        await self.state.wait_until(caught_up, timeout, "the bot to process the gateway events sent")

    async def wait_ready(self, timeout: float = 5.0) -> None:
        """Wait until a session is identified or resumed on a live connection and the bot caught up."""
        await self.state.wait_until(lambda: True if self.ready else None, timeout, "the bot to connect")
        await self.sync(timeout)

    # ------------------------------------------------------------------ dispatch
    async def dispatch(self, event: str, data: JSON) -> bool:
        """Send a dispatch to the current session (kept for replay if it is disconnected).

        Returns False if there is no session or its intents exclude the event.
        """
        session = self.current
        if session is None:
            return False
        needed = _EVENT_INTENT.get(event, 0)
        if needed and not session.intents & needed:
            return False
        frame = self._next_frame(session, event, data)
        session.backlog.append(frame)
        if session.live and session.conn is not None:
            await self._send(session.conn, frame)
        return True

    # ------------------------------------------------------------------ misbehaviour
    async def drop(self, code: int | None = 4000, *, invalidate: bool = False) -> None:
        """Close the current connection (``code=None``: abort the TCP connection without a close frame).

        With ``invalidate`` the session is forgotten, so the bot's RESUME fails (op 9) and it must
        IDENTIFY again.
        """
        session = self.current
        if session is None or session.conn is None:
            raise RuntimeError("the bot is not connected to the gateway")
        conn = session.conn
        session.conn, session.live = None, False
        if invalidate:
            self.sessions.pop(session.id, None)
        self.state.changed()
        if code is None:
            if conn.transport is not None:
                conn.transport.abort()
        else:
            await conn.ws.close(code=code, message=b"closed by the test double")

    async def send_reconnect(self) -> None:
        """Ask the bot to reconnect and resume (op 7), as Discord does before maintenance."""
        session = self.current
        if session is None or session.conn is None:
            raise RuntimeError("the bot is not connected to the gateway")
        conn = session.conn
        session.live = False
        self.state.changed()
        await self._send(conn, {"op": RECONNECT, "d": None})

    async def invalidate_session(self, resumable: bool = False) -> None:
        """Send op 9 (Invalid Session); unless ``resumable`` the bot has to IDENTIFY anew."""
        session = self.current
        if session is None or session.conn is None:
            raise RuntimeError("the bot is not connected to the gateway")
        conn = session.conn
        session.live = False
        if not resumable:
            self.sessions.pop(session.id, None)
        self.state.changed()
        await self._send(conn, {"op": INVALID_SESSION, "d": resumable})

    async def close_all(self) -> None:
        for conn in list(self.connections):
            await conn.ws.close(code=1001, message=b"double shutting down")

    # ------------------------------------------------------------------ protocol
    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = Connection(ws=ws, transport=request.transport, query=dict(request.query))
        self.connections.add(conn)
        session: Session | None = None
        try:
            if conn.query.get("encoding", "json") != "json":
                await ws.close(code=4002, message=b"only encoding=json is supported by the double")
                return ws
            await self._send(conn, {"op": HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    session = await self._on_frame(conn, session, json.loads(msg.data))
        finally:
            self.connections.discard(conn)
            if session is not None and session.conn is conn:
                session.conn, session.live = None, False
            self.state.changed()
        return ws

    async def _on_frame(self, conn: Connection, session: Session | None, frame: JSON) -> Session | None:
        op, d = int(frame.get("op", -1)), frame.get("d")
        data: JSON = d if isinstance(d, dict) else {}
        self.log.append(("in", op, None))
        if op == HEARTBEAT:
            conn.heartbeats += 1
            conn.last_heartbeat_seq = d if isinstance(d, int) else None
            await self._send(conn, {"op": HEARTBEAT_ACK})
            self.state.changed()
        elif op == IDENTIFY:
            return await self._identify(conn, session, data)
        elif op == RESUME:
            return await self._resume(conn, session, data)
        elif op == REQUEST_MEMBERS and session is not None:
            guild = self.state.guild
            chunk = {
                "guild_id": str(guild.id),
                "members": [guild.member_payload(u) for u in guild.members.values()],
                "chunk_index": 0,
                "chunk_count": 1,
                "not_found": [],
                "nonce": data.get("nonce"),
            }
            await self.dispatch("GUILD_MEMBERS_CHUNK", chunk)
        return session

    async def _identify(self, conn: Connection, session: Session | None, d: JSON) -> Session | None:
        if d.get("token") != self.state.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return session
        if session is not None:
            await conn.ws.close(code=4005, message=b"Already authenticated.")
            return session
        self.identifies += 1
        self.identify_payloads.append(d)
        session = Session(id=uuid.uuid4().hex, intents=int(d.get("intents", 0)), shard=d.get("shard"))
        self.sessions[session.id] = session
        self.current, session.conn = session, conn
        s = self.state
        ready: JSON = {
            "v": 10,
            "user": {**s.bot_user.payload(), "verified": True, "mfa_enabled": False, "flags": 0},
            "guilds": [{"id": str(s.guild.id), "unavailable": True}],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.url,
            "application": {"id": str(s.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "geo_ordered_rtc_regions": [],
            "guild_join_requests": [],
            "auth": {},
            "_trace": ["poracle-discord-double"],
        }
        if session.shard is not None:
            ready["shard"] = session.shard
        await self._send(conn, self._next_frame(session, "READY", ready))
        await self._send(conn, self._next_frame(session, "GUILD_CREATE", s.guild.payload()))
        session.live = True
        self.state.changed()
        return session

    async def _resume(self, conn: Connection, current: Session | None, d: JSON) -> Session | None:
        session = self.sessions.get(d.get("session_id", ""))
        if session is None or d.get("token") != self.state.token:
            await self._send(conn, {"op": INVALID_SESSION, "d": False})
            return current
        self.resumes += 1
        self.current, session.conn, session.live = session, conn, False
        seen = d.get("seq") or 0
        i = next((n for n, f in enumerate(session.backlog) if f["s"] > seen), len(session.backlog))
        while i < len(session.backlog):  # dispatches made meanwhile are appended and sent too
            await self._send(conn, session.backlog[i])
            i += 1
        session.live = True
        await self._send(conn, self._next_frame(session, "RESUMED", {"_trace": ["poracle-discord-double"]}))
        self.state.changed()
        return session

    def _next_frame(self, session: Session, event: str, data: JSON) -> JSON:
        session.seq += 1
        return {"op": 0, "s": session.seq, "t": event, "d": data}

    async def _send(self, conn: Connection, frame: dict[str, Any]) -> None:
        self.log.append(("out", frame["op"], frame.get("t")))
        async with conn.lock:
            if conn.ws.closed:
                return
            # On failure the frame stays in the session backlog and is replayed on RESUME.
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn.ws.send_str(json.dumps(frame))
