"""The REST half of the double: the routes under ``/api/v10`` that the bot uses.

Every answer is JSON with ``Content-Type: application/json`` exactly (discord.py reads a body as JSON
only then) and errors carry Discord's ``{"code", "message"}`` body, so discord.py raises the same
``Forbidden``/``NotFound``/``HTTPException`` it would in production.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .faults import DROP, FaultPlan
from .model import (
    EPHEMERAL,
    JSON,
    LOADING,
    SUPPRESS_EMBEDS,
    SUPPRESS_NOTIFICATIONS,
    DiscordState,
    InteractionRecord,
    Message,
    RequestRecord,
    iter_components,
)

API_PREFIX = "/api/v10"
IS_COMPONENTS_V2 = 1 << 15
_POSTABLE_FLAGS = SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS | IS_COMPONENTS_V2
_COMMAND_NAME = re.compile(r"^[-_\w]{1,32}$")

Dispatch = Callable[[str, JSON], Awaitable[object]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # body= (not text=) so aiohttp sends "application/json" without "; charset=utf-8".
    return web.Response(body=json.dumps(data).encode(), status=status, content_type="application/json", headers=headers)


def error(status: int, code: int, message: str, errors: JSON | None = None) -> web.Response:
    body: JSON = {"message": message, "code": code}
    if errors:
        body["errors"] = errors
    return json_response(body, status)


def form_error(field: str, message: str) -> web.Response:
    errors = {field: {"_errors": [{"code": "BASE_TYPE_INVALID", "message": message}]}}
    return error(400, 50035, "Invalid Form Body", errors)


def message_problem(body: JSON, *, creating: bool) -> web.Response | None:
    """The subset of Discord's message validation a bot is likely to trip over."""
    content = body.get("content") or ""
    embeds = body.get("embeds") or []
    components = body.get("components") or []
    if creating and not (content or embeds or components or body.get("attachments") or body.get("poll")):
        return error(400, 50006, "Cannot send an empty message")
    if len(content) > 2000:
        return form_error("content", "Must be 2000 or fewer in length.")
    if len(embeds) > 10:
        return form_error("embeds", "Must be 10 or fewer in length.")
    total = 0
    for embed in embeds:
        title, desc = embed.get("title") or "", embed.get("description") or ""
        fields = embed.get("fields") or []
        if len(title) > 256 or len(desc) > 4096 or len(fields) > 25:
            return form_error("embeds", "Embed title/description/fields too long.")
        footer, author = (embed.get("footer") or {}).get("text", ""), (embed.get("author") or {}).get("name", "")
        if len(footer) > 2048 or len(author) > 256:
            return form_error("embeds", "Embed footer/author too long.")
        for f in fields:
            if len(f.get("name", "")) > 256 or len(f.get("value", "")) > 1024 or not f.get("value"):
                return form_error("embeds", "Embed field name/value invalid.")
            total += len(f.get("name", "")) + len(f.get("value", ""))
        total += len(title) + len(desc) + len(footer) + len(author)
    if total > 6000:
        return form_error("embeds", "Embed size exceeds maximum size of 6000.")
    if len(components) > 5 and not (int(body.get("flags") or 0) & IS_COMPONENTS_V2):
        return form_error("components", "Must be 5 or fewer in length.")
    for comp in iter_components(components):
        if len(comp.get("custom_id", "")) > 100 or len(comp.get("label") or "") > 80:
            return form_error("components", "custom_id must be <= 100 and label <= 80 characters.")
    return None


class RestApi:
    """Route handlers over a :class:`DiscordState`; ``dispatch`` sends gateway events."""

    def __init__(self, state: DiscordState, faults: FaultPlan, dispatch: Dispatch) -> None:
        self.state = state
        self.faults = faults
        self.dispatch = dispatch
        self.interaction_deadline: float | None = 3.0  # Discord's limit for the first callback
        self.unhandled: list[RequestRecord] = []
        self._bodies: dict[int, tuple[Any, list[JSON]]] = {}  # request id -> (body, uploaded files)

    # ------------------------------------------------------------------ plumbing
    def routes(self) -> list[web.RouteDef]:
        p = API_PREFIX
        app = "/applications/{app_id}"
        msg = "/channels/{channel_id}/messages/{message_id}"
        hook = "/webhooks/{app_id}/{token}"
        return [
            web.get(p + "/users/@me", self.get_me),
            web.get(p + "/oauth2/applications/@me", self.get_application),
            web.get(p + app + "/commands", self.get_commands),
            web.put(p + app + "/commands", self.put_commands),
            web.post(p + app + "/commands", self.post_command),
            web.delete(p + app + "/commands/{command_id}", self.delete_command),
            web.get(p + app + "/guilds/{guild_id}/commands", self.get_commands),
            web.put(p + app + "/guilds/{guild_id}/commands", self.put_commands),
            web.post(p + app + "/guilds/{guild_id}/commands", self.post_command),
            web.delete(p + app + "/guilds/{guild_id}/commands/{command_id}", self.delete_command),
            web.get(p + "/guilds/{guild_id}", self.get_guild),
            web.get(p + "/guilds/{guild_id}/roles", self.get_roles),
            web.get(p + "/guilds/{guild_id}/channels", self.get_guild_channels),
            web.get(p + "/guilds/{guild_id}/members/{user_id}", self.get_member),
            web.get(p + "/channels/{channel_id}", self.get_channel),
            web.post(p + "/channels/{channel_id}/typing", self.typing),
            web.get(p + "/channels/{channel_id}/messages", self.list_messages),
            web.post(p + "/channels/{channel_id}/messages", self.create_message),
            web.get(p + msg, self.get_message),
            web.patch(p + msg, self.edit_message),
            web.delete(p + msg, self.delete_message),
            web.post(p + "/interactions/{interaction_id}/{token}/callback", self.callback),
            web.post(p + hook, self.followup),
            web.get(p + hook + "/messages/{message_id}", self.get_webhook_message),
            web.patch(p + hook + "/messages/{message_id}", self.edit_webhook_message),
            web.delete(p + hook + "/messages/{message_id}", self.delete_webhook_message),
        ]

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX):
            return await handler(request)  # the gateway websocket
        path = request.path[len(API_PREFIX) :]
        body, files = await _read_body(request, self.state)
        self._bodies[id(request)] = (body, files)
        record = RequestRecord(request.method, path, dict(request.query), body)
        self.state.requests.append(record)
        try:
            response = await self._answer(request, handler, path, record)
        except web.HTTPException as exc:  # unknown route or method
            self.unhandled.append(record)
            response = error(exc.status, 0, f"{exc.status}: {exc.reason}")
        finally:
            del self._bodies[id(request)]
        record.status = DROP if request.transport is None or request.transport.is_closing() else response.status
        self.state.changed()
        return response

    async def _answer(
        self, request: web.Request, handler: Handler, path: str, record: RequestRecord
    ) -> web.StreamResponse:
        webhook_auth = path.startswith(("/webhooks/", "/interactions/"))
        if not webhook_auth and request.headers.get("Authorization") != f"Bot {self.state.token}":
            return error(401, 0, "401: Unauthorized")
        fault = self.faults.take(request.method, path)
        if fault is not None and fault.status == DROP:  # a network failure: no answer, the connection closes
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=503)  # never sent
        if fault is not None:
            return json_response(fault.body(), fault.status, fault.headers())
        return await handler(request)

    def _raw_body(self, request: web.Request) -> Any:
        return self._bodies[id(request)][0]

    def _body(self, request: web.Request) -> JSON:
        body = self._raw_body(request)
        return body if isinstance(body, dict) else {}

    def _files(self, request: web.Request) -> list[JSON]:
        return self._bodies[id(request)][1]

    def _check_app(self, request: web.Request) -> web.Response | None:
        if request.match_info["app_id"] != str(self.state.application_id):
            return error(403, 20012, "You are not authorized to perform this action on this application")
        return None

    def _check_guild(self, request: web.Request) -> web.Response | None:
        gid = request.match_info.get("guild_id")
        if gid is not None and gid != str(self.state.guild.id):
            return error(404, 10004, "Unknown Guild")
        return None

    # ------------------------------------------------------------------ identity
    async def get_me(self, request: web.Request) -> web.Response:
        return json_response({**self.state.bot_user.payload(), "verified": True, "mfa_enabled": False, "flags": 0})

    async def get_application(self, request: web.Request) -> web.Response:
        s = self.state
        return json_response(
            {
                "id": str(s.application_id),
                "name": s.bot_user.name,
                "description": "",
                "icon": None,
                "rpc_origins": [],
                "bot_public": False,
                "bot_require_code_grant": False,
                "owner": s.alice.payload(),
                "summary": "",
                "verify_key": "0" * 64,
                "team": None,
                "flags": 0,
                "bot": s.bot_user.payload(),
                "redirect_uris": [],
            }
        )

    # ------------------------------------------------------------------ application commands
    def _command_scope(self, request: web.Request) -> int | None:
        gid = request.match_info.get("guild_id")
        return int(gid) if gid is not None else None

    def _materialise(self, raw: JSON, guild_id: int | None, old: list[JSON]) -> JSON | web.Response:
        name, ctype = raw.get("name", ""), raw.get("type", 1)
        if not _COMMAND_NAME.match(name) or (ctype == 1 and name != name.lower()):
            return form_error("name", f"Invalid command name {name!r}.")
        if ctype == 1 and not 1 <= len(raw.get("description", "")) <= 100:
            return form_error("description", "Must be between 1 and 100 in length.")
        if len(raw.get("options") or []) > 25:
            return form_error("options", "Must be 25 or fewer in length.")
        same = next((c for c in old if c["name"] == name and c.get("type", 1) == ctype), None)
        cmd: JSON = {
            "default_member_permissions": None,
            "dm_permission": True,
            "nsfw": False,
            "contexts": None,
            "integration_types": [0],
            "options": [],
            **raw,
            "id": same["id"] if same else str(self.state.new_id()),
            "application_id": str(self.state.application_id),
            "type": ctype,
            "version": str(self.state.new_id()),
        }
        if guild_id is not None:
            cmd["guild_id"] = str(guild_id)
        return cmd

    async def get_commands(self, request: web.Request) -> web.Response:
        problem = self._check_app(request) or self._check_guild(request)
        return problem or json_response(self.state.commands_for(self._command_scope(request)))

    async def put_commands(self, request: web.Request) -> web.Response:
        problem = self._check_app(request) or self._check_guild(request)
        if problem:
            return problem
        scope = self._command_scope(request)
        old = self.state.commands_for(scope)
        raw_body = self._raw_body(request)
        raw_list = raw_body if isinstance(raw_body, list) else []
        if len(raw_list) > 100:
            return form_error("_", "Must be 100 or fewer in length.")
        new: list[JSON] = []
        for raw in raw_list:
            cmd = self._materialise(raw, scope, old)
            if isinstance(cmd, web.Response):
                return cmd
            new.append(cmd)
        old[:] = new
        self.state.changed()
        return json_response(new)

    async def post_command(self, request: web.Request) -> web.Response:
        problem = self._check_app(request) or self._check_guild(request)
        if problem:
            return problem
        scope = self._command_scope(request)
        old = self.state.commands_for(scope)
        cmd = self._materialise(self._body(request), scope, old)
        if isinstance(cmd, web.Response):
            return cmd
        old[:] = [c for c in old if c["id"] != cmd["id"]] + [cmd]
        self.state.changed()
        return json_response(cmd, 201)

    async def delete_command(self, request: web.Request) -> web.Response:
        problem = self._check_app(request) or self._check_guild(request)
        if problem:
            return problem
        old = self.state.commands_for(self._command_scope(request))
        cid = request.match_info["command_id"]
        if not any(c["id"] == cid for c in old):
            return error(404, 10063, "Unknown application command")
        old[:] = [c for c in old if c["id"] != cid]
        self.state.changed()
        return web.Response(status=204)

    # ------------------------------------------------------------------ guild
    async def get_guild(self, request: web.Request) -> web.Response:
        return self._check_guild(request) or json_response(self.state.guild.payload())

    async def get_roles(self, request: web.Request) -> web.Response:
        roles = [r.payload() for r in self.state.guild.roles.values()]
        return self._check_guild(request) or json_response(roles)

    async def get_guild_channels(self, request: web.Request) -> web.Response:
        channels = [c.payload() for c in self.state.guild.channels.values()]
        return self._check_guild(request) or json_response(channels)

    async def get_member(self, request: web.Request) -> web.Response:
        problem = self._check_guild(request)
        if problem:
            return problem
        user = self.state.guild.members.get(int(request.match_info["user_id"]))
        if user is None:
            return error(404, 10007, "Unknown Member")
        return json_response(self.state.guild.member_payload(user))

    # ------------------------------------------------------------------ channel messages
    def _channel_message(self, request: web.Request) -> Message | web.Response:
        cid, mid = int(request.match_info["channel_id"]), request.match_info["message_id"]
        if cid not in self.state.guild.channels:
            return error(404, 10003, "Unknown Channel")
        msg = self.state.messages.get(int(mid)) if mid.isdigit() else None
        if msg is None or msg.deleted or msg.ephemeral or msg.channel_id != cid:
            return error(404, 10008, "Unknown Message")
        return msg

    async def get_channel(self, request: web.Request) -> web.Response:
        channel = self.state.guild.channels.get(int(request.match_info["channel_id"]))
        if channel is None:
            return error(404, 10003, "Unknown Channel")
        return json_response(channel.payload())

    async def typing(self, request: web.Request) -> web.Response:
        if int(request.match_info["channel_id"]) not in self.state.guild.channels:
            return error(404, 10003, "Unknown Channel")
        return web.Response(status=204)

    async def list_messages(self, request: web.Request) -> web.Response:
        cid = int(request.match_info["channel_id"])
        if cid not in self.state.guild.channels:
            return error(404, 10003, "Unknown Channel")
        limit = int(request.query.get("limit", "50"))
        msgs = [m for m in self.state.live_messages(cid) if not m.ephemeral]
        return json_response([m.payload() for m in reversed(msgs)][:limit])

    async def create_message(self, request: web.Request) -> web.Response:
        channel = self.state.guild.channels.get(int(request.match_info["channel_id"]))
        if channel is None:
            return error(404, 10003, "Unknown Channel")
        if channel.post_error is not None:
            return error(*channel.post_error)
        body = self._body(request)
        problem = message_problem({**body, "attachments": self._files(request) or None}, creating=True)
        if problem:
            return problem
        msg = self._new_message(channel.id, body, self._files(request), flags=int(body.get("flags") or 0))
        await self._announce("MESSAGE_CREATE", msg)
        return json_response(msg.payload())

    async def get_message(self, request: web.Request) -> web.Response:
        msg = self._channel_message(request)
        return msg if isinstance(msg, web.Response) else json_response(msg.payload())

    async def edit_message(self, request: web.Request) -> web.Response:
        msg = self._channel_message(request)
        if isinstance(msg, web.Response):
            return msg
        if msg.author is not self.state.bot_user:
            return error(403, 50005, "Cannot edit a message authored by another user")
        return await self._edit(msg, self._body(request), self._files(request))

    async def delete_message(self, request: web.Request) -> web.Response:
        msg = self._channel_message(request)
        if isinstance(msg, web.Response):
            return msg
        return await self._delete(msg)

    # ------------------------------------------------------------------ shared message mechanics
    def _new_message(
        self,
        channel_id: int,
        body: JSON,
        files: list[JSON],
        *,
        flags: int,
        interaction: InteractionRecord | None = None,
        followup_of: int | None = None,
    ) -> Message:
        s = self.state
        msg = Message(
            id=s.new_id(),
            channel_id=channel_id,
            guild_id=s.guild.id,
            author=s.bot_user,
            content=body.get("content") or "",
            embeds=list(body.get("embeds") or []),
            components=list(body.get("components") or []),
            flags=flags,
            allowed_mentions=body.get("allowed_mentions"),
            attachments=files,
        )
        if interaction is not None:
            msg.webhook_id = msg.application_id = s.application_id
            msg.type = 20 if interaction.type == 2 else 0
            msg.interaction_metadata = _interaction_metadata(interaction, followup_of)
            msg.interaction = {
                "id": str(interaction.id),
                "type": interaction.type,
                "name": interaction.data.get("name", ""),
                "user": interaction.user.payload(),
            }
        return s.add_message(msg)

    async def _edit(self, msg: Message, body: JSON, files: list[JSON] | None = None) -> web.Response:
        problem = message_problem(body, creating=False)
        if problem:
            return problem
        if files:
            # `attachments` of an edit names the existing ones to keep by their id; the new files' entries
            # carry the index of their upload instead: those are the uploaded files themselves.
            kept = {str(a.get("id")) for a in body.get("attachments") or []}
            body = {**body, "attachments": [a for a in msg.attachments if a["id"] in kept] + files}
        msg.apply_edit(body)
        self.state.changed()
        await self._announce("MESSAGE_UPDATE", msg)
        return json_response(msg.payload())

    async def _delete(self, msg: Message) -> web.Response:
        msg.deleted = True
        self.state.changed()
        if not msg.ephemeral:
            data = {"id": str(msg.id), "channel_id": str(msg.channel_id), "guild_id": str(msg.guild_id)}
            await self.dispatch("MESSAGE_DELETE", data)
        return web.Response(status=204)

    async def _announce(self, event: str, msg: Message) -> None:
        if msg.ephemeral:
            return  # only the invoking user sees those; no gateway event
        member = self.state.guild.member_payload(msg.author, with_user=False)
        await self.dispatch(event, {**msg.payload(), "guild_id": str(msg.guild_id), "member": member})

    # ------------------------------------------------------------------ interactions
    async def callback(self, request: web.Request) -> web.Response:
        s = self.state
        rec = s.interactions.get(int(request.match_info["interaction_id"]))
        if rec is None or rec.token != request.match_info["token"]:
            return error(404, 10062, "Unknown interaction")
        if self.interaction_deadline is not None and (
            time.monotonic() - rec.created_monotonic > self.interaction_deadline
        ):
            return error(404, 10062, "Unknown interaction")
        if rec.responded:
            return error(400, 40060, "Interaction has already been acknowledged.")
        body = self._body(request)
        rtype, data = int(body.get("type", 0)), body.get("data") or {}
        allowed = {2: {4, 5, 9}, 3: {4, 5, 6, 7, 9}, 4: {8}, 5: {4, 5, 6, 7}}.get(rec.type, set())
        if rtype not in allowed:
            return form_error("type", f"Interaction response type {rtype} is invalid for interaction type {rec.type}.")
        msg: Message | None = None
        if rtype == 8:
            choices = data.get("choices") or []
            if len(choices) > 25 or any(
                not 1 <= len(str(c.get(k, ""))) <= 100 for c in choices for k in ("name", "value")
            ):
                return form_error("choices", "Must be 25 or fewer, each name and value 1 to 100 characters.")
        if rtype == 9 and (len(data.get("title") or "") > 45 or not data.get("title")):
            return form_error("title", "Must be between 1 and 45 in length.")
        if rtype == 9 and any(len(c.get("label") or "") > 45 for c in iter_components(data.get("components") or [])):
            return form_error("components", "A label must be at most 45 characters long.")
        if rtype == 7 and rec.type == 5 and rec.source_message_id is None:
            return form_error("type", "Only a form opened from a message's component can update that message.")
        if rtype == 4:
            problem = message_problem({**data, "attachments": self._files(request) or None}, creating=True)
            if problem:
                return problem
            flags = int(data.get("flags") or 0) & (EPHEMERAL | _POSTABLE_FLAGS)
            msg = self._new_message(rec.channel_id, data, self._files(request), flags=flags, interaction=rec)
        elif rtype == 5:
            flags = LOADING | (int(data.get("flags") or 0) & EPHEMERAL)
            msg = self._new_message(rec.channel_id, {}, [], flags=flags, interaction=rec)
        elif rtype in (6, 7):
            msg = s.messages[rec.source_message_id] if rec.source_message_id else None
            if rtype == 7 and msg is not None:
                problem = message_problem(data, creating=False)
                if problem:
                    return problem
                msg.apply_edit(data)
        rec.response_type, rec.response_data = rtype, data
        rec.responded_monotonic = time.monotonic()
        if msg is not None:
            rec.original_message_id = msg.id
        s.changed()
        if msg is not None and rtype in (4, 5):
            await self._announce("MESSAGE_CREATE", msg)
        elif msg is not None and rtype == 7:
            await self._announce("MESSAGE_UPDATE", msg)

        answer: JSON = {"interaction": {"id": str(rec.id), "type": rec.type}}
        if msg is not None and rtype != 6:
            answer["interaction"].update(
                response_message_id=str(msg.id),
                response_message_loading=msg.loading,
                response_message_ephemeral=msg.ephemeral,
            )
            answer["resource"] = {"type": rtype, "message": msg.payload()}
        return json_response(answer)

    def _webhook_interaction(self, request: web.Request) -> InteractionRecord | web.Response:
        if request.match_info["app_id"] != str(self.state.application_id):
            return error(404, 10015, "Unknown Webhook")
        token = request.match_info["token"]
        rec = next((r for r in self.state.interactions.values() if r.token == token), None)
        if rec is None or not rec.responded:
            return error(404, 10015, "Unknown Webhook")
        return rec

    def _webhook_message(self, request: web.Request) -> tuple[InteractionRecord, Message] | web.Response:
        rec = self._webhook_interaction(request)
        if isinstance(rec, web.Response):
            return rec
        mid = request.match_info["message_id"]
        msg_id = rec.original_message_id if mid == "@original" else int(mid) if mid.isdigit() else None
        allowed = {rec.original_message_id, *rec.followup_ids}
        msg = self.state.messages.get(msg_id) if msg_id in allowed and msg_id is not None else None
        if msg is None or msg.deleted:
            return error(404, 10008, "Unknown Message")
        return rec, msg

    async def followup(self, request: web.Request) -> web.Response:
        rec = self._webhook_interaction(request)
        if isinstance(rec, web.Response):
            return rec
        body = self._body(request)
        problem = message_problem({**body, "attachments": self._files(request) or None}, creating=True)
        if problem:
            return problem
        original = rec.original
        if rec.response_type == 5 and original is not None and original.loading:
            # Discord fills the "thinking..." message with the first follow-up; the defer decided
            # whether it is ephemeral.
            await self._edit(original, {k: v for k, v in body.items() if k != "flags"}, self._files(request))
            msg = original
        else:
            flags = int(body.get("flags") or 0) & (EPHEMERAL | _POSTABLE_FLAGS)
            msg = self._new_message(
                rec.channel_id,
                body,
                self._files(request),
                flags=flags,
                interaction=rec,
                followup_of=rec.original_message_id,
            )
            rec.followup_ids.append(msg.id)
            self.state.changed()
            await self._announce("MESSAGE_CREATE", msg)
        if request.query.get("wait", "false").lower() in ("0", "false"):
            return web.Response(status=204)
        return json_response(msg.payload())

    async def get_webhook_message(self, request: web.Request) -> web.Response:
        found = self._webhook_message(request)
        return found if isinstance(found, web.Response) else json_response(found[1].payload())

    async def edit_webhook_message(self, request: web.Request) -> web.Response:
        found = self._webhook_message(request)
        if isinstance(found, web.Response):
            return found
        return await self._edit(found[1], self._body(request), self._files(request))

    async def delete_webhook_message(self, request: web.Request) -> web.Response:
        found = self._webhook_message(request)
        if isinstance(found, web.Response):
            return found
        return await self._delete(found[1])


def _interaction_metadata(rec: InteractionRecord, followup_of: int | None) -> JSON:
    md: JSON = {
        "id": str(rec.id),
        "type": rec.type,
        "user": rec.user.payload(),
        "authorizing_integration_owners": {"0": str(rec.state.guild.id)},
    }
    if rec.type == 2:
        md["name"] = rec.data.get("name", "")
        md["command_type"] = 1
    if rec.type == 3 and rec.source_message_id is not None:
        md["interacted_message_id"] = str(rec.source_message_id)
    if followup_of is not None:
        md["original_response_message_id"] = str(followup_of)
    return md


async def _read_body(request: web.Request, state: DiscordState) -> tuple[Any, list[JSON]]:
    """The JSON body (or ``payload_json`` of a multipart upload) and the uploaded files (their bytes kept in
    ``state.uploads`` by url)."""
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        payload = json.loads(str(form["payload_json"])) if "payload_json" in form else {}
        files: list[JSON] = []
        for key, value in form.items():
            if isinstance(value, web.FileField):
                data = value.file.read()
                size = len(data)
                attachment_id = state.new_id()
                url = f"http://127.0.0.1/attachments/{attachment_id}/{value.filename}"
                state.uploads[url] = data
                files.append(
                    {
                        "id": str(attachment_id),
                        "filename": value.filename,
                        "size": size,
                        "url": url,
                        "proxy_url": url,
                        "content_type": value.content_type,
                        "field": key,
                    }
                )
        return payload, files
    if not request.can_read_body:
        return None, []
    raw = await request.read()
    try:
        return json.loads(raw), []
    except ValueError:
        return raw.decode(errors="replace"), []
