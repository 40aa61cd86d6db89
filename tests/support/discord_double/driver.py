"""The test-facing side: start the double, act as a guild member, wait for what the bot says."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import discord
from aiohttp import web

from .faults import Fault, FaultPlan
from .gateway import Gateway
from .model import (
    JSON,
    Channel,
    DiscordState,
    InteractionRecord,
    Message,
    RequestRecord,
    Role,
    User,
    iter_components,
)
from .rest import RestApi

_OPTION_TYPES = {3: str, 4: int, 5: bool, 10: float}
# Nobody presses a button, or sends a form, within 50 ms of seeing it. The bot learns a message's id (and
# registers its buttons) only once Discord's answer to its request reaches it, a moment after the message
# exists here: a click sent at once would race that, as no person's could.
REACTION_TIME = 0.05


def api_base(port: int) -> str:
    """What ``discord.http.Route.BASE`` must be for a double on ``port``."""
    return f"http://127.0.0.1:{port}/api/v10"


def gateway_url(port: int) -> str:
    """What ``DiscordWebSocket.DEFAULT_GATEWAY`` must point at (as a ``yarl.URL``) for a double on ``port``."""
    return f"ws://127.0.0.1:{port}/"


_SUBCOMMAND, _GROUP, _USER, _CHANNEL, _ROLE = 1, 2, 6, 7, 8


class DiscordDouble:
    """A loopback Discord: gateway + REST on 127.0.0.1, a seeded guild, and a driver for tests.

    Seeded world: guild ``guild_id`` with the alert channel ``channel_id``, role "Poracle Admin"
    (``admin_role_id``) held by ``admins`` (alice, bob), and ``member`` (carol) without it.
    """

    def __init__(self) -> None:
        self.state = DiscordState()
        self.faults = FaultPlan()
        self.gateway = Gateway(self.state)
        self.rest = RestApi(self.state, self.faults, self.gateway.dispatch)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle
    async def start(self, port: int = 0) -> None:
        """Serve on ``port`` (0: a free one), e.g. the port a bot started earlier keeps trying."""
        app = web.Application(middlewares=[self.rest.middleware])
        app.router.add_get("/", self.gateway.handle)
        app.router.add_routes(self.rest.routes())
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.gateway.url = self.gateway_url

    async def stop(self) -> None:
        await self.gateway.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DiscordDouble:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def api_base(self) -> str:
        return api_base(self.port)

    @property
    def gateway_url(self) -> str:
        return gateway_url(self.port)

    @contextlib.asynccontextmanager
    async def connected(self, client: discord.Client, timeout: float = 5.0) -> AsyncIterator[discord.Client]:
        """Run ``client.start(double.token)`` for the block; enter once it is connected and caught up.

        Does not wait for ``on_ready``: discord.py fires it ``guild_ready_timeout`` (2 s by
        default) after the last GUILD_CREATE. Slash commands and clicks work before that.
        """
        task = asyncio.create_task(client.start(self.token), name="discord-double-client")
        ready = asyncio.create_task(self.gateway.wait_ready(timeout))
        try:
            await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                ready.cancel()
                task.result()  # raises the client's error (e.g. LoginFailure)
                raise RuntimeError("the client stopped before connecting")
            ready.result()
            yield client
        finally:
            ready.cancel()
            await client.close()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout)

    async def wait_until_ready(self, timeout: float = 5.0) -> None:
        """Wait until the bot is (again) identified or resumed and has processed all sent events."""
        await self.gateway.wait_ready(timeout)

    # ------------------------------------------------------------------ the seeded world
    @property
    def token(self) -> str:
        return self.state.token

    @property
    def application_id(self) -> int:
        return self.state.application_id

    @property
    def bot_user(self) -> User:
        return self.state.bot_user

    @property
    def guild_id(self) -> int:
        return self.state.guild.id

    @property
    def channel_id(self) -> int:
        return self.state.alert_channel.id

    @property
    def admin_role_id(self) -> int:
        return self.state.admin_role.id

    @property
    def admin_role(self) -> Role:
        return self.state.admin_role

    @property
    def admins(self) -> list[User]:
        return [self.state.alice, self.state.bob]

    @property
    def member(self) -> User:
        return self.state.carol

    def add_user(self, name: str, *, admin: bool = False) -> User:
        """Add a guild member (before the bot connects, or it only learns of them via interactions)."""
        roles = [self.admin_role_id] if admin else []
        return self.state.add_member(User(self.state.new_id(), name, role_ids=roles))

    async def add_channel(self, name: str) -> Channel:
        channel = self.state.add_channel(name)
        await self.gateway.dispatch("CHANNEL_CREATE", channel.payload())
        return channel

    def forbid_channel(self, channel_id: int, forbidden: bool = True) -> None:
        """Posts to the channel fail with 403 Missing Permissions (code 50013)."""
        channel = self.state.guild.channels[channel_id]
        channel.post_error = (403, 50013, "Missing Permissions") if forbidden else None

    async def remove_channel(self, channel_id: int, *, notify: bool = True) -> None:
        """The channel is gone: REST answers 404 Unknown Channel (10003). ``notify`` sends CHANNEL_DELETE."""
        channel = self.state.guild.channels.pop(channel_id)
        self.state.changed()
        if notify:
            await self.gateway.dispatch("CHANNEL_DELETE", channel.payload())

    async def delete_message(self, message: Message | int) -> None:
        """Someone (a moderator, say) deleted the message: MESSAGE_DELETE is sent, and REST answers
        404 Unknown Message (10008) for it from now on, as it does after the bot deleted it."""
        await self.rest._delete(self._current(message))

    # ------------------------------------------------------------------ what the bot said
    @property
    def messages(self) -> list[Message]:
        """Every message not deleted, oldest first, ephemeral ones included."""
        return self.state.live_messages()

    def channel_messages(self, channel_id: int | None = None) -> list[Message]:
        return self.state.live_messages(self.channel_id if channel_id is None else channel_id)

    def message(self, message_id: int) -> Message:
        return self.state.messages[message_id]

    def files(self, message: Message) -> dict[str, bytes]:
        """The files attached to `message` as it is now: name -> the bytes the bot uploaded."""
        return {
            a["filename"]: self.state.uploads[a["url"]]
            for a in message.attachments
            if a.get("url") in self.state.uploads
        }

    @property
    def requests(self) -> list[RequestRecord]:
        return self.state.requests

    def requests_to(self, method: str, path_pattern: str) -> list[RequestRecord]:
        """Logged requests matching ``method`` ("*" for any) and an fnmatch ``path_pattern``."""
        probe = Fault(method.upper(), path_pattern, times=1 << 30)
        return [r for r in self.state.requests if probe.matches(r.method, r.path)]

    def commands(self, guild_id: int | None = None) -> list[JSON]:
        """Commands synced globally (``guild_id=None``) or to a guild."""
        return list(self.state.commands_for(guild_id))

    async def wait_for_message(
        self,
        predicate: Callable[[Message], bool] = lambda m: True,
        timeout: float = 3.0,
        *,
        channel_id: int | None = None,
    ) -> Message:
        """The first live message (existing or to come, edits count) for which ``predicate`` holds."""

        def check() -> Message | None:
            return next((m for m in self.state.live_messages(channel_id) if predicate(m)), None)

        return await self.state.wait_until(check, timeout, lambda: f"a matching message; have {self.messages}")

    async def wait_for_request(self, method: str, path_pattern: str, timeout: float = 3.0) -> RequestRecord:
        def check() -> RequestRecord | None:
            found = self.requests_to(method, path_pattern)
            return found[0] if found else None

        return await self.state.wait_until(check, timeout, f"a request {method} {path_pattern}")

    # ------------------------------------------------------------------ misbehaviour
    @property
    def interaction_deadline(self) -> float | None:
        """Seconds the bot has for its first callback (Discord: 3); later ones get 404 code 10062."""
        return self.rest.interaction_deadline

    @interaction_deadline.setter
    def interaction_deadline(self, seconds: float | None) -> None:
        self.rest.interaction_deadline = seconds

    def fail_next(
        self,
        method: str,
        path_pattern: str,
        status: int = 429,
        *,
        retry_after: float = 0.05,
        times: int = 1,
        code: int = 0,
        message: str | None = None,
        is_global: bool = False,
    ) -> Fault:
        """Answer the next ``times`` matching REST calls with ``status`` (429 carries ``retry_after``)."""
        fault = Fault(method.upper(), path_pattern, status, retry_after, times, code, message, is_global)
        return self.faults.add(fault)

    async def drop_gateway(self, code: int | None = 4000, *, invalidate: bool = False) -> None:
        """Close the bot's websocket (``None``: abort the connection). The bot should RESUME."""
        await self.gateway.drop(code, invalidate=invalidate)

    async def request_reconnect(self) -> None:
        await self.gateway.send_reconnect()

    async def invalidate_session(self, resumable: bool = False) -> None:
        await self.gateway.invalidate_session(resumable)

    # ------------------------------------------------------------------ acting as users
    async def slash(
        self,
        user: User,
        command: str,
        /,
        *path: str,
        options: Mapping[str, Any] | None = None,
        channel_id: int | None = None,
        wait: bool = True,
        timeout: float = 3.0,
        **kw_options: Any,
    ) -> InteractionRecord:
        """Run ``/command path... option=value`` as ``user``; by default wait for the bot's callback.

        The command must have been synced (guild commands first, then global), like in a real client.
        ``user`` and ``command`` are positional-only, so options may be called ``user``; options named
        ``options``, ``channel_id``, ``wait`` or ``timeout`` go through ``options={...}``.
        """
        values = {**(options or {}), **kw_options}
        leaf, data, kinds = self._command_data(command, path)
        data["options"] = _nest(path, kinds, self._option_values(leaf, values, focused=None))
        rec = await self._send_interaction(2, user, data, channel_id)
        if wait:
            await rec.wait_response(timeout)
        return rec

    async def autocomplete(
        self,
        user: User,
        command: str,
        /,
        *args: str,
        options: Mapping[str, Any] | None = None,
        channel_id: int | None = None,
        timeout: float = 3.0,
    ) -> list[JSON]:
        """``autocomplete(user, "poracle", "restart", "server", "Ma")``: the choices the bot offers.

        The last two positional arguments are the focused option and what the user typed so far.
        """
        *path, focused, typed = args
        leaf, data, kinds = self._command_data(command, tuple(path))
        values = {**(options or {}), focused: typed}
        data["options"] = _nest(tuple(path), kinds, self._option_values(leaf, values, focused=focused))
        rec = await self._send_interaction(4, user, data, channel_id)
        await rec.wait_response(timeout)
        return rec.choices or []

    async def click(
        self,
        user: User,
        message: Message | int,
        label: str | None = None,
        *,
        custom_id: str | None = None,
        wait: bool = True,
        timeout: float = 3.0,
    ) -> InteractionRecord:
        """Click the button with ``label`` (or ``custom_id``) on the message as it is now."""
        msg = self._current(message)
        if custom_id is None:
            if label is None:
                raise ValueError("give the button's label or custom_id")
            button = msg.button(label)
        else:
            found = [b for b in msg.buttons if b.get("custom_id") == custom_id]
            if not found:
                raise LookupError(f"no button with custom_id {custom_id!r} on {msg!r}")
            button = found[0]
        if button.get("disabled"):
            raise ValueError(f"button {button.get('label')!r} is disabled; Discord would not send the click")
        if "custom_id" not in button:
            raise ValueError(f"button {button.get('label')!r} is a link button")
        data = {"custom_id": button["custom_id"], "component_type": 2}
        await _react(msg.shown_monotonic)
        rec = await self._send_interaction(3, user, data, msg.channel_id, source=msg)
        if wait:
            await rec.wait_response(timeout)
        return rec

    async def select(
        self,
        user: User,
        message: Message | int,
        values: list[str],
        *,
        custom_id: str | None = None,
        wait: bool = True,
        timeout: float = 3.0,
    ) -> InteractionRecord:
        """Choose ``values`` in the message's string select (the first one, or the one with ``custom_id``)."""
        msg = self._current(message)
        selects = [
            c
            for c in iter_components(msg.components)
            if c.get("type") == 3 and (custom_id is None or c.get("custom_id") == custom_id)
        ]
        if not selects:
            raise LookupError(f"no string select on {msg!r}")
        data = {"custom_id": selects[0]["custom_id"], "component_type": 3, "values": list(values)}
        await _react(msg.shown_monotonic)
        rec = await self._send_interaction(3, user, data, msg.channel_id, source=msg)
        if wait:
            await rec.wait_response(timeout)
        return rec

    async def submit_modal(
        self,
        user: User,
        record: InteractionRecord,
        values: Mapping[str, str] | None = None,
        *,
        wait: bool = True,
        timeout: float = 3.0,
    ) -> InteractionRecord:
        """Fill in and send the form the bot answered ``record`` with (callback type 9). ``values`` go by
        the label the user sees; inputs left out are sent empty. A form opened from a button carries that
        button's message, which the bot may then update (callback type 7)."""
        modal = record.modal
        if modal is None:
            raise ValueError(f"{record!r} was not answered with a form")
        values = dict(values or {})
        components = [self._submitted(c, values) for c in modal.get("components", [])]
        if values:
            raise LookupError(f"the form has no inputs labelled {sorted(values)}")
        data = {"custom_id": modal["custom_id"], "components": components}
        source = self.state.messages.get(record.source_message_id) if record.source_message_id else None
        await _react(record.responded_monotonic or record.created_monotonic)
        rec = await self._send_interaction(5, user, data, record.channel_id, source=source)
        if wait:
            await rec.wait_response(timeout)
        return rec

    @staticmethod
    def _submitted(component: JSON, values: dict[str, str]) -> JSON:
        """One top-level component of a form as Discord sends it back: a label or an action row around a
        text input, with its value."""
        if component.get("type") == 18:
            text_input, label = component["component"], component.get("label")
        else:
            text_input = component["components"][0]
            label = text_input.get("label")
        value = values.pop(str(label), "")
        if text_input.get("required", True) and not value:
            raise ValueError(f"the input {label!r} is required; Discord would not send the form")
        if len(value) > int(text_input.get("max_length") or 4000):
            raise ValueError(f"{label!r} takes at most {text_input['max_length']} characters")
        sent = {"type": 4, "custom_id": text_input["custom_id"], "value": value}
        if component.get("type") == 18:
            return {"type": 18, "component": sent}
        return {"type": 1, "components": [sent]}

    # ------------------------------------------------------------------ interaction building
    def _current(self, message: Message | int) -> Message:
        msg = self.state.messages.get(message if isinstance(message, int) else message.id)
        if msg is None or msg.deleted:
            raise LookupError(f"message {message!r} does not exist (any more)")
        return msg

    def _command_data(self, name: str, path: tuple[str, ...]) -> tuple[JSON, JSON, list[int]]:
        """The options spec at the end of ``path``, the interaction ``data`` stub, the path's kinds."""
        cmd = self.state.find_command(name, self.guild_id)
        if cmd is None:
            synced = [c["name"] for c in [*self.commands(self.guild_id), *self.commands()]]
            raise LookupError(f"/{name} is not synced; synced commands: {synced}")
        leaf, kinds = cmd, []
        for part in path:
            sub = next(
                (o for o in leaf.get("options", []) if o["name"] == part and o["type"] in (_SUBCOMMAND, _GROUP)),
                None,
            )
            if sub is None:
                raise LookupError(f"/{name} has no subcommand {part!r} at that level")
            leaf = sub
            kinds.append(sub["type"])
        if any(o["type"] in (_SUBCOMMAND, _GROUP) for o in leaf.get("options", [])):
            raise LookupError(f"/{name} {' '.join(path)} needs a subcommand")
        data: JSON = {"id": cmd["id"], "name": cmd["name"], "type": 1}
        if "guild_id" in cmd:
            data["guild_id"] = cmd["guild_id"]
        return leaf, data, kinds

    def _option_values(self, leaf: JSON, values: Mapping[str, Any], focused: str | None) -> list[JSON]:
        specs = {o["name"]: o for o in leaf.get("options", [])}
        unknown = set(values) - set(specs)
        if unknown:
            raise LookupError(f"unknown options {sorted(unknown)}; the command has {sorted(specs)}")
        missing = [n for n, o in specs.items() if o.get("required") and n not in values]
        if missing and focused is None:
            raise ValueError(f"required options missing: {missing}")
        out: list[JSON] = []
        for name, value in values.items():
            spec = specs[name]
            opt: JSON = {"name": name, "type": spec["type"]}
            if name == focused:
                opt.update(value=str(value), focused=True)  # the user is still typing: always a string
            else:
                opt["value"] = self._coerce(spec, value)
            out.append(opt)
        return out

    def _coerce(self, spec: JSON, value: Any) -> Any:
        kind = spec["type"]
        if kind in (_USER, _CHANNEL, _ROLE):
            return str(getattr(value, "id", value))
        if kind not in _OPTION_TYPES:
            raise TypeError(f"option type {kind} is not supported by the double")
        value = _OPTION_TYPES[kind](value)
        choices = spec.get("choices")
        if choices and value not in [c["value"] for c in choices]:
            raise ValueError(f"{value!r} is not one of the choices of {spec['name']!r}: {choices}")
        return value

    def _resolved(self, data: JSON) -> JSON:
        """Discord's ``resolved`` block for user/channel/role options."""
        resolved: dict[str, dict[str, JSON]] = {}
        guild = self.state.guild

        def walk(options: list[JSON]) -> None:
            for o in options:
                walk(o.get("options", []))
                if "value" not in o or o.get("focused"):
                    continue
                oid = int(o["value"]) if str(o["value"]).isdigit() else 0
                if o["type"] == _USER and oid in self.state.users:
                    u = self.state.users[oid]
                    resolved.setdefault("users", {})[str(oid)] = u.payload()
                    if oid in guild.members:
                        member = guild.member_payload(u, with_user=False, with_permissions=True)
                        resolved.setdefault("members", {})[str(oid)] = member
                elif o["type"] == _CHANNEL and oid in guild.channels:
                    channel = {**guild.channels[oid].payload(), "permissions": str((1 << 53) - 1)}
                    resolved.setdefault("channels", {})[str(oid)] = channel
                elif o["type"] == _ROLE and oid in guild.roles:
                    resolved.setdefault("roles", {})[str(oid)] = guild.roles[oid].payload()

        walk(data.get("options", []))
        return resolved

    async def _send_interaction(
        self, itype: int, user: User, data: JSON, channel_id: int | None, source: Message | None = None
    ) -> InteractionRecord:
        s, guild = self.state, self.state.guild
        if user.id not in guild.members:
            raise LookupError(f"{user!r} is not a member of the guild")
        channel = guild.channels.get(channel_id or self.channel_id)
        if channel is None:
            raise LookupError(f"channel {channel_id} does not exist")
        if self.gateway.current is None:
            raise RuntimeError("the bot has never connected to the gateway")
        if itype in (2, 4):
            resolved = self._resolved(data)
            if resolved:
                data["resolved"] = resolved
        iid = s.new_id()
        payload: JSON = {
            "id": str(iid),
            "application_id": str(s.application_id),
            "type": itype,
            "data": data,
            "guild_id": str(guild.id),
            "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
            "channel_id": str(channel.id),
            "channel": {**channel.payload(), "permissions": str(guild.permissions_of(user))},
            "member": guild.member_payload(user, with_permissions=True),
            "token": f"double-token.{iid}",
            "version": 1,
            "app_permissions": str(guild.permissions_of(s.bot_user)),
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if source is not None:
            payload["message"] = source.payload()
        rec = InteractionRecord(
            id=iid,
            token=payload["token"],
            type=itype,
            user=user,
            channel_id=channel.id,
            data=data,
            payload=payload,
            created_monotonic=time.monotonic(),
            state=s,
            source_message_id=source.id if source is not None else None,
        )
        s.interactions[iid] = rec
        s.changed()
        await self.gateway.dispatch("INTERACTION_CREATE", payload)
        return rec


def _nest(path: tuple[str, ...], kinds: list[int], leaf_options: list[JSON]) -> list[JSON]:
    """Wrap the leaf options in their subcommand (group) options, as Discord sends them."""
    options = leaf_options
    for part, kind in reversed(list(zip(path, kinds, strict=True))):
        options = [{"name": part, "type": kind, "options": options}]
    return options


async def _react(shown: float) -> None:
    """Wait until a person could have seen what appeared at `shown` (time.monotonic())."""
    await asyncio.sleep(max(0.0, shown + REACTION_TIME - time.monotonic()))
