"""The Discord adapter: circles in Discord channels, with ``/circle`` commands and buttons.

- **No privileged intents**: the bot reads no message content. Everything arrives as an
  interaction: a ``/circle`` subcommand, or a click on a button the bot posted.
- **Who may steer** is checked by the bot on every command: a member with one of the
  configured roles, or with the configured permission in that channel (``manage_channels`` by
  default), or an administrator. Commands in a direct message, or from a server the bot is not
  configured for, are answered politely and change nothing.
- **Answers within Discord's 3 seconds**: a command normally gets its answer as the interaction
  response (a private one is ephemeral). If the answer is not ready within
  :data:`DEFER_AFTER` (a slow database, say), the interaction is deferred first and the answer
  follows.
- **Private lines** (the consent text with its Consent button, receipts, help, refusals) go
  ephemeral to the person whose command they answer, or by direct message otherwise; never to
  the channel. A private line's file (``mydata``, a coordinator's ``export``) goes with its
  text, the same way: in the ephemeral answer (or followup, after a deferral), or in the direct
  message. A line for the channel never carries a file.
- **Pings**: ``AllowedMentions.none()`` for the whole client; a line that gives the piece allows
  only the holder's user mention. ``@everyone``, ``@here`` and role mentions in names or
  arguments ping nobody. Markdown is escaped.
- **Buttons** (Join, Join anonymously, Consent, Done, Pass) carry everything in their custom
  ids and are handled by a :class:`discord.ui.DynamicItem`: they keep working after a restart.
  Each has a typed command too. Done and Pass on a private line (the piece, told privately to
  someone attending anonymously, often by direct message) carry the circle's channel id, so
  they act in that circle wherever they are pressed.
- **Exactly once**: an interaction's id is kept with the change it made (the runtime's
  delivery ledger); lines posted to a channel carry a nonce made from their key with
  ``enforce_nonce``, so a POST that discord.py repeats after a 5xx, or a line the outbox sends
  again after a crash, appears once. ``on_ready`` may fire again after a reconnect: nothing is
  started there; commands are synced once, in ``setup_hook``, and only when they changed.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import discord
import discord.gateway
import discord.http
import yarl
from discord import app_commands

from adapters.discord.commands import CircleCommands
from adapters.discord.content import (
    PLATFORM,
    allowed_mentions,
    clean_name,
    member_id,
    nonce,
    split,
    text_of,
    user_of,
)
from facilitator.config import DiscordConfig, GroupConfig
from facilitator.exports.access import coordination
from facilitator.front import handle_command
from facilitator.runtime.host import Runtime
from facilitator.voice import Line

log = logging.getLogger(__name__)

DEFER_AFTER = 1.0
"""Seconds to wait for the answer before deferring (Discord allows 3 for the first response)."""

BUTTON_LABELS = {
    "join": ("Join", discord.ButtonStyle.primary),
    "join_anonymous": ("Join anonymously", discord.ButtonStyle.secondary),
    "consent": ("I consent", discord.ButtonStyle.success),
    "done": ("Done", discord.ButtonStyle.primary),
    "pass": ("Pass", discord.ButtonStyle.secondary),
}
BUTTON_COMMANDS = {
    "join": "join",
    "join_anonymous": "join anonymous",
    "consent": "consent",
    "done": "done",
    "pass": "pass",
}


ROOM_BUTTONS = frozenset({"done", "pass"})
"""Buttons that act in a circle: on a private line (a direct message, say) they carry the circle's
channel id, so they work wherever the line is shown (an anonymous holder is told privately)."""


def hints() -> dict[str, str]:
    """The platform words in the bot's lines."""
    return {
        "join_hint": "press Join, or type /circle join",
        "consent_hint": "press I consent, or type /circle consent",
        "command_prefix": "/circle ",
    }


class CircleButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"circle:(?P<action>[a-z_]+)(?::(?P<arg>[0-9a-f]{1,64}))?"
):
    """A shortcut button on a line; the custom id says what it does (``circle:consent:HASH``)."""

    def __init__(self, action: str, arg: str = "") -> None:
        label, style = BUTTON_LABELS[action]
        custom_id = f"circle:{action}:{arg}" if arg else f"circle:{action}"
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=custom_id))
        self.action, self.arg = action, arg

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> CircleButton:
        action = match["action"]
        if action not in BUTTON_LABELS:
            raise ValueError(f"not one of our buttons: {action}")
        return cls(action, match["arg"] or "")

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        adapter: DiscordAdapter = interaction.client.adapter
        if self.action in ROOM_BUTTONS:  # its argument, if any, is the circle's channel (see buttons_for)
            await adapter.command(interaction, BUTTON_COMMANDS[self.action], circle_room=self.arg or None)
            return
        await adapter.command(interaction, BUTTON_COMMANDS[self.action], consent_hash=self.arg or None)


def file_for(line: Line) -> discord.File | None:
    """The line's file as discord.py sends it (a new one each time: sending one closes it), or None."""
    if line.attachment is None:
        return None
    return discord.File(io.BytesIO(line.attachment.data), filename=line.attachment.name)


def _extras(line: Line, last: bool, circle_room: str | None = None) -> dict[str, Any]:
    """What goes with a part of a line: on its last part, its buttons and its file."""
    if not last:
        return {}
    extra: dict[str, Any] = {}
    view = buttons_for(line, circle_room)
    if view is not None:
        extra["view"] = view
    attached = file_for(line)
    if attached is not None:
        extra["file"] = attached
    return extra


def buttons_for(line: Line, circle_room: str | None = None) -> discord.ui.View | None:
    """The buttons a line offers (each has a typed command too), or None. On a private line,
    ``circle_room`` (the circle's channel id) goes into the Done and Pass buttons' ids."""
    if not line.offer:
        return None
    view = discord.ui.View(timeout=None)
    for offer in line.offer:
        action, _, arg = offer.partition(":")
        if action in ROOM_BUTTONS and not arg and line.to is not None and circle_room and circle_room.isdigit():
            arg = circle_room
        if action in BUTTON_LABELS:
            view.add_item(CircleButton(action, arg))
    return view if view.children else None


class _Tree(app_commands.CommandTree["_Client"]):
    async def on_error(self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError) -> None:
        """An error before our callback ran (an option Discord could not resolve, say): still answer."""
        log.warning("a /circle command could not run: %s", error)
        if not interaction.response.is_done():
            text = interaction.client.adapter.words("discord_command_error")
            await interaction.response.send_message(text, ephemeral=True)


class _Client(discord.Client):
    def __init__(self, adapter: DiscordAdapter, **options: Any) -> None:
        super().__init__(**options)
        self.adapter = adapter
        self.tree = _Tree(self)
        self.tree.add_command(CircleCommands())

    async def setup_hook(self) -> None:  # once per process, not on every reconnect
        self.add_dynamic_items(CircleButton)
        await self.adapter.sync_commands()

    async def on_ready(self) -> None:  # fires again after a reconnect: only note it
        self.adapter.note_ready()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        if self.adapter.identify_wait:  # Discord allows one IDENTIFY per 5 s; a test double need not wait
            await super().before_identify_hook(shard_id, initial=initial)


@dataclass
class _Pending:
    """An interaction being answered: the first private line to its sender is the response."""

    interaction: discord.Interaction[Any]
    by: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    said: bool = False
    lost: bool = False
    """A private line for the sender could not be delivered (they must not be told "Done.")."""


class DiscordAdapter:
    """Carries circles in the Discord channels of the configured servers."""

    platform = PLATFORM
    durable = True

    def __init__(
        self,
        config: DiscordConfig,
        group_of: Callable[[str], GroupConfig | None] = lambda room: None,
        *,
        client_options: Mapping[str, Any] | None = None,
        identify_wait: bool = True,
    ) -> None:
        self.config = config
        self.group_of = group_of
        self.client_options = dict(client_options or {})
        """Extra ``discord.Client`` options (tests pass a short ``guild_ready_timeout``)."""
        self.identify_wait = identify_wait
        self.runtime: Runtime | None = None
        self.client: _Client | None = None
        self.failed: asyncio.Future[BaseException] | None = None
        """Done with the reason if the adapter had to stop (``facilitator serve`` exits with it)."""
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pending: dict[str, _Pending] = {}
        self._dm_channels: dict[int, int] = {}
        self.readies = 0

    # ------------------------------------------------------------------ lifecycle

    async def connect(self, runtime: Runtime) -> None:
        self.runtime = runtime
        runtime.hints.setdefault(PLATFORM, hints())
        loop = asyncio.get_running_loop()
        self.failed = loop.create_future()
        if self.config.api_base:
            discord.http.Route.BASE = self.config.api_base.rstrip("/")
        if self.config.gateway:
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.config.gateway)
        intents = discord.Intents.none()
        intents.guilds = True  # channels and roles, to check who may steer; no message content
        self.client = _Client(
            self, intents=intents, allowed_mentions=discord.AllowedMentions.none(), **self.client_options
        )
        try:
            await self.client.login(self.config.token())
        except discord.LoginFailure as error:
            await self.client.close()
            raise DiscordLoginError(
                f"Discord refused the bot's token ({error}): copy a fresh one from the developer portal "
                f"(your application > Bot > Reset Token) into {self.config.token_env}"
            ) from None
        except (discord.HTTPException, OSError, aiohttp.ClientError) as error:
            await self.client.close()
            raise DiscordLoginError(f"could not sign in to Discord or register /circle there: {error}") from None
        self._task = loop.create_task(self._run())

    async def _run(self) -> None:
        assert self.client is not None
        try:
            await self.client.connect(reconnect=True)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.exception("the Discord adapter stopped")
            if self.failed is not None and not self.failed.done():
                self.failed.set_result(error)

    async def disconnect(self) -> None:
        if self.client is not None:
            await self.client.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def wait_ready(self) -> None:
        """Until the gateway is ready (tests and ``serve`` use it)."""
        await self._ready.wait()

    async def _until_ready_or_failed(self) -> None:
        """Wait for the gateway; raise if the adapter stopped first (so nothing waits forever)."""
        assert self.failed is not None, "connect first"
        ready: asyncio.Future[Any] = asyncio.ensure_future(self._ready.wait())
        failed: asyncio.Future[Any] = self.failed
        await asyncio.wait({ready, failed}, return_when=asyncio.FIRST_COMPLETED)
        if not self._ready.is_set():
            ready.cancel()
            raise RuntimeError(f"the Discord connection stopped: {self.failed.result()}")

    def note_ready(self) -> None:
        self.readies += 1
        self._ready.set()

    @property
    def _client(self) -> _Client:
        assert self.client is not None, "connect first"
        return self.client

    @property
    def _runtime(self) -> Runtime:
        assert self.runtime is not None, "connect first"
        return self.runtime

    async def sync_commands(self) -> None:
        """Register ``/circle`` with Discord, only when it differs from what was registered last
        (Discord limits how often commands may be registered)."""
        client = self._client
        schema = json.dumps([c.to_dict(client.tree) for c in client.tree.get_commands()], sort_keys=True)
        digest = hashlib.sha256(schema.encode()).hexdigest()
        key = f"{PLATFORM}:{client.application_id}:commands"
        store = self._runtime.store
        if await self._runtime.writer.call(store.get_value, key) == digest:
            return
        await client.tree.sync()
        await self._runtime.writer.call(store.set_values, {key: digest})

    def words(self, template: str, **params: object) -> str:
        return self._runtime.voice.say(template, **params)

    def script_names(self) -> list[str]:
        return self._runtime.library.names()

    def coordinated_groups(self, user: int) -> list[str]:
        """The groups this person coordinates (offered as they type ``/circle export group:``; only theirs)."""
        config = self._runtime.config
        return list(coordination(config, member_id(user)).names) if config is not None else []

    # ------------------------------------------------------------------ commands and buttons

    async def command(
        self,
        interaction: discord.Interaction[Any],
        text: str,
        *,
        consent_hash: str | None = None,
        circle_room: str | None = None,
    ) -> None:
        """Carry out ``text`` for the person behind ``interaction``, answering within Discord's window.
        ``circle_room``: the channel of the circle it is for, when that is not where it was sent
        (a Done button on a direct message)."""
        source = str(interaction.id)
        pending = _Pending(interaction, member_id(interaction.user.id))
        self._pending[source] = pending
        try:
            work = asyncio.ensure_future(self._carry_out(interaction, text, source, consent_hash, circle_room))
            done, _ = await asyncio.wait({work}, timeout=DEFER_AFTER)
            if not done:
                async with pending.lock:
                    if not interaction.response.is_done():
                        await self._defer(interaction)
            try:
                await work
            except Exception:  # one failed command must not leave the person with "did not respond"
                log.exception("the command %r (interaction %s) failed", text.split(" ", 1)[0], source)
                await self._runtime.say_private(
                    PLATFORM, str(interaction.channel_id), pending.by, "refused.storage_error", source=source
                )
            async with pending.lock:
                if pending.lost and not interaction.response.is_done():
                    await interaction.response.send_message(self.words("discord_not_shown"), ephemeral=True)
                elif not pending.said:
                    await self._acknowledge(interaction)
        finally:
            self._pending.pop(source, None)

    async def _carry_out(
        self,
        interaction: discord.Interaction[Any],
        text: str,
        source: str,
        consent_hash: str | None,
        circle_room: str | None = None,
    ) -> None:
        user = interaction.user
        by = member_id(user.id)
        room = circle_room or str(interaction.channel_id)
        if interaction.guild_id is not None and interaction.guild_id not in self.config.guilds:
            await self._runtime.say_private(PLATFORM, room, by, "discord_not_served", source=source)
            return
        if consent_hash is not None:
            hosted = self._runtime.circle_in(PLATFORM, room)
            if hosted is not None and hosted.circle.script.consent.text_hash != consent_hash:
                # The button was sent with another text than this circle asks for now.
                version = hosted.circle.script.consent.version
                await self._runtime.refuse(PLATFORM, room, by, "consent_changed", source=source, version=version)
                return
        group = self.group_of(room)
        await handle_command(
            self._runtime,
            PLATFORM,
            room,
            by,
            clean_name(getattr(user, "display_name", None) or user.name),
            text,
            group=group.info() if group is not None else None,
            may_steer=self._may_steer(interaction, group),
            steer_needs=self._steer_needs(interaction, group),
            source=source,
            direct=interaction.guild_id is None and circle_room is None,
        )

    def _may_steer(self, interaction: discord.Interaction[Any], group: GroupConfig | None) -> bool:
        """Roles and permissions, checked here on every command (never left to Discord's hints)."""
        member = interaction.user
        if interaction.guild_id is None or not isinstance(member, discord.Member):
            return False
        permissions = interaction.permissions
        if permissions.administrator or getattr(permissions, self.config.steer_permission, False):
            return True
        roles = self.config.steer_roles if group is None or group.steer_roles is None else group.steer_roles
        wanted = {r.casefold() for r in roles}
        return any(role.name.casefold() in wanted or str(role.id) in wanted for role in member.roles)

    def _steer_needs(self, interaction: discord.Interaction[Any], group: GroupConfig | None) -> str:
        """What :meth:`_may_steer` asks of a person, in words (for the refusal that says so)."""
        permission = self.config.steer_permission.replace("_", " ").title().replace("Guild", "Server")
        roles = self.config.steer_roles if group is None or group.steer_roles is None else group.steer_roles
        guild = interaction.guild
        known = {str(role.id): role.name for role in guild.roles} if guild is not None else {}
        names = [known.get(role, role) for role in roles]  # a role given by its id, by its name
        if not names:
            return self.words("steer_needs.discord", permission=permission)
        if len(names) == 1:
            return self.words("steer_needs.discord_role", role=names[0], permission=permission)
        return self.words("steer_needs.discord_roles", roles=", ".join(names), permission=permission)

    async def _defer(self, interaction: discord.Interaction[Any]) -> None:
        if interaction.type is discord.InteractionType.component:
            await interaction.response.defer()  # the button's message stays as it is
        else:
            await interaction.response.defer(ephemeral=True, thinking=True)

    async def _acknowledge(self, interaction: discord.Interaction[Any]) -> None:
        """An interaction every line of which went to the channel still needs its answer."""
        response = interaction.response
        if interaction.type is discord.InteractionType.component:
            if not response.is_done():
                await response.defer()
            return
        text = self._runtime.voice.say("discord_done")
        if not response.is_done():
            await response.send_message(text, ephemeral=True)
        else:
            await interaction.edit_original_response(content=text)

    # ------------------------------------------------------------------ sending

    async def send(self, room: str, lines: Sequence[Line]) -> None:
        if not self._ready.is_set():
            await self._until_ready_or_failed()
        failed: discord.HTTPException | None = None
        for line in lines:  # one line that fails does not hold back the others
            if line.to is None and line.attachment is not None:
                log.warning("a line for channel %s came with a file; the file is not posted there", room)
                line = replace(line, attachment=None)
            pending = self._pending.get(line.key.rsplit(".", 1)[0]) if line.key else None
            try:
                if line.to is not None and pending is not None and pending.by == line.to:
                    await self._reply_privately(pending, line, room)
                elif line.to is not None:
                    await self._direct_message(line.to, line, room)
                else:
                    await self._post(room, line)
            except discord.HTTPException as error:
                log.warning("a line for %s could not be sent: %s %s", room, error.status, error.text)
                failed = failed or error
                if pending is not None and line.to == pending.by:
                    pending.lost = True
        if failed is not None:
            raise failed  # the runtime keeps these lines, to send again (under the same keys) at the next start

    async def _reply_privately(self, pending: _Pending, line: Line, circle_room: str) -> None:
        interaction = pending.interaction
        parts = split(text_of(line))
        async with pending.lock:
            for index, part in enumerate(parts):
                extra = _extras(line, index == len(parts) - 1, circle_room)  # buttons and file after the text
                if not interaction.response.is_done():
                    await interaction.response.send_message(part, ephemeral=True, **extra)
                elif not pending.said and interaction.type is not discord.InteractionType.component:
                    # The deferred (ephemeral) "thinking" answer becomes this part.
                    attached = extra.pop("file", None)
                    if attached is not None:
                        extra["attachments"] = [attached]
                    await interaction.edit_original_response(content=part, **extra)
                else:
                    await interaction.followup.send(part, ephemeral=True, **extra)
                pending.said = True

    async def _post(self, room: str, line: Line, circle_room: str | None = None) -> None:
        channel = self._client.get_partial_messageable(int(room))
        parts = split(text_of(line))
        for index, part in enumerate(parts):
            extra = _extras(line, index == len(parts) - 1, circle_room)
            if line.key:
                extra["nonce"] = nonce(line.key, index)
            try:
                await channel.send(part, allowed_mentions=allowed_mentions(line), **extra)
            except discord.NotFound as error:  # the channel is gone (a repeated nonce returns the first message)
                log.warning("channel %s is gone; a line for it is dropped (%s)", room, error.text)
                return
            except discord.Forbidden as error:  # sending again will not help: say what to change
                log.warning(
                    "Discord refused a message in channel %s (%s): give the bot View Channel and Send Messages "
                    "there (a direct message: the person does not accept them from server members)",
                    room,
                    error.text,
                )
                return

    async def _direct_message(self, to: str, line: Line, circle_room: str) -> None:
        user = user_of(to)
        if user is None:
            return
        channel_id = self._dm_channels.get(user)
        if channel_id is None:
            try:
                data = await self._client.http.start_private_message(user)
            except discord.Forbidden as error:
                log.warning("cannot open a direct message with %s: %s", user, error.text)
                return
            channel_id = int(data["id"])
            self._dm_channels[user] = channel_id
        await self._post(str(channel_id), line, circle_room)


class DiscordLoginError(Exception):
    """Discord refused the token; the message says what to do."""
