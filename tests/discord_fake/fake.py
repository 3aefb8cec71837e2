"""``DiscordFake``: the guild, its people, the gateway and the REST API on one loopback port, and the
test-facing actions (``slash``, ``click``, …), observations and faults."""

from __future__ import annotations

import contextlib
import copy
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import yarl
from aiohttp import web

from tests.discord_fake.gateway import (
    HEARTBEAT,
    INTENT_DIRECT_MESSAGES,
    INTENT_GUILD_MEMBERS,
    INTENT_GUILD_MESSAGES,
    INTENT_GUILDS,
    INTENT_MESSAGE_CONTENT,
    INVALID_SESSION,
    RECONNECT,
    Gateway,
)
from tests.discord_fake.rest import API_PREFIX, ApiError, Fault, Rest, Stall, invalid_form
from tests.discord_fake.state import (
    BOT_DEFAULT,
    EPHEMERAL,
    EVERYONE_DEFAULT,
    JSON,
    LOADING,
    NOBODY,
    Callback,
    Channel,
    ChannelType,
    Edit,
    Guild,
    Interaction,
    InteractionType,
    InvalidAllowedMentions,
    Member,
    Message,
    Notifier,
    RestCall,
    Role,
    Snowflakes,
    Upload,
    User,
    compute_pings,
    iso_now,
    mention_text,
    number_components,
    walk_components,
)

T = TypeVar("T")

SEND_MESSAGE = "POST /channels/{channel_id}/messages"
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024

#: Application command option types (https://discord.com/developers/docs/interactions/application-commands).
SUB_COMMAND, SUB_COMMAND_GROUP, STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER = range(1, 11)


class CommandUnavailable(Exception):
    """The person could not run this command on Discord: it is not registered where they are, or
    they lack its ``default_member_permissions``, or it is not allowed in DMs."""


class DiscordFake:
    """A loopback Discord for one bot in one guild.

    Use as ``async with DiscordFake() as fake, fake.pointed_at():`` and start a real discord.py
    client with ``fake.token``. Everything waits on events (``wait_until``, ``response()``), never on
    timers; ``clock`` (monotonic seconds) only measures: pass a manual clock to make a reply late.
    """

    def __init__(
        self,
        *,
        token: str = "fake-bot-token",
        guild_name: str = "Circle Commons",
        bot_name: str = "Facilitator",
        bot_permissions: int = BOT_DEFAULT,
        everyone_permissions: int = EVERYONE_DEFAULT,
        privileged_intents: frozenset[str] = frozenset({"members", "message_content"}),
        heartbeat_interval_ms: int = 41_250,
        clock: Callable[[], float] = time.monotonic,
        response_deadline: float = 3.0,
        token_lifetime: float = 15 * 60.0,
        reject_late_responses: bool = False,
        nonce_window: float = 5 * 60.0,
    ) -> None:
        self.token = token
        self.privileged_intents = privileged_intents
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.clock = clock
        self.response_deadline = response_deadline
        self.token_lifetime = token_lifetime
        self.reject_late_responses = reject_late_responses
        self.nonce_window = nonce_window
        self.ids = Snowflakes()
        self.notifier = Notifier()
        self.port = 0
        self.joined_at = iso_now()

        self.application_id = self.ids.next()
        self.bot = User(self.application_id, bot_name, None, bot=True)
        owner = User(self.ids.next(), "owner", "Guild Owner")
        guild_id = self.ids.next()
        self.guild = Guild(guild_id, guild_name, owner.id)
        self.guild.roles[guild_id] = Role(guild_id, "@everyone", int(everyone_permissions), position=0)
        self._users: dict[int, User] = {self.bot.id: self.bot, owner.id: owner}
        self.guild.members[owner.id] = Member(owner, self.guild)
        bot_role = Role(self.ids.next(), bot_name, int(bot_permissions), position=1, managed=True)
        self.guild.roles[bot_role.id] = bot_role
        self.bot_member = Member(self.bot, self.guild, role_ids=[bot_role.id])
        self.guild.members[self.bot.id] = self.bot_member
        #: Without ``message_content`` limits in the app flags (both privileged intents allowed).
        self.application_flags = (1 << 15) | (1 << 19) | (1 << 23)

        self._channels: dict[int, Channel] = {}
        self._messages: dict[int, Message] = {}
        self._nonces: dict[tuple[int, str], Message] = {}
        self._commands: dict[int | None, dict[str, JSON]] = {}
        self.interactions: dict[int, Interaction] = {}
        self.callbacks: list[Callback] = []
        self.calls: list[RestCall] = []
        self.dms_closed: set[int] = set()
        self.identifies = 0
        self.resumes = 0
        self.command_syncs = 0
        self.nonce_hits = 0

        self.gateway = Gateway(self)
        self.rest = Rest(self)
        self._runner: web.AppRunner | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> DiscordFake:
        app = web.Application()
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/gateway-resume", self.gateway.handle)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self.rest.handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        return self

    async def stop(self) -> None:
        for stall in self.rest.stalls:
            stall.release()
        await self.gateway.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DiscordFake:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def gateway_url(self) -> yarl.URL:
        return yarl.URL(f"ws://127.0.0.1:{self.port}/gateway")

    @contextlib.contextmanager
    def pointed_at(self) -> Iterator[None]:
        """Point discord.py (process-wide) at this fake, and restore Discord's URLs afterwards."""
        with discord_py_pointed_at(self.api_base, self.gateway_url):
            yield

    # -- the guild and its people ---------------------------------------------------------------

    def add_role(self, name: str, permissions: int = 0, *, mentionable: bool = False) -> Role:
        role = Role(self.ids.next(), name, int(permissions), position=len(self.guild.roles), mentionable=mentionable)
        self.guild.roles[role.id] = role
        return role

    def add_member(
        self,
        username: str,
        *,
        display_name: str | None = None,
        nick: str | None = None,
        roles: Sequence[Role] = (),
    ) -> Member:
        """A new person in the guild. ``display_name`` (their global name) and ``nick`` may be any
        text at all, hostile included: Discord does not sanitise them."""
        user = User(self.ids.next(), username, display_name)
        self._users[user.id] = user
        member = Member(user, self.guild, nick=nick, role_ids=[r.id for r in roles])
        self.guild.members[user.id] = member
        return member

    async def announce_member(self, member: Member) -> None:
        """Dispatch GUILD_MEMBER_ADD for ``member`` (with the members intent), as when someone joins."""
        await self.gateway.dispatch(
            "GUILD_MEMBER_ADD", {**member.payload(), "guild_id": str(self.guild.id)}, intent=INTENT_GUILD_MEMBERS
        )

    @property
    def owner(self) -> Member:
        return self.guild.members[self.guild.owner_id]

    def channel(self, name: str) -> Channel:
        """The guild text channel called ``name``, created (before the bot connects, or announced
        with CHANNEL_CREATE when ``announce_channel`` is awaited) if there is none yet."""
        for channel in self.guild.channels.values():
            if channel.name == name:
                return channel
        channel = Channel(
            self.ids.next(), ChannelType.GUILD_TEXT, name, self.guild.id, position=len(self.guild.channels)
        )
        self.guild.channels[channel.id] = channel
        self._channels[channel.id] = channel
        return channel

    async def announce_channel(self, channel: Channel) -> None:
        await self.gateway.dispatch("CHANNEL_CREATE", channel.payload(), intent=INTENT_GUILDS)

    def dm_channel(self, who: User | Member) -> Channel:
        user = who.user if isinstance(who, Member) else who
        for channel in self._channels.values():
            if channel.type is ChannelType.DM and channel.recipient is not None and channel.recipient.id == user.id:
                return channel
        channel = Channel(self.ids.next(), ChannelType.DM, recipient=user)
        self._channels[channel.id] = channel
        return channel

    def close_dms(self, who: User | Member) -> None:
        """This person does not accept DMs from the bot: sending one answers 403, code 50007."""
        self.dms_closed.add(who.id)

    # -- observations ----------------------------------------------------------------------------

    def messages(self, channel: Channel | None = None, *, ephemeral: bool | None = None) -> list[Message]:
        """Messages in creation order (deleted ones too; see ``Message.deleted``), optionally only
        in ``channel``, and only ephemeral (True) or only public (False) ones."""
        return [
            m
            for m in self._messages.values()
            if (channel is None or m.channel_id == channel.id) and (ephemeral is None or m.ephemeral == ephemeral)
        ]

    def dms(self, who: User | Member) -> list[Message]:
        return self.messages(self.dm_channel(who))

    def message(self, message_id: int) -> Message:
        return self._messages[message_id]

    def edits(self, channel: Channel | None = None) -> list[tuple[Message, Edit]]:
        return [(m, e) for m in self.messages(channel) for e in m.edits]

    def rest_calls(self, route: str | None = None) -> list[RestCall]:
        """Requests that reached the fake, e.g. ``rest_calls("POST /channels/{channel_id}/messages")``."""
        return [c for c in self.calls if route is None or f"{c.method} {c.route}" == route]

    def commands(self, *, guild: bool = False) -> list[JSON]:
        """The application commands as registered (global, or the guild's)."""
        return list(self._commands.get(self.guild.id if guild else None, {}).values())

    async def wait_until(
        self, predicate: Callable[[], T | None], *, timeout: float = 10.0, what: str = "a condition"
    ) -> T:
        """Wait until ``predicate()`` is truthy (re-checked on every change the fake sees)."""
        return await self.notifier.wait_until(predicate, timeout=timeout, what=what)

    async def wait_for_message(
        self,
        predicate: Callable[[Message], bool] = lambda m: True,
        *,
        channel: Channel | None = None,
        timeout: float = 10.0,
        what: str = "a message",
    ) -> Message:
        """The first message (in ``channel``, if given) for which ``predicate`` holds."""
        return await self.wait_until(
            lambda: next((m for m in self.messages(channel) if predicate(m)), None), timeout=timeout, what=what
        )

    async def wait_ready(self, identifies: int = 1, *, timeout: float = 10.0) -> None:
        """Until the bot has identified ``identifies`` times in all and holds a live connection."""
        await self.wait_until(
            lambda: self.identifies >= identifies and self.gateway.live is not None,
            timeout=timeout,
            what=f"identify #{identifies}",
        )

    def _changed(self) -> None:
        self.notifier.notify()

    # -- faults ----------------------------------------------------------------------------------

    def rate_limit(
        self,
        route: str = SEND_MESSAGE,
        *,
        count: int = 1,
        retry_after: float = 0.05,
        channel: Channel | None = None,
        is_global: bool = False,
    ) -> Fault:
        """Answer the next ``count`` matching requests with 429 (discord.py waits ``retry_after`` and resends)."""
        fault = Fault(route, 429, count, retry_after, is_global, params=_params(channel))
        self.rest.faults.append(fault)
        return fault

    def server_error(
        self,
        route: str = SEND_MESSAGE,
        *,
        status: int = 500,
        count: int = 1,
        commit: bool = False,
        channel: Channel | None = None,
    ) -> Fault:
        """Answer the next ``count`` matching requests with ``status`` (500, 502, 503, 504).

        With ``commit=True`` the request takes effect before the error answer, the case that makes
        a resend dangerous (discord.py resends 500/502/504 by itself, after 1 s).
        """
        fault = Fault(route, status, count, commit=commit, params=_params(channel))
        self.rest.faults.append(fault)
        return fault

    def stall(self, route: str) -> Stall:
        """Hold every request on ``route`` until ``stall.release()``."""
        stall = Stall(route, self._changed)
        self.rest.stalls.append(stall)
        return stall

    async def send_reconnect(self) -> None:
        """Op 7 RECONNECT: the client should reconnect and RESUME."""
        await self.gateway.send_op(RECONNECT, None)

    async def invalidate_session(self, *, resumable: bool) -> None:
        """Op 9 INVALID_SESSION: resume if ``resumable``, else identify again (a new session)."""
        if not resumable and self.gateway.session is not None:
            self.gateway.session.resumable = False
        await self.gateway.send_op(INVALID_SESSION, resumable)

    async def close_gateway(self, code: int = 4000) -> None:
        """Close the live websocket with ``code`` (4000 lets the client resume; 4004 is a bad token)."""
        await self.gateway.close_live(code)

    async def request_heartbeat(self) -> None:
        """Op 1 from the server: the client must heartbeat at once."""
        await self.gateway.send_op(HEARTBEAT, None)

    @property
    def ack_heartbeats(self) -> bool:
        return self.gateway.ack_heartbeats

    @ack_heartbeats.setter
    def ack_heartbeats(self, value: bool) -> None:
        """False: a "zombie" gateway that stops acknowledging heartbeats (the client should reconnect)."""
        self.gateway.ack_heartbeats = value

    # -- what people do --------------------------------------------------------------------------

    async def slash(
        self,
        member: Member,
        channel: Channel | str,
        command: str,
        subcommand: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Interaction:
        """``member`` runs ``/command subcommand option:value …`` in ``channel``.

        ``subcommand`` may be ``"group sub"``. Options are typed by the registered schema (users as
        ``Member``/``User``, roles as ``Role``, channels as ``Channel``, or ids); an unknown or
        missing required option raises ``ValueError``, as Discord's client would not send it.
        """
        chan = self.channel(channel) if isinstance(channel, str) else channel
        schema = self._command_for(command, guild=True)
        self._check_member_may_use(member, schema)
        data = self._command_data(schema, subcommand, options or {}, focused=None)
        return await self._interact(InteractionType.APPLICATION_COMMAND, member.user, member, chan, data)

    async def dm_slash(
        self,
        who: User | Member,
        command: str,
        subcommand: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Interaction:
        """The same from a DM with the bot: no ``guild_id``, ``user`` instead of ``member``. Only global
        commands allowed in bot DMs (``contexts`` containing 1, or ``dm_permission`` not false) can be run."""
        user = who.user if isinstance(who, Member) else who
        schema = self._command_for(command, guild=False)
        contexts = schema.get("contexts")
        if (contexts is not None and 1 not in contexts) or (contexts is None and schema.get("dm_permission") is False):
            raise CommandUnavailable(f"/{command} is not available in DMs")
        data = self._command_data(schema, subcommand, options or {}, focused=None)
        return await self._interact(InteractionType.APPLICATION_COMMAND, user, None, self.dm_channel(user), data)

    async def autocomplete(
        self,
        member: Member,
        channel: Channel | str,
        command: str,
        subcommand: str | None,
        options: Mapping[str, Any],
        focused: str,
    ) -> Interaction:
        """``member`` is typing option ``focused`` (its partial text is ``options[focused]``)."""
        chan = self.channel(channel) if isinstance(channel, str) else channel
        schema = self._command_for(command, guild=True)
        data = self._command_data(schema, subcommand, options, focused=focused)
        return await self._interact(InteractionType.APPLICATION_COMMAND_AUTOCOMPLETE, member.user, member, chan, data)

    async def click(self, who: Member | User, message: Message | int, custom_id: str) -> Interaction:
        """``who`` presses the button ``custom_id`` on ``message`` (a message the bot posted)."""
        return await self._component(who, message, custom_id, None)

    async def select(
        self, who: Member | User, message: Message | int, custom_id: str, values: Sequence[str]
    ) -> Interaction:
        """``who`` picks ``values`` in the select menu ``custom_id`` on ``message``."""
        return await self._component(who, message, custom_id, list(values))

    async def submit_modal(self, who: Member | User, opened_by: Interaction, values: Mapping[str, str]) -> Interaction:
        """``who`` fills in and submits the modal the bot answered ``opened_by`` with (callback type 9)."""
        if opened_by.modal is None:
            raise ValueError("that interaction was not answered with a modal")
        modal = opened_by.modal
        components = [_submitted(c, values) for c in modal.get("components", [])]
        data = {"custom_id": modal["custom_id"], "components": components}
        member = who if isinstance(who, Member) else None
        user = who.user if isinstance(who, Member) else who
        return await self._interact(
            InteractionType.MODAL_SUBMIT, user, member, opened_by.channel, data, source=opened_by.source
        )

    async def say(self, member: Member | User, channel: Channel | str, content: str) -> Message:
        """A person posts ``content`` (MESSAGE_CREATE reaches the bot, content blanked without the
        message_content intent unless the bot is mentioned or it is a DM)."""
        chan = self.channel(channel) if isinstance(channel, str) else channel
        user = member.user if isinstance(member, Member) else member
        message = self._create_message(chan, user, {"content": content}, via="person")
        await self._dispatch_message_create(message)
        return message

    # -- helpers shared with rest.py -----------------------------------------------------------

    def _command_for(self, name: str, *, guild: bool) -> JSON:
        scopes: list[int | None] = [self.guild.id, None] if guild else [None]
        for scope in scopes:
            for command in self._commands.get(scope, {}).values():
                if command["name"] == name and command["type"] == 1:
                    return command
        known = sorted(c["name"] for scope in scopes for c in self._commands.get(scope, {}).values())
        raise CommandUnavailable(f"/{name} is not registered here (registered: {known})")

    def _check_member_may_use(self, member: Member, schema: JSON) -> None:
        required = schema.get("default_member_permissions")
        if required is None:
            return
        if int(required) & ~member.permissions:
            raise CommandUnavailable(f"{member.display_name!r} lacks the permissions /{schema['name']} requires")

    def _command_data(
        self, schema: JSON, subcommand: str | None, options: Mapping[str, Any], *, focused: str | None
    ) -> JSON:
        resolved: dict[str, dict[str, JSON]] = {}
        path = subcommand.split() if subcommand else []
        level: list[JSON] = schema.get("options") or []
        wrappers: list[JSON] = []
        for name in path:
            found = next(
                (o for o in level if o["name"] == name and o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP)), None
            )
            if found is None:
                raise ValueError(f"/{schema['name']} has no subcommand {name!r}")
            wrappers.append({"name": name, "type": found["type"], "options": []})
            level = found.get("options") or []
        if any(o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in level):
            raise ValueError(f"/{schema['name']} {subcommand or ''} needs a subcommand")
        leaves: list[JSON] = []
        for option in level:
            name = option["name"]
            if name not in options:
                if option.get("required") and focused is None:
                    raise ValueError(f"option {name!r} is required")
                continue
            if focused is not None:
                leaf: JSON = {"name": name, "type": option["type"], "value": str(options[name])}
                if name == focused:
                    leaf["focused"] = True
                leaves.append(leaf)
                continue
            leaves.append({"name": name, "type": option["type"], "value": self._typed(option, options[name], resolved)})
        unknown = set(options) - {o["name"] for o in level}
        if unknown:
            raise ValueError(f"unknown options {sorted(unknown)}")
        nested: list[JSON] = leaves
        for wrapper in reversed(wrappers):
            wrapper["options"] = nested
            nested = [wrapper]
        data: JSON = {"id": schema["id"], "name": schema["name"], "type": 1, "options": nested}
        if resolved:
            data["resolved"] = resolved
        if "guild_id" in schema:
            data["guild_id"] = schema["guild_id"]
        return data

    def _typed(self, option: JSON, value: Any, resolved: dict[str, dict[str, JSON]]) -> Any:
        kind = option["type"]
        if kind == STRING:
            text = str(value)
            if "max_length" in option and len(text) > option["max_length"]:
                raise ValueError(f"{option['name']!r} is longer than {option['max_length']}")
            typed: Any = text
        elif kind == INTEGER:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{option['name']!r} takes an integer")
            typed = value
        elif kind == NUMBER:
            typed = float(value)
        elif kind == BOOLEAN:
            typed = bool(value)
        elif (kind in (USER, MENTIONABLE) and isinstance(value, Member | User)) or kind == USER:
            member = value if isinstance(value, Member) else self.guild.members.get(_id(value))
            # Someone who is not in the guild is resolved as a user, without member data.
            outsider = value if isinstance(value, User) else None
            user = member.user if member is not None else outsider or self._users[_id(value)]
            resolved.setdefault("users", {})[str(user.id)] = user.payload()
            if member is not None:
                resolved.setdefault("members", {})[str(user.id)] = member.payload(
                    with_user=False, with_permissions=True
                )
            return str(user.id)
        elif kind in (ROLE, MENTIONABLE):
            role = self.guild.roles[_id(value)]
            resolved.setdefault("roles", {})[str(role.id)] = role.payload()
            return str(role.id)
        elif kind == CHANNEL:
            channel = self._channels[_id(value)]
            resolved.setdefault("channels", {})[str(channel.id)] = {
                **channel.payload(),
                "permissions": str(self.guild.permissions_of(self.bot_member)),
            }
            return str(channel.id)
        else:
            raise ValueError(f"option type {kind} is not faked")
        choices = option.get("choices")
        if choices and typed not in [c["value"] for c in choices]:
            raise ValueError(f"{typed!r} is not one of the choices for {option['name']!r}")
        low, high = option.get("min_value"), option.get("max_value")
        if (low is not None and typed < low) or (high is not None and typed > high):
            raise ValueError(f"{option['name']!r}={typed!r} is outside [{low}, {high}]")
        return typed

    async def _component(
        self, who: Member | User, message: Message | int, custom_id: str, values: list[str] | None
    ) -> Interaction:
        source = message if isinstance(message, Message) else self._messages[message]
        component = source.component(custom_id)
        if component is None:
            raise ValueError(f"message {source.id} has no component {custom_id!r} (it has {source.custom_ids()})")
        if component.get("disabled"):
            raise CommandUnavailable(f"{custom_id!r} is disabled")
        user = who.user if isinstance(who, Member) else who
        if source.ephemeral and source.interaction_user is not None and source.interaction_user.id != user.id:
            raise CommandUnavailable("only the person an ephemeral message was shown to can use it")
        data: JSON = {"custom_id": custom_id, "component_type": component["type"], "id": component.get("id")}
        if values is not None:
            data["values"] = values
        member = who if isinstance(who, Member) else None
        channel = self._channels[source.channel_id]
        return await self._interact(InteractionType.MESSAGE_COMPONENT, user, member, channel, data, source=source)

    async def _interact(
        self,
        kind: InteractionType,
        user: User,
        member: Member | None,
        channel: Channel,
        data: JSON,
        source: Message | None = None,
    ) -> Interaction:
        if self.gateway.session is None:
            raise RuntimeError("the bot has not identified on the gateway yet")
        interaction_id = self.ids.next()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(48)
        in_guild = channel.type is ChannelType.GUILD_TEXT
        payload: JSON = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": int(kind),
            "data": data,
            "token": token,
            "version": 1,
            "locale": "en-GB",
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
            "channel": channel.payload(),
            "channel_id": str(channel.id),
            "app_permissions": str(self.guild.permissions_of(self.bot_member) if in_guild else 0),
        }
        if in_guild:
            assert member is not None, "a guild interaction needs a member"
            payload["guild_id"] = str(self.guild.id)
            payload["guild"] = {"id": str(self.guild.id), "locale": "en-US", "features": []}
            payload["guild_locale"] = "en-US"
            payload["member"] = member.payload(with_permissions=True)
            payload["context"] = 0
            payload["authorizing_integration_owners"] = {"0": str(self.guild.id)}
        else:
            payload["user"] = user.payload()
            payload["context"] = 1
            payload["authorizing_integration_owners"] = {"0": "0"}
        if source is not None:
            payload["message"] = self._message_payload(source)
        interaction = Interaction(
            id=interaction_id,
            token=token,
            type=kind,
            user=user,
            member=member,
            channel=channel,
            payload=payload,
            dispatched_at=self.clock(),
            notifier=self.notifier,
            source=source,
        )
        self.interactions[interaction_id] = interaction
        await self.gateway.dispatch("INTERACTION_CREATE", payload)
        self._changed()
        return interaction

    def _member_of(self, user: User) -> Member | None:
        return self.guild.members.get(user.id)

    def _create_message(
        self,
        channel: Channel,
        author: User,
        body: JSON,
        *,
        via: str,
        interaction: Interaction | None = None,
        files: Sequence[Upload] = (),
    ) -> Message:
        content = str(body.get("content") or "")
        embeds = list(body.get("embeds") or [])
        components = number_components(copy.deepcopy(list(body.get("components") or [])))
        flags = int(body.get("flags") or 0)
        if len(content) > 2000:
            raise invalid_form("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
        _check_files(files)
        if via != "deferred" and not (content or embeds or components or files or body.get("sticker_ids")):
            raise ApiError(400, 50006, "Cannot send an empty message")
        in_guild = channel.type is ChannelType.GUILD_TEXT
        author_member = self._member_of(author) if in_guild else None
        reference = body.get("message_reference")
        replied: int | None = None
        if isinstance(reference, dict) and reference.get("message_id"):
            target = self._messages.get(int(reference["message_id"]))
            if target is None and reference.get("fail_if_not_exists", True):
                raise invalid_form("message_reference", "REPLIES_UNKNOWN_MESSAGE", "Unknown message")
            if target is not None and target.author.id != author.id:
                replied = target.author.id
        try:
            pings = compute_pings(
                mention_text(content, components, flags),
                body.get("allowed_mentions"),
                guild=self.guild if in_guild else None,
                known_users=self._users,
                author_permissions=self.guild.permissions_of(author_member) if author_member else 0,
                from_interaction=interaction is not None,
                replied_user=replied,
            )
        except InvalidAllowedMentions as error:
            raise invalid_form("allowed_mentions", "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE", str(error)) from None
        if flags & EPHEMERAL:
            pings = NOBODY
        nonce = body.get("nonce")
        message = Message(
            id=self.ids.next(),
            channel_id=channel.id,
            guild_id=self.guild.id if in_guild else None,
            author=author,
            content=content,
            embeds=embeds,
            components=components,
            flags=flags,
            allowed_mentions=body.get("allowed_mentions"),
            nonce=nonce,
            enforce_nonce=bool(body.get("enforce_nonce")),
            created_at=self.clock(),
            timestamp=iso_now(),
            via=via,
            pings=pings,
            mentioned=[self._users[u] for u in sorted(pings.users)],
            tts=bool(body.get("tts")),
            attachments=[f.attachment(self.ids.next()) for f in files],
            files=list(files),
            message_reference=reference if isinstance(reference, dict) else None,
        )
        if interaction is not None:
            message.interaction_id = interaction.id
            message.interaction_user = interaction.user
            message.interaction_type = int(interaction.type)
            message.interaction_name = str(interaction.payload["data"].get("name") or "") or None
            message.webhook_id = self.application_id
            message.application_id = self.application_id
        if nonce is not None and message.enforce_nonce:
            self._nonces[(author.id, str(nonce))] = message
        self._messages[message.id] = message
        if not message.ephemeral:
            channel.last_message_id = message.id
        self._changed()
        return message

    async def _edit_message(self, message: Message, fields: JSON, *, via: str, files: Sequence[Upload] = ()) -> Message:
        _check_files(files)
        if "content" in fields:
            content = str(fields["content"] or "")
            if len(content) > 2000:
                raise invalid_form("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
            message.content = content
        if "embeds" in fields:
            message.embeds = list(fields["embeds"] or [])
        if "components" in fields:
            message.components = number_components(copy.deepcopy(list(fields["components"] or [])))
        if "attachments" in fields or files:
            # ``attachments`` lists the ones to keep (by their ids); new files are added after them.
            listed = fields.get("attachments")
            keep = {str(a.get("id")) for a in listed or []} if listed is not None else None
            kept = [
                (a, f)
                for a, f in zip(message.attachments, message.files, strict=True)
                if keep is None or a["id"] in keep
            ]
            kept += [(f.attachment(self.ids.next()), f) for f in files]
            message.attachments = [a for a, _ in kept]
            message.files = [f for _, f in kept]
        if fields.get("flags") is not None:
            suppress = 1 << 2
            message.flags = (message.flags & ~suppress) | (int(fields["flags"]) & suppress)
        if fields.get("allowed_mentions") is not None:
            message.allowed_mentions = fields["allowed_mentions"]
        message.flags &= ~LOADING
        message.edited_timestamp = iso_now()
        message.edits.append(Edit(self.clock(), copy.deepcopy(fields), via))
        self._changed()
        if not message.ephemeral:
            data = self._message_payload(message)
            intent = INTENT_GUILD_MESSAGES if message.guild_id else INTENT_DIRECT_MESSAGES
            await self.gateway.dispatch("MESSAGE_UPDATE", data, intent=intent)
        return message

    async def _delete_message(self, message: Message) -> None:
        message.deleted = True
        self._changed()
        if not message.ephemeral:
            data: JSON = {"id": str(message.id), "channel_id": str(message.channel_id)}
            if message.guild_id:
                data["guild_id"] = str(message.guild_id)
            intent = INTENT_GUILD_MESSAGES if message.guild_id else INTENT_DIRECT_MESSAGES
            await self.gateway.dispatch("MESSAGE_DELETE", data, intent=intent)

    def _message_payload(self, message: Message) -> JSON:
        data = message.payload()
        if message.guild_id is not None:
            data["guild_id"] = str(message.guild_id)
        return data

    async def _dispatch_message_create(self, message: Message) -> None:
        data = self._message_payload(message)
        member = self._member_of(message.author) if message.guild_id else None
        if member is not None:
            data["member"] = member.payload(with_user=False)
        session = self.gateway.session
        may_read = (
            message.author.id == self.bot.id
            or message.guild_id is None
            or self.bot.id in message.pings.users
            or (session is not None and session.intents & INTENT_MESSAGE_CONTENT)
        )
        if not may_read:
            data.update(content="", embeds=[], components=[], attachments=[])
        intent = INTENT_GUILD_MESSAGES if message.guild_id else INTENT_DIRECT_MESSAGES
        await self.gateway.dispatch("MESSAGE_CREATE", data, intent=intent)


@contextlib.contextmanager
def discord_py_pointed_at(api_base: str, gateway_url: yarl.URL) -> Iterator[None]:
    """Set ``discord.http.Route.BASE`` and ``DiscordWebSocket.DEFAULT_GATEWAY`` (both class-level,
    so process-wide) and put Discord's own values back afterwards."""
    import discord.gateway
    import discord.http

    old_base = discord.http.Route.BASE
    old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway_url
    try:
        yield
    finally:
        discord.http.Route.BASE = old_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway


def _check_files(files: Sequence[Upload]) -> None:
    """Discord's limits on files: at most 10 per message, each within the upload size limit."""
    if len(files) > 10:
        raise invalid_form("files", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    if any(len(f.data) > ATTACHMENT_SIZE_LIMIT for f in files):
        raise ApiError(413, 40005, "Request entity too large")


def _params(channel: Channel | None) -> dict[str, str]:
    return {"channel_id": str(channel.id)} if channel is not None else {}


def _id(value: Any) -> int:
    if isinstance(value, Member | User | Role | Channel):
        return value.id
    return int(value)


def _submitted(component: JSON, values: Mapping[str, str]) -> JSON:
    """What a modal submit carries for one of the modal's components (rows, labels, text inputs)."""
    kind = component.get("type")
    out: JSON = {"type": kind, "id": component.get("id", 0)}
    if kind == 1:
        out["components"] = [_submitted(c, values) for c in component.get("components", [])]
    elif kind == 18 and isinstance(component.get("component"), dict):
        out["component"] = _submitted(component["component"], values)
    elif kind == 4:
        out["custom_id"] = component["custom_id"]
        out["value"] = values.get(component["custom_id"], component.get("value") or "")
    elif kind in (3, 5, 6, 7, 8):
        out["custom_id"] = component["custom_id"]
        raw = values.get(component["custom_id"], "")
        out["values"] = [raw] if raw else []
    return out


__all__ = ["CommandUnavailable", "DiscordFake", "discord_py_pointed_at", "walk_components"]
