"""What the fake Discord knows: the guild, its people and channels, messages, and how Discord
renders them as JSON (the exact payload shapes discord.py 2.7 parses).

Nothing here does I/O; ``gateway.py`` and ``rest.py`` read and change this state, and
``fake.py`` wraps it for tests.
"""

from __future__ import annotations

import asyncio
import datetime
import enum
import itertools
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

JSON = dict[str, Any]
T = TypeVar("T")

DISCORD_EPOCH_MS = 1_420_070_400_000

EPHEMERAL = 1 << 6
LOADING = 1 << 7
SUPPRESS_NOTIFICATIONS = 1 << 12
IS_COMPONENTS_V2 = 1 << 15


class Perm(enum.IntFlag):
    """Discord permission bits (https://discord.com/developers/docs/topics/permissions)."""

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    CHANGE_NICKNAME = 1 << 26
    MANAGE_ROLES = 1 << 28
    USE_APPLICATION_COMMANDS = 1 << 31
    CREATE_PUBLIC_THREADS = 1 << 35
    SEND_MESSAGES_IN_THREADS = 1 << 38
    MODERATE_MEMBERS = 1 << 40


ALL_PERMISSIONS = (1 << 51) - 1

#: What @everyone may do in a new guild (a usual subset of Discord's defaults).
EVERYONE_DEFAULT = (
    Perm.CREATE_INSTANT_INVITE
    | Perm.ADD_REACTIONS
    | Perm.VIEW_CHANNEL
    | Perm.SEND_MESSAGES
    | Perm.EMBED_LINKS
    | Perm.ATTACH_FILES
    | Perm.READ_MESSAGE_HISTORY
    | Perm.USE_EXTERNAL_EMOJIS
    | Perm.CHANGE_NICKNAME
    | Perm.USE_APPLICATION_COMMANDS
    | Perm.CREATE_PUBLIC_THREADS
    | Perm.SEND_MESSAGES_IN_THREADS
)

#: The bot's own managed role: a typical invite with "Mention @everyone" granted, so a test that a
#: message "pings nobody" is not passing merely because the bot could not have pinged anyone.
BOT_DEFAULT = (
    Perm.VIEW_CHANNEL
    | Perm.SEND_MESSAGES
    | Perm.EMBED_LINKS
    | Perm.ATTACH_FILES
    | Perm.READ_MESSAGE_HISTORY
    | Perm.MENTION_EVERYONE
    | Perm.ADD_REACTIONS
    | Perm.USE_APPLICATION_COMMANDS
    | Perm.SEND_MESSAGES_IN_THREADS
)


class Snowflakes:
    """Discord-style ids: milliseconds since 2015 in the high bits, a counter in the low ones."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
            return (ms << 22) | (next(self._counter) & 0x3FFFFF)


def iso_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


@dataclass
class User:
    """A Discord user: a person or the bot."""

    id: int
    username: str
    global_name: str | None = None
    bot: bool = False

    def payload(self) -> JSON:
        return {
            "id": str(self.id),
            "username": self.username,
            "global_name": self.global_name,
            "discriminator": "0",
            "avatar": None,
            "bot": self.bot,
            "system": False,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
            "primary_guild": None,
            "collectibles": None,
        }


@dataclass
class Role:
    """A guild role with its permission bits."""

    id: int
    name: str
    permissions: int
    position: int = 1
    mentionable: bool = False
    managed: bool = False

    def payload(self) -> JSON:
        return {
            "id": str(self.id),
            "name": self.name,
            "description": None,
            "permissions": str(int(self.permissions)),
            "position": self.position,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "managed": self.managed,
            "mentionable": self.mentionable,
            "flags": 0,
        }


@dataclass
class Member:
    """A guild member: a user, a server nickname and roles. ``display_name`` is what others see."""

    user: User
    guild: Guild
    nick: str | None = None
    role_ids: list[int] = field(default_factory=list)
    joined_at: str = field(default_factory=iso_now)

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def display_name(self) -> str:
        return self.nick or self.user.global_name or self.user.username

    @property
    def permissions(self) -> int:
        """Guild-level permissions: @everyone's, each role's, all of them for the owner or an admin."""
        return self.guild.permissions_of(self)

    def payload(self, *, with_user: bool = True, with_permissions: bool = False) -> JSON:
        data: JSON = {
            "roles": [str(r) for r in self.role_ids],
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
            "avatar_decoration_data": None,
        }
        if with_user:
            data["user"] = self.user.payload()
        if with_permissions:
            data["permissions"] = str(self.permissions)
        return data


class ChannelType(enum.IntEnum):
    GUILD_TEXT = 0
    DM = 1


@dataclass
class Channel:
    """A text channel in the guild, or a DM channel between the bot and one user."""

    id: int
    type: ChannelType
    name: str | None = None
    guild_id: int | None = None
    recipient: User | None = None
    position: int = 0
    last_message_id: int | None = None

    def payload(self) -> JSON:
        if self.type is ChannelType.DM:
            assert self.recipient is not None
            return {
                "id": str(self.id),
                "type": int(self.type),
                "last_message_id": str(self.last_message_id) if self.last_message_id else None,
                "recipients": [self.recipient.payload()],
                "flags": 0,
            }
        return {
            "id": str(self.id),
            "type": int(self.type),
            "guild_id": str(self.guild_id),
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
            "topic": None,
            "rate_limit_per_user": 0,
            "last_message_id": str(self.last_message_id) if self.last_message_id else None,
            "flags": 0,
        }


@dataclass
class Guild:
    """The one guild the bot is in."""

    id: int
    name: str
    owner_id: int
    roles: dict[int, Role] = field(default_factory=dict)
    members: dict[int, Member] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)

    @property
    def everyone(self) -> Role:
        return self.roles[self.id]

    def permissions_of(self, member: Member) -> int:
        if member.id == self.owner_id:
            return ALL_PERMISSIONS
        bits = int(self.everyone.permissions)
        for role_id in member.role_ids:
            bits |= int(self.roles[role_id].permissions)
        if bits & Perm.ADMINISTRATOR:
            return ALL_PERMISSIONS
        return bits

    def payload(self, *, joined_at: str) -> JSON:
        """The GUILD_CREATE payload: a full guild with its channels and members."""
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "roles": [r.payload() for r in self.roles.values()],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "incidents_data": None,
            "joined_at": joined_at,
            "large": False,
            "unavailable": False,
            "member_count": len(self.members),
            "voice_states": [],
            "members": [m.payload() for m in self.members.values()],
            "channels": [c.payload() for c in self.channels.values()],
            "threads": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "lazy": True,
        }


@dataclass(frozen=True)
class Pings:
    """Who a message notifies, as Discord decides it from content + allowed_mentions + permissions."""

    users: frozenset[int] = frozenset()
    roles: frozenset[int] = frozenset()
    everyone: bool = False
    here: bool = False

    @property
    def nobody(self) -> bool:
        return not (self.users or self.roles or self.everyone or self.here)


NOBODY = Pings()

_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")


class InvalidAllowedMentions(ValueError):
    """``parse`` and an explicit list name the same kind (Discord answers 400, code 50035)."""


def mention_text(content: str | None, components: Iterable[JSON], flags: int) -> str:
    """The text Discord scans for mentions: the content, and text displays of a Components V2 message."""
    parts = [content or ""]
    if flags & IS_COMPONENTS_V2:
        parts.extend(str(c.get("content", "")) for c in walk_components(components) if c.get("type") == 10)
    return "\n".join(parts)


def compute_pings(
    text: str,
    allowed_mentions: JSON | None,
    *,
    guild: Guild | None,
    known_users: dict[int, User],
    author_permissions: int,
    from_interaction: bool,
    replied_user: int | None = None,
) -> Pings:
    """Who a newly created message notifies (https://discord.com/developers/docs/resources/message,
    "Allowed Mentions Reference").

    - Without ``allowed_mentions`` everything in the text is parsed, except in interaction responses
      and followups, where only user mentions are.
    - ``parse`` and ``users``/``roles`` naming the same kind is a validation error.
    - Ids listed but not mentioned in the text ping nobody (no phantom pings).
    - @everyone/@here need "everyone" parsed and the author's MENTION_EVERYONE permission; a role
      pings if it is mentionable or the author has MENTION_EVERYONE.
    - A reply pings the replied-to author only with ``replied_user`` (true by default when no
      ``allowed_mentions`` is given).

    Mentions inside code blocks are treated like any others (stricter than Discord, never laxer).
    """
    if allowed_mentions is None:
        parse = {"users"} if from_interaction else {"users", "roles", "everyone"}
        listed_users: set[int] = set()
        listed_roles: set[int] = set()
        reply_pings = True
    else:
        parse = set(allowed_mentions.get("parse") or [])
        listed_users = {int(u) for u in allowed_mentions.get("users") or []}
        listed_roles = {int(r) for r in allowed_mentions.get("roles") or []}
        if ("users" in parse and listed_users) or ("roles" in parse and listed_roles):
            raise InvalidAllowedMentions("parse and users/roles are mutually exclusive")
        reply_pings = bool(allowed_mentions.get("replied_user", False))
    may_mention_everyone = bool(author_permissions & Perm.MENTION_EVERYONE)

    users = {
        uid
        for uid in (int(m) for m in _USER_MENTION.findall(text))
        if uid in known_users and ("users" in parse or uid in listed_users)
    }
    if replied_user is not None and reply_pings:
        users.add(replied_user)
    roles: set[int] = set()
    if guild is not None:
        for rid in (int(m) for m in _ROLE_MENTION.findall(text)):
            role = guild.roles.get(rid)
            if role is None or rid == guild.id:
                continue
            if ("roles" in parse or rid in listed_roles) and (role.mentionable or may_mention_everyone):
                roles.add(rid)
    everyone_ok = guild is not None and "everyone" in parse and may_mention_everyone
    return Pings(
        users=frozenset(users),
        roles=frozenset(roles),
        everyone=everyone_ok and "@everyone" in text,
        here=everyone_ok and "@here" in text,
    )


def walk_components(components: Iterable[JSON]) -> Iterator[JSON]:
    """Every component, depth first: action rows, sections, containers and what they hold."""
    for component in components:
        yield component
        yield from walk_components(component.get("components") or [])
        accessory = component.get("accessory")
        if isinstance(accessory, dict):
            yield accessory
        inner = component.get("component")
        if isinstance(inner, dict):
            yield from walk_components([inner])


def number_components(components: list[JSON]) -> list[JSON]:
    """Give each component the numeric ``id`` Discord assigns when the sender left it out."""
    used = {c["id"] for c in walk_components(components) if isinstance(c.get("id"), int)}
    counter = itertools.count(1)
    for component in walk_components(components):
        if "id" not in component:
            n = next(counter)
            while n in used:
                n = next(counter)
            component["id"] = n
    return components


@dataclass(frozen=True)
class Upload:
    """A file the bot sent (a ``files[n]`` part of discord.py's multipart form), bytes and all."""

    filename: str
    data: bytes
    content_type: str | None = None

    def attachment(self, attachment_id: int) -> JSON:
        """The attachment object Discord shows for it (with the CDN URLs discord.py requires)."""
        url = f"https://cdn.discordapp.invalid/attachments/{attachment_id}/{self.filename}"
        data: JSON = {
            "id": str(attachment_id),
            "filename": self.filename,
            "size": len(self.data),
            "url": url,
            "proxy_url": url,
        }
        if self.content_type:
            data["content_type"] = self.content_type
        return data


@dataclass
class Edit:
    """One change to a message: the fields sent, and when (the fake's clock)."""

    at: float
    fields: JSON
    via: str


@dataclass
class Message:
    """A message as the fake stores it, with everything a test may want to assert on.

    ``pings`` is decided once, at creation, as Discord does: an edit never notifies anyone, so a
    deferred reply filled in later by an edit pings nobody.
    """

    id: int
    channel_id: int
    guild_id: int | None
    author: User
    content: str
    embeds: list[JSON]
    components: list[JSON]
    flags: int
    allowed_mentions: JSON | None
    nonce: str | int | None
    enforce_nonce: bool
    created_at: float
    timestamp: str
    via: str
    pings: Pings
    mentioned: list[User] = field(default_factory=list)
    tts: bool = False
    attachments: list[JSON] = field(default_factory=list)
    files: list[Upload] = field(default_factory=list)
    """The bytes of ``attachments``, in the same order."""
    message_reference: JSON | None = None
    interaction_id: int | None = None
    interaction_user: User | None = None
    interaction_name: str | None = None
    interaction_type: int | None = None
    webhook_id: int | None = None
    application_id: int | None = None
    edits: list[Edit] = field(default_factory=list)
    edited_timestamp: str | None = None
    deleted: bool = False

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        """A deferred reply still showing "… is thinking"."""
        return bool(self.flags & LOADING)

    def file(self, filename: str) -> Upload | None:
        """The attached file called ``filename``, if any."""
        return next((f for f in self.files if f.filename == filename), None)

    def custom_ids(self) -> list[str]:
        return [c["custom_id"] for c in walk_components(self.components) if "custom_id" in c]

    def component(self, custom_id: str) -> JSON | None:
        return next((c for c in walk_components(self.components) if c.get("custom_id") == custom_id), None)

    def text(self) -> str:
        """Content, embed titles/descriptions/fields and text displays, for loose assertions."""
        parts = [self.content]
        for embed in self.embeds:
            parts += [str(embed.get("title", "")), str(embed.get("description", ""))]
            parts += [f"{f.get('name', '')} {f.get('value', '')}" for f in embed.get("fields", [])]
        parts += [str(c.get("content", "")) for c in walk_components(self.components) if c.get("type") == 10]
        return "\n".join(p for p in parts if p)

    def payload(self) -> JSON:
        """The message object Discord returns and dispatches (MESSAGE_CREATE without its extras)."""
        data: JSON = {
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "type": 20 if self.interaction_id and self.interaction_type == 2 else 0,
            "content": self.content,
            "author": self.author.payload(),
            "timestamp": self.timestamp,
            "edited_timestamp": self.edited_timestamp,
            "tts": self.tts,
            "mention_everyone": self.pings.everyone or self.pings.here,
            "mentions": [u.payload() for u in self.mentioned],
            "mention_roles": [str(r) for r in sorted(self.pings.roles)],
            "attachments": self.attachments,
            "embeds": self.embeds,
            "components": self.components,
            "pinned": False,
            "flags": self.flags,
        }
        if self.message_reference is not None:
            data["type"] = 19
            data["message_reference"] = self.message_reference
        if self.nonce is not None:
            data["nonce"] = self.nonce
        if self.webhook_id is not None:
            data["webhook_id"] = str(self.webhook_id)
        if self.application_id is not None:
            data["application_id"] = str(self.application_id)
        if self.interaction_id is not None and self.interaction_user is not None:
            data["interaction_metadata"] = {
                "id": str(self.interaction_id),
                "type": self.interaction_type,
                "user": self.interaction_user.payload(),
                "authorizing_integration_owners": {},
            }
            if self.interaction_name is not None:
                data["interaction_metadata"]["name"] = self.interaction_name
        return data


@dataclass
class RestCall:
    """One HTTP request that reached the fake, and how it was answered."""

    method: str
    route: str
    path: str
    query: dict[str, str]
    body: Any
    status: int
    at: float
    fault: str | None = None


class TimedOut(AssertionError):
    """A condition a test waited for never came true."""


class Notifier:
    """Wakes waiters whenever the fake's state changes, so tests wait on events, never on timers."""

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    def notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_until(self, predicate: Callable[[], T | None], *, timeout: float, what: str) -> T:
        """The first truthy value of ``predicate()``, re-checked after every change.

        ``timeout`` is only a safety net for a test that would otherwise hang: reaching it fails
        the test with ``what`` in the message.
        """
        try:
            async with asyncio.timeout(timeout):
                while True:
                    result = predicate()
                    if result:
                        return result
                    waiter = asyncio.get_running_loop().create_future()
                    self._waiters.append(waiter)
                    await waiter
        except TimeoutError:
            raise TimedOut(f"gave up after {timeout}s waiting for {what}") from None


@dataclass
class Callback:
    """One ``POST /interactions/{id}/{token}/callback`` and how the fake answered it.

    ``latency`` is from the INTERACTION_CREATE dispatch to the callback's arrival, on the fake's
    clock; ``late`` is Discord's 3-second rule (the person sees "The application did not respond").
    """

    interaction_id: int
    type: int
    data: JSON
    at: float
    latency: float
    late: bool
    accepted: bool
    status: int
    error_code: int | None = None

    @property
    def ephemeral(self) -> bool:
        return bool(int(self.data.get("flags") or 0) & EPHEMERAL)

    @property
    def content(self) -> str:
        return str(self.data.get("content") or "")


class InteractionType(enum.IntEnum):
    PING = 1
    APPLICATION_COMMAND = 2
    MESSAGE_COMPONENT = 3
    APPLICATION_COMMAND_AUTOCOMPLETE = 4
    MODAL_SUBMIT = 5


class CallbackType(enum.IntEnum):
    PONG = 1
    CHANNEL_MESSAGE_WITH_SOURCE = 4
    DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE = 5
    DEFERRED_UPDATE_MESSAGE = 6
    UPDATE_MESSAGE = 7
    APPLICATION_COMMAND_AUTOCOMPLETE_RESULT = 8
    MODAL = 9


#: Which callback types Discord accepts for each interaction type.
ALLOWED_CALLBACKS: dict[int, frozenset[int]] = {
    InteractionType.APPLICATION_COMMAND: frozenset({4, 5, 9}),
    InteractionType.MESSAGE_COMPONENT: frozenset({4, 5, 6, 7, 9}),
    InteractionType.APPLICATION_COMMAND_AUTOCOMPLETE: frozenset({8}),
    InteractionType.MODAL_SUBMIT: frozenset({4, 5, 6, 7}),
}


@dataclass
class Interaction:
    """One interaction the fake dispatched, and everything the bot did with it.

    This is the handle ``DiscordFake.slash``/``click``/… return: await ``response()`` for the
    initial callback, ``followup(n)`` for followups, ``wait_original(...)`` for the original
    response as it is edited.
    """

    id: int
    token: str
    type: InteractionType
    user: User
    member: Member | None
    channel: Channel
    payload: JSON
    dispatched_at: float
    notifier: Notifier = field(repr=False)
    source: Message | None = None
    callback: Callback | None = None
    rejected: list[Callback] = field(default_factory=list)
    original: Message | None = None
    followups: list[Message] = field(default_factory=list)
    modal: JSON | None = None
    choices: list[JSON] | None = None

    @property
    def name(self) -> str:
        return str(self.payload["data"].get("name") or self.payload["data"].get("custom_id"))

    async def response(self, *, timeout: float = 10.0) -> Callback:
        """The accepted initial callback (type 4, 5, 6, 7, 8 or 9), once it arrives."""
        return await self.notifier.wait_until(
            lambda: self.callback, timeout=timeout, what=f"the initial response to interaction {self.name!r}"
        )

    async def followup(self, index: int = 0, *, timeout: float = 10.0) -> Message:
        """The ``index``-th followup message (a first followup after a defer fills the original instead)."""
        return await self.notifier.wait_until(
            lambda: self.followups[index] if len(self.followups) > index else None,
            timeout=timeout,
            what=f"followup #{index} to interaction {self.name!r}",
        )

    async def wait_original(
        self, predicate: Callable[[Message], bool] = lambda m: not m.loading, *, timeout: float = 10.0
    ) -> Message:
        """The original response once ``predicate`` holds (by default: no longer "thinking")."""
        return await self.notifier.wait_until(
            lambda: self.original if self.original is not None and predicate(self.original) else None,
            timeout=timeout,
            what=f"the original response to interaction {self.name!r} to match",
        )
