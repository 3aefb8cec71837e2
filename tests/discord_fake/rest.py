"""The fake REST API under ``/api/v10``: the routes a bot built on discord.py uses, answered the way
Discord answers them (status codes, error bodies with Discord's codes, ``application/json`` exactly).

Every request is recorded as a ``RestCall`` (including the ones a fault answered), so a test can
show how often discord.py sent something. Fault injection and stalls are matched on the route
template, e.g. ``"POST /channels/{channel_id}/messages"``.
"""

from __future__ import annotations

import asyncio
import json
import math
import mimetypes
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

from tests.discord_fake.state import (
    ALLOWED_CALLBACKS,
    EPHEMERAL,
    JSON,
    LOADING,
    Callback,
    Channel,
    ChannelType,
    Interaction,
    Message,
    Perm,
    RestCall,
    Upload,
)

if TYPE_CHECKING:
    from tests.discord_fake.fake import DiscordFake

API_PREFIX = "/api/v10"


class ApiError(Exception):
    """An error answer in Discord's shape: ``{"message": ..., "code": ...}`` (and ``errors``)."""

    def __init__(self, status: int, code: int, message: str, errors: JSON | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status, self.code, self.message, self.errors = status, code, message, errors

    def body(self) -> JSON:
        body: JSON = {"message": self.message, "code": self.code}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


def unknown_message() -> ApiError:
    return ApiError(404, 10008, "Unknown Message")


def invalid_form(field_name: str, code: str, message: str) -> ApiError:
    return ApiError(400, 50035, "Invalid Form Body", {field_name: {"_errors": [{"code": code, "message": message}]}})


@dataclass
class Request:
    """A parsed request as a handler sees it."""

    method: str
    route: str
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    files: list[Upload]
    headers: dict[str, str]


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON-able, or None for 204

    @staticmethod
    def json(body: Any, status: int = 200) -> Reply:
        return Reply(status, body)


Handler = Callable[[Request], Awaitable[Reply]]


@dataclass
class Fault:
    """Answer the next ``count`` requests on ``route`` with ``status`` instead of the real answer.

    ``status=429`` answers as Discord's rate limiter does (JSON body with ``retry_after``, the
    ``Retry-After``, ``X-RateLimit-*`` and ``Via`` headers). A 5xx with ``commit=True`` carries out the
    request first and then fails the answer: the bot cannot tell whether the message was posted.
    """

    route: str
    status: int
    count: int = 1
    retry_after: float = 0.05
    is_global: bool = False
    commit: bool = False
    params: dict[str, str] = field(default_factory=dict)
    hits: int = 0

    def matches(self, request: Request) -> bool:
        if self.hits >= self.count or f"{request.method} {request.route}" != self.route:
            return False
        return all(request.params.get(k) == v for k, v in self.params.items())


class Stall:
    """Holds every request on ``route`` until ``release()``; ``await arrived()`` for the first one."""

    def __init__(self, route: str, notify: Callable[[], None]) -> None:
        self.route = route
        self.held = 0
        self._released = asyncio.Event()
        self._notify = notify
        self._arrival = asyncio.Event()

    async def hold(self) -> None:
        self.held += 1
        self._arrival.set()
        self._notify()
        await self._released.wait()

    async def arrived(self) -> None:
        await self._arrival.wait()

    def release(self) -> None:
        self._released.set()

    @property
    def released(self) -> bool:
        return self._released.is_set()


class Rest:
    """The HTTP side of the fake. Tests reach it through ``DiscordFake``."""

    def __init__(self, fake: DiscordFake) -> None:
        self.fake = fake
        self.faults: list[Fault] = []
        self.stalls: list[Stall] = []
        self._routes: list[tuple[str, str, re.Pattern[str], Handler, bool]] = []
        add = self._add
        add("GET", "/gateway", self.get_gateway, auth=False)
        add("GET", "/gateway/bot", self.get_gateway)
        add("GET", "/users/@me", self.get_me)
        add("GET", "/oauth2/applications/@me", self.get_application)
        add("GET", "/applications/@me", self.get_application)
        add("GET", "/applications/{application_id}/commands", self.get_commands)
        add("PUT", "/applications/{application_id}/commands", self.put_commands)
        add("GET", "/applications/{application_id}/guilds/{guild_id}/commands", self.get_commands)
        add("PUT", "/applications/{application_id}/guilds/{guild_id}/commands", self.put_commands)
        add("POST", "/interactions/{interaction_id}/{token}/callback", self.post_callback, auth=False)
        add("POST", "/webhooks/{application_id}/{token}", self.post_followup, auth=False)
        add("GET", "/webhooks/{application_id}/{token}/messages/{message_id}", self.get_webhook_message, auth=False)
        add("PATCH", "/webhooks/{application_id}/{token}/messages/{message_id}", self.patch_webhook_message, auth=False)
        add(
            "DELETE",
            "/webhooks/{application_id}/{token}/messages/{message_id}",
            self.delete_webhook_message,
            auth=False,
        )
        add("GET", "/channels/{channel_id}", self.get_channel)
        add("GET", "/channels/{channel_id}/messages", self.get_messages)
        add("POST", "/channels/{channel_id}/messages", self.post_message)
        add("GET", "/channels/{channel_id}/messages/{message_id}", self.get_message)
        add("PATCH", "/channels/{channel_id}/messages/{message_id}", self.patch_message)
        add("DELETE", "/channels/{channel_id}/messages/{message_id}", self.delete_message)
        add("POST", "/channels/{channel_id}/typing", self.post_typing)
        add("POST", "/users/@me/channels", self.post_dm_channel)
        add("GET", "/guilds/{guild_id}", self.get_guild)
        add("GET", "/guilds/{guild_id}/channels", self.get_guild_channels)
        add("GET", "/guilds/{guild_id}/members/{user_id}", self.get_member)

    def _add(self, method: str, template: str, handler: Handler, *, auth: bool = True) -> None:
        pattern = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template.replace("@", "@")) + "$")
        self._routes.append((method, template, pattern, handler, auth))

    def _match(self, method: str, path: str) -> tuple[str, re.Match[str], Handler, bool] | None:
        for route_method, template, pattern, handler, auth in self._routes:
            found = pattern.match(path)
            if route_method == method and found:
                return template, found, handler, auth
        return None

    # -- the aiohttp entry point ------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path[len(API_PREFIX) :]
        started = self.fake.clock()
        match = self._match(request.method, path)
        if match is None:
            self._record(request.method, "?", path, dict(request.query), None, 404, started, None)
            return _respond(404, {"message": "404: Not Found", "code": 0})
        template, found, handler, auth = match
        body, files = await _read_body(request)
        req = Request(
            request.method, template, found.groupdict(), dict(request.query), body, files, dict(request.headers)
        )
        if auth and request.headers.get("Authorization") != f"Bot {self.fake.token}":
            self._record(req.method, template, path, req.query, body, 401, started, None)
            return _respond(401, {"message": "401: Unauthorized", "code": 0})
        for stall in self.stalls:
            if stall.route == f"{req.method} {template}" and not stall.released:
                await stall.hold()
        fault = next((f for f in self.faults if f.matches(req)), None)
        if fault is not None:
            fault.hits += 1
            if fault.status == 429:
                self._record(req.method, template, path, req.query, body, 429, started, "429")
                return _rate_limited(fault)
            if fault.commit:
                await self._run(handler, req)
            self._record(req.method, template, path, req.query, body, fault.status, started, str(fault.status))
            return _server_error(fault.status)
        reply = await self._run(handler, req)
        self._record(req.method, template, path, req.query, body, reply.status, started, None)
        return _respond(reply.status, reply.body)

    async def _run(self, handler: Handler, req: Request) -> Reply:
        try:
            reply = await handler(req)
        except ApiError as error:
            reply = Reply(error.status, error.body())
        self.fake._changed()
        return reply

    def _record(
        self,
        method: str,
        route: str,
        path: str,
        query: dict[str, str],
        body: Any,
        status: int,
        at: float,
        fault: str | None,
    ) -> None:
        self.fake.calls.append(RestCall(method, route, path, query, body, status, at, fault))
        self.fake._changed()

    # -- gateway, identity, application commands ---------------------------------------------

    async def get_gateway(self, req: Request) -> Reply:
        url = f"ws://127.0.0.1:{self.fake.port}/gateway"
        if req.route.endswith("/bot"):
            limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
            return Reply.json({"url": url, "shards": 1, "session_start_limit": limit})
        return Reply.json({"url": url})

    async def get_me(self, req: Request) -> Reply:
        return Reply.json({**self.fake.bot.payload(), "verified": True, "mfa_enabled": False, "email": None})

    async def get_application(self, req: Request) -> Reply:
        owner = self.fake.guild.members[self.fake.guild.owner_id].user
        return Reply.json(
            {
                "id": str(self.fake.application_id),
                "name": self.fake.bot.username,
                "icon": None,
                "description": "",
                "summary": "",
                "type": None,
                "bot_public": False,
                "bot_require_code_grant": False,
                "owner": owner.payload(),
                "team": None,
                "verify_key": "0" * 64,
                "flags": self.fake.application_flags,
                "bot": self.fake.bot.payload(),
                "redirect_uris": [],
                "interactions_endpoint_url": None,
                "install_params": None,
                "integration_types_config": {"0": {}},
            }
        )

    def _check_app(self, req: Request) -> None:
        if req.params.get("application_id") != str(self.fake.application_id):
            raise ApiError(403, 50001, "Missing Access")

    async def get_commands(self, req: Request) -> Reply:
        self._check_app(req)
        guild = req.params.get("guild_id")
        return Reply.json(list(self.fake._commands.get(int(guild) if guild else None, {}).values()))

    async def put_commands(self, req: Request) -> Reply:
        """Bulk overwrite: commands keep their id when name and type match, as on Discord."""
        self._check_app(req)
        guild_param = req.params.get("guild_id")
        guild = int(guild_param) if guild_param else None
        if guild is not None and guild != self.fake.guild.id:
            raise ApiError(403, 50001, "Missing Access")
        if not isinstance(req.body, list):
            raise invalid_form("_errors", "MODEL_TYPE_CONVERT", "Only iterables may be used in a ListType")
        old = self.fake._commands.get(guild, {})
        new: dict[str, JSON] = {}
        for raw in req.body:
            kind = int(raw.get("type", 1))
            key = f"{kind}:{raw['name']}"
            previous = old.get(key)
            command = {
                "id": previous["id"] if previous else str(self.fake.ids.next()),
                "application_id": str(self.fake.application_id),
                "version": str(self.fake.ids.next()),
                "type": kind,
                "name": raw["name"],
                "description": raw.get("description", ""),
                "options": raw.get("options", []),
                "default_member_permissions": raw.get("default_member_permissions"),
                "dm_permission": raw.get("dm_permission", True),
                "contexts": raw.get("contexts"),
                "integration_types": raw.get("integration_types", [0]),
                "nsfw": raw.get("nsfw", False),
                "name_localizations": raw.get("name_localizations"),
                "description_localizations": raw.get("description_localizations"),
            }
            if guild is not None:
                command["guild_id"] = str(guild)
            new[key] = command
        self.fake._commands[guild] = new
        self.fake.command_syncs += 1
        return Reply.json(list(new.values()))

    # -- interactions -------------------------------------------------------------------------

    async def post_callback(self, req: Request) -> Reply:
        fake = self.fake
        inter = fake.interactions.get(int(req.params["interaction_id"]))
        if inter is None or inter.token != req.params["token"]:
            raise ApiError(404, 10062, "Unknown interaction")
        now = fake.clock()
        latency = now - inter.dispatched_at
        body = req.body if isinstance(req.body, dict) else {}
        kind = int(body.get("type", 0))
        data = dict(body.get("data") or {})
        late = latency > fake.response_deadline

        def record(accepted: bool, status: int, code: int | None = None) -> Callback:
            cb = Callback(inter.id, kind, data, now, latency, late, accepted, status, code)
            fake.callbacks.append(cb)
            if accepted:
                inter.callback = cb
            else:
                inter.rejected.append(cb)
            return cb

        if inter.callback is not None:
            record(False, 400, 40060)
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        if latency > fake.token_lifetime or (late and fake.reject_late_responses):
            record(False, 404, 10062)
            raise ApiError(404, 10062, "Unknown interaction")
        if kind not in ALLOWED_CALLBACKS.get(inter.type, frozenset()):
            record(False, 400, 50035)
            raise invalid_form("type", "INTERACTION_RESPONSE_TYPE_INVALID", "Interaction response type is invalid")
        message: Message | None = None
        if kind == 4:
            message = fake._create_message(
                inter.channel, fake.bot, data, via="interaction_response", interaction=inter, files=req.files
            )
            inter.original = message
        elif kind == 5:
            loading = {"content": "", "flags": LOADING | (int(data.get("flags") or 0) & EPHEMERAL)}
            message = fake._create_message(inter.channel, fake.bot, loading, via="deferred", interaction=inter)
            inter.original = message
        elif kind in (6, 7):
            if inter.source is None:
                record(False, 400, 50035)
                raise invalid_form("type", "INTERACTION_RESPONSE_TYPE_INVALID", "No message to update")
            inter.original = inter.source
            if kind == 7:
                message = await fake._edit_message(inter.source, data, via="update_message", files=req.files)
        elif kind == 8:
            inter.choices = list(data.get("choices") or [])
        elif kind == 9:
            inter.modal = data
        record(True, 200 if _truthy(req.query.get("with_response")) else 204)
        if message is not None and kind in (4, 5) and not message.ephemeral:
            await fake._dispatch_message_create(message)
        if not _truthy(req.query.get("with_response")):
            return Reply(204)
        shown = inter.original
        callback_interaction: JSON = {"id": str(inter.id), "type": int(inter.type)}
        if kind in (4, 5, 7) and shown is not None:
            callback_interaction["response_message_id"] = str(shown.id)
            callback_interaction["response_message_loading"] = kind == 5
            callback_interaction["response_message_ephemeral"] = shown.ephemeral
        resource: JSON = {"type": kind}
        if kind in (4, 7) and shown is not None:
            resource["message"] = fake._message_payload(shown)
        return Reply.json({"interaction": callback_interaction, "resource": resource})

    def _webhook_interaction(self, req: Request) -> Interaction:
        fake = self.fake
        if req.params["application_id"] != str(fake.application_id):
            raise ApiError(404, 10015, "Unknown Webhook")
        inter = next((i for i in fake.interactions.values() if i.token == req.params["token"]), None)
        if inter is None or inter.callback is None:
            raise ApiError(404, 10015, "Unknown Webhook")
        if fake.clock() - inter.dispatched_at > fake.token_lifetime:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        return inter

    def _webhook_message(self, inter: Interaction, message_id: str) -> Message:
        if message_id == "@original":
            if inter.original is None or inter.original.deleted:
                raise unknown_message()
            return inter.original
        for message in [inter.original, *inter.followups]:
            if message is not None and str(message.id) == message_id and not message.deleted:
                return message
        raise unknown_message()

    async def post_followup(self, req: Request) -> Reply:
        fake = self.fake
        inter = self._webhook_interaction(req)
        body = req.body if isinstance(req.body, dict) else {}
        original = inter.original
        if original is not None and original.loading and inter.callback and inter.callback.type == 5:
            # Discord: the first followup after a deferred reply replaces the "thinking" message
            # (ephemeral or not as the defer said); like any edit, it notifies nobody.
            fields = {k: v for k, v in body.items() if k != "flags"}
            message = await fake._edit_message(original, fields, via="followup_fills_deferred", files=req.files)
        else:
            message = fake._create_message(
                inter.channel, fake.bot, body, via="followup", interaction=inter, files=req.files
            )
            if not message.ephemeral:
                await fake._dispatch_message_create(message)
        inter.followups.append(message)
        fake._changed()
        if not _truthy(req.query.get("wait")):
            return Reply(204)
        return Reply.json(fake._message_payload(message))

    async def get_webhook_message(self, req: Request) -> Reply:
        inter = self._webhook_interaction(req)
        return Reply.json(self.fake._message_payload(self._webhook_message(inter, req.params["message_id"])))

    async def patch_webhook_message(self, req: Request) -> Reply:
        inter = self._webhook_interaction(req)
        message = self._webhook_message(inter, req.params["message_id"])
        fields = req.body if isinstance(req.body, dict) else {}
        message = await self.fake._edit_message(message, fields, via="edit_original", files=req.files)
        return Reply.json(self.fake._message_payload(message))

    async def delete_webhook_message(self, req: Request) -> Reply:
        inter = self._webhook_interaction(req)
        await self.fake._delete_message(self._webhook_message(inter, req.params["message_id"]))
        return Reply(204)

    # -- channels and messages ----------------------------------------------------------------

    def _channel(self, req: Request) -> Channel:
        channel = self.fake._channels.get(int(req.params["channel_id"]))
        if channel is None:
            raise ApiError(404, 10003, "Unknown Channel")
        return channel

    def _message(self, channel: Channel, req: Request) -> Message:
        message = self.fake._messages.get(int(req.params["message_id"]))
        if message is None or message.channel_id != channel.id or message.deleted or message.ephemeral:
            raise unknown_message()
        return message

    async def get_channel(self, req: Request) -> Reply:
        return Reply.json(self._channel(req).payload())

    async def get_messages(self, req: Request) -> Reply:
        channel = self._channel(req)
        limit = int(req.query.get("limit", 50))
        found = [m for m in self.fake._messages.values() if m.channel_id == channel.id and not m.deleted]
        found = [m for m in found if not m.ephemeral]
        return Reply.json([self.fake._message_payload(m) for m in reversed(found)][:limit])

    async def post_message(self, req: Request) -> Reply:
        fake = self.fake
        channel = self._channel(req)
        if channel.type is ChannelType.GUILD_TEXT:
            bits = fake.guild.permissions_of(fake.bot_member)
            if not bits & Perm.VIEW_CHANNEL:
                raise ApiError(403, 50001, "Missing Access")
            if not bits & Perm.SEND_MESSAGES:
                raise ApiError(403, 50013, "Missing Permissions")
        elif channel.recipient is not None and channel.recipient.id in fake.dms_closed:
            raise ApiError(403, 50007, "Cannot send messages to this user")
        body = req.body if isinstance(req.body, dict) else {}
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce"):
            earlier = fake._nonces.get((fake.bot.id, str(nonce)))
            if earlier is not None and fake.clock() - earlier.created_at <= fake.nonce_window:
                if earlier.deleted:
                    raise unknown_message()
                fake.nonce_hits += 1
                return Reply.json(fake._message_payload(earlier))
        body = dict(body)
        body["flags"] = int(body.get("flags") or 0) & ~EPHEMERAL
        message = fake._create_message(channel, fake.bot, body, via="channel", files=req.files)
        await fake._dispatch_message_create(message)
        return Reply.json(fake._message_payload(message))

    async def get_message(self, req: Request) -> Reply:
        channel = self._channel(req)
        return Reply.json(self.fake._message_payload(self._message(channel, req)))

    async def patch_message(self, req: Request) -> Reply:
        channel = self._channel(req)
        message = self._message(channel, req)
        if message.author.id != self.fake.bot.id:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        fields = req.body if isinstance(req.body, dict) else {}
        message = await self.fake._edit_message(message, fields, via="channel_edit", files=req.files)
        return Reply.json(self.fake._message_payload(message))

    async def delete_message(self, req: Request) -> Reply:
        channel = self._channel(req)
        await self.fake._delete_message(self._message(channel, req))
        return Reply(204)

    async def post_typing(self, req: Request) -> Reply:
        self._channel(req)
        return Reply(204)

    async def post_dm_channel(self, req: Request) -> Reply:
        body = req.body if isinstance(req.body, dict) else {}
        user = self.fake._users.get(int(body.get("recipient_id", 0)))
        if user is None:
            raise invalid_form("recipient_id", "NUMBER_TYPE_COERCE", "Value is not a known user")
        return Reply.json(self.fake.dm_channel(user).payload())

    # -- guild --------------------------------------------------------------------------------

    def _guild(self, req: Request) -> None:
        if req.params["guild_id"] != str(self.fake.guild.id):
            raise ApiError(404, 10004, "Unknown Guild")

    async def get_guild(self, req: Request) -> Reply:
        self._guild(req)
        data = self.fake.guild.payload(joined_at=self.fake.joined_at)
        for key in ("members", "channels", "threads", "presences", "voice_states"):
            data.pop(key)
        return Reply.json(data)

    async def get_guild_channels(self, req: Request) -> Reply:
        self._guild(req)
        return Reply.json([c.payload() for c in self.fake.guild.channels.values()])

    async def get_member(self, req: Request) -> Reply:
        self._guild(req)
        member = self.fake.guild.members.get(int(req.params["user_id"]))
        if member is None:
            raise ApiError(404, 10007, "Unknown Member")
        return Reply.json(member.payload())


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true")


async def _read_body(request: web.Request) -> tuple[Any, list[Upload]]:
    """JSON bodies, or discord.py's multipart form (``payload_json`` plus ``files[n]``, kept in order)."""
    if not request.body_exists:
        return None, []
    if request.content_type == "multipart/form-data":
        body: Any = None
        files: list[Upload] = []
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            data = bytes(await part.read())
            if part.name == "payload_json":
                body = json.loads(data)
            else:
                name = part.filename or part.name or "file"
                # Discord shows the type its name implies (discord.py sends every file as octet-stream).
                kind = mimetypes.guess_type(name)[0] or part.headers.get("Content-Type")
                files.append(Upload(name, data, kind))
        return body, files
    raw = await request.read()
    if not raw:
        return None, []
    return json.loads(raw), []


def _respond(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    """A response whose Content-Type is exactly ``application/json``: discord.py compares the header
    verbatim, and with aiohttp's ``; charset=utf-8`` it would take the body for text."""
    all_headers = {
        "X-RateLimit-Limit": "50",
        "X-RateLimit-Remaining": "49",
        "X-RateLimit-Reset": f"{time.time() + 1:.3f}",
        "X-RateLimit-Reset-After": "1.000",
        "X-RateLimit-Bucket": "fake-bucket",
        "Via": "1.1 google",
        **(headers or {}),
    }
    if body is None:
        return web.Response(status=status, headers=all_headers)
    response = web.Response(status=status, body=json.dumps(body).encode(), headers=all_headers)
    response.headers["Content-Type"] = "application/json"
    return response


def _rate_limited(fault: Fault) -> web.Response:
    retry_after = fault.retry_after
    headers = {
        "Retry-After": str(max(1, math.ceil(retry_after))),
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
        "X-RateLimit-Reset-After": f"{retry_after:.3f}",
        "X-RateLimit-Bucket": "fake-bucket",
        "X-RateLimit-Scope": "global" if fault.is_global else "user",
    }
    if fault.is_global:
        headers["X-RateLimit-Global"] = "true"
    body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": fault.is_global}
    return _respond(429, body, headers)


def _server_error(status: int) -> web.Response:
    if status == 500:
        return _respond(500, {"message": "500: Internal Server Error", "code": 0})
    # 502/503/504 come from Cloudflare as an HTML page, not JSON.
    html = f"<html><head><title>{status}</title></head><body>{status} Bad Gateway</body></html>"
    return web.Response(status=status, text=html, content_type="text/html")
