"""The Matrix adapter: circles in Matrix rooms, encrypted or not, on matrix-nio.

People type ``!circle COMMAND`` in a room; the bot answers with ``m.notice`` messages, and
says private things (consent receipts, help, refusals) in a direct room with the person.

Delivery is exactly once across restarts and faults:

- Sync runs in one task (the *producer*): nio decrypts and tracks room state there. The
  responses go, one at a time, to a *consumer* that acts on each command and only then
  checkpoints that response's ``next_batch`` in our database (nio's own ``store_sync_tokens``
  saves it before any handler has run). A restart syncs again from the checkpoint. The
  producer polls again once the consumer is done, or as soon as the consumer waits for
  something only a later sync brings (a new direct room).
- A command's event id is kept in the same transaction as the change it made, and is
  checked before acting: a command seen again is not acted on again. What the bot says about
  a change is kept in the outbox with it, and every line is sent with a transaction id made
  from the event it answers, so a resend after a crash appears once.
- When a sync comes back ``limited`` (more arrived than the timeline holds, e.g. while the
  bot was down), the gap back to the checkpoint is fetched with ``/messages`` first.
- Events that cannot be decrypted yet are held (their ids kept across restarts) and tried
  again after every sync, once their session has arrived (the sender's client shares it late,
  e.g. after it learns of the bot's device); the key is also requested from the bot's other
  devices, which nio asks. Never acted on as garbage; given up after 24 hours.
- A private line with a file (``mydata``, a coordinator's ``export``) goes to the person's
  direct room: the file is uploaded first (encrypted when that room is), then the text and an
  ``m.file`` event follow, the file's transaction id made from the line's key too. Neither ever
  goes to the circle's room.
- Connection errors and 5xx answers back off (exponential with jitter, capped); a 429
  (``M_LIMIT_EXCEEDED``) waits for its ``Retry-After`` (or ``retry_after_ms``), a bounded
  number of times; ``M_UNKNOWN_TOKEN`` stops the bot with a clear message.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import aiohttp
from nio import (
    AsyncClient,
    ErrorResponse,
    InviteMemberEvent,
    MatrixRoom,
    MegolmEvent,
    RoomCreateError,
    RoomCreateEvent,
    RoomGetEventResponse,
    RoomMemberEvent,
    RoomMessagesError,
    RoomMessageText,
    RoomPreset,
    SyncError,
    SyncResponse,
    UploadResponse,
)
from nio.event_builders import EnableEncryptionBuilder
from nio.exceptions import EncryptionError, LocalProtocolError

from adapters.matrix.commands import command_text
from adapters.matrix.content import PLATFORM, clean_name, file_message, member_id, notice, transaction_id, user_of
from adapters.matrix.login import MatrixLoginError, open_client
from facilitator.config import MATRIX_USER, GroupConfig, MatrixConfig
from facilitator.engine.events import Leave
from facilitator.front import handle_command
from facilitator.runtime.host import Runtime
from facilitator.voice import Attachment, Line

log = logging.getLogger(__name__)

R = TypeVar("R")

SYNC_TIMEOUT_MS = 30_000
GIVE_UP_DECRYPTING = 24 * 3600.0
MAX_RETRY_AFTER = 300.0


def hints(prefix: str) -> dict[str, str]:
    """The platform words in the bot's lines, with the configured command prefix."""
    return {
        "join_hint": f"type {prefix} join",
        "consent_hint": f"type {prefix} consent",
        "command_prefix": f"{prefix} ",
    }


class MatrixAdapter:
    """Carries circles in the Matrix rooms the bot is invited to."""

    platform = PLATFORM
    durable = True

    def __init__(
        self,
        config: MatrixConfig,
        group_of: Callable[[str], GroupConfig | None] = lambda room: None,
        *,
        open_session: Callable[[MatrixConfig], Awaitable[AsyncClient]] = open_client,
    ) -> None:
        self.config = config
        self.group_of = group_of
        self._open_session = open_session
        self.client: AsyncClient | None = None
        self.runtime: Runtime | None = None
        self.failed: asyncio.Future[BaseException] | None = None
        """Done with the reason if the adapter had to stop (``facilitator serve`` exits with it)."""
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # Unbounded on purpose: a command waiting for a direct room to appear needs the producer to
        # go on syncing while the consumer is busy (each response is small; the checkpoint stays
        # with the consumer, so nothing is lost if the process dies with responses queued).
        self._responses: asyncio.Queue[tuple[SyncResponse, str | None]] = asyncio.Queue()
        self._may_sync = asyncio.Event()
        """Set when the consumer has acted on the last response, or waits on a later sync."""
        self._seen: set[str] = set()
        self._held: dict[str, tuple[str, MegolmEvent, float]] = {}
        self._direct: dict[str, str] = {}
        """Person -> the direct room for their private lines."""
        self._is_direct: dict[str, bool] = {}
        """Room -> whether it is a one-to-one room with the bot (no circle meets there)."""
        self._direct_lock = asyncio.Lock()
        self._rooms_changed = asyncio.Event()
        self._creators: dict[str, frozenset[str]] = {}
        """Per room (version 12 and later): its creators, who outrank every power level."""
        self.syncs = 0

    # ------------------------------------------------------------------ lifecycle

    async def connect(self, runtime: Runtime) -> None:
        self.runtime = runtime
        runtime.hints.setdefault(PLATFORM, hints(self.config.command_prefix))
        self.failed = asyncio.get_running_loop().create_future()
        self.client = await self._open_session(self.config)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._guard(self._produce())), loop.create_task(self._guard(self._consume()))]

    async def disconnect(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        self._tasks = []
        if self.client is not None:
            await self.client.close()

    async def wait_ready(self) -> None:
        """Until the first sync has been handled (tests and ``serve`` use it)."""
        await self._ready.wait()

    async def _guard(self, work: Awaitable[None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the adapter cannot carry on: serve stops, saying why
            if not isinstance(error, MatrixLoginError):
                log.exception("the Matrix adapter stopped")
            if self.failed is not None and not self.failed.done():
                self.failed.set_result(error)

    @property
    def _client(self) -> AsyncClient:
        assert self.client is not None, "connect first"
        return self.client

    @property
    def _runtime(self) -> Runtime:
        assert self.runtime is not None, "connect first"
        return self.runtime

    def _key(self, name: str) -> str:
        return f"{PLATFORM}:{self.config.user_id}:{name}"

    async def _db(self, fn: Callable[..., R], *args: Any) -> R:
        return await self._runtime.writer.call(fn, *args)

    # ------------------------------------------------------------------ calling the homeserver

    def _backoff(self, attempt: int) -> float:
        ceiling = float(min(self.config.max_backoff_seconds, 0.5 * 2 ** min(attempt - 1, 20)))
        return ceiling * random.uniform(0.5, 1.0)

    async def _call(self, what: str, request: Callable[[], Awaitable[R]]) -> R:
        """``request()``, again after connection errors and 5xx (backing off) and after 429s
        (waiting as told, a bounded number of times). ``M_UNKNOWN_TOKEN`` stops the adapter."""
        failures = limited = 0
        while True:
            try:
                response = await request()
            except (aiohttp.ClientError, TimeoutError, OSError) as error:
                failures += 1
                wait = self._backoff(failures)
                log.warning("%s: homeserver unreachable (%s); trying again in %.1f s", what, error, wait)
                await asyncio.sleep(wait)
                continue
            if not isinstance(response, ErrorResponse):
                return response
            status = getattr(getattr(response, "transport_response", None), "status", 0) or 0
            if response.status_code == "M_UNKNOWN_TOKEN":
                raise MatrixLoginError(
                    f"the homeserver refused the bot's access token during {what} (M_UNKNOWN_TOKEN): the device was "
                    f"logged out. Delete {self.config.store_dir / 'credentials.json'} and the crypto store there, set "
                    f"{self.config.password_env}, and start again to log in as a new device."
                )
            if response.status_code == "M_LIMIT_EXCEEDED" or status == 429:
                limited += 1
                if limited > self.config.rate_limit_retries:
                    log.warning("%s: still rate-limited after %d tries; giving up on it", what, limited - 1)
                    return response
                told = _retry_after(response)
                wait = self._backoff(limited) if told is None else told
                log.warning("%s: rate-limited; waiting %.1f s as the homeserver asks", what, wait)
                await asyncio.sleep(wait)
                continue
            if status >= 500:
                failures += 1
                wait = self._backoff(failures)
                log.warning("%s: homeserver error %s; trying again in %.1f s", what, status, wait)
                await asyncio.sleep(wait)
                continue
            return response

    # ------------------------------------------------------------------ sync: producer

    async def _produce(self) -> None:
        client = self._client
        since = await self._db(self._runtime.store.get_value, self._key("sync"))
        await self._restore_held()
        first = True
        failures = 0
        while True:
            full_state = True if first and since else None
            timeout = 0 if first else SYNC_TIMEOUT_MS
            response = await self._call(
                "sync",
                lambda: client.sync(timeout=timeout, since=since, full_state=full_state),  # noqa: B023
            )
            if isinstance(response, SyncError):
                failures += 1
                wait = self._backoff(failures)
                log.warning("sync failed (%s %s); trying again in %.1f s", response.status_code, response.message, wait)
                await asyncio.sleep(wait)
                continue
            failures = 0
            self.syncs += 1
            self._note_creators(response)
            await self._keys_housekeeping()
            self._rooms_changed.set()
            self._ready.set()  # nio knows the rooms now: lines can be sent (and encrypted)
            self._may_sync.clear()
            await self._responses.put((response, since if not first or since else None))
            since = response.next_batch
            first = False
            # As nio's sync_forever does, answer first and only then poll again: the homeserver
            # then has one long poll fewer to wake when the reply is stored (measured in
            # bench/matrix_latency.py). A consumer that needs a later sync lets it go on at once.
            await self._may_sync.wait()

    def _note_creators(self, response: SyncResponse) -> None:
        """Remember each room's creators: from room version 12 they have unlimited power, and
        the power-level event no longer lists them (nio does not know this yet)."""
        for room_id, info in response.rooms.join.items():
            for event in [*info.state, *info.timeline.events]:
                if isinstance(event, RoomCreateEvent) and _creators_outrank(event.room_version):
                    extra = event.source.get("content", {}).get("additional_creators", [])
                    self._creators[room_id] = frozenset([event.sender, *(u for u in extra if isinstance(u, str))])

    def power_level(self, room: MatrixRoom, user_id: str) -> int:
        """``user_id``'s power level in ``room`` (a room-12 creator counts as above any level)."""
        if user_id in self._creators.get(room.room_id, ()):
            return 1_000_000
        return int(room.power_levels.get_user_level(user_id))

    async def _keys_housekeeping(self) -> None:
        """What nio's sync_forever does between syncs: upload, query and claim keys, send to-device."""
        client = self._client
        if client.should_upload_keys:
            await self._call("keys upload", client.keys_upload)
        if client.should_query_keys:
            await self._call("keys query", client.keys_query)
        if client.should_claim_keys:
            users = client.get_users_for_key_claiming()
            await self._call("keys claim", lambda: client.keys_claim(users))
        if client.outgoing_to_device_messages:
            await self._call("to-device", client.send_to_device_messages)

    # ------------------------------------------------------------------ sync: consumer

    async def _consume(self) -> None:
        store = self._runtime.store
        while True:
            response, since = await self._responses.get()
            log.debug("handling sync %s (rooms: %d)", response.next_batch, len(response.rooms.join))
            await self._invites(response)
            if since is not None:  # the very first sync of a new bot is history: nothing in it is acted on
                for room_id, info in response.rooms.join.items():
                    for event in await self._timeline(room_id, info, since):
                        await self._event(room_id, event)
            await self._retry_held()
            # Only now is this response handled: checkpoint it (and the events still held).
            values = {self._key("sync"): response.next_batch, self._key("held"): self._held_json()}
            await self._db(store.set_values, values)
            if self._responses.empty():
                self._may_sync.set()

    async def _timeline(self, room_id: str, info: Any, since: str) -> list[Any]:
        """The room's new events in order; a ``limited`` timeline is completed back to ``since``."""
        events = list(info.timeline.events)
        if info.timeline.limited and info.timeline.prev_batch:
            earlier: list[Any] = []
            start: str | None = info.timeline.prev_batch
            while start:
                page = await self._call(
                    "fill gap",
                    lambda: self._client.room_messages(room_id, start=start or "", end=since, limit=100),  # noqa: B023
                )
                if isinstance(page, (RoomMessagesError, ErrorResponse)) or not page.chunk:
                    break
                earlier.extend(page.chunk)
                start = page.end if page.end and page.end != start else None
            known = {e.event_id for e in events}
            events = [e for e in reversed(earlier) if e.event_id not in known] + events
        # Nothing from before the bot joined is acted on (a room's history arrives with the join).
        me = self._client.user_id
        for index in range(len(events) - 1, -1, -1):
            event = events[index]
            if (
                isinstance(event, RoomMemberEvent)
                and event.state_key == me
                and event.membership == "join"
                and event.prev_membership != "join"
            ):
                return events[index + 1 :]
        return events

    async def _event(self, room_id: str, event: Any) -> None:
        if isinstance(event, MegolmEvent):
            await self._hold(room_id, event)
            return
        if isinstance(event, RoomMemberEvent):
            if self._left_a_circle(room_id, event):
                await self._once(event.event_id, self._leave(room_id, event))
            if self._left_alone(room_id, event) and not await self._direct_with_bot(room_id):
                await self._leave_room(room_id, "the last person left a room with no circle")
            return
        if not isinstance(event, RoomMessageText) or event.sender == self._client.user_id:
            return  # notices (other bots), media, state and our own words are never commands
        text = command_text(event.body, event.source.get("content", {}), self.config.command_prefix)
        if text is None:
            return
        log.info("command %r from %s in %s (%s)", text.split(" ", 1)[0][:20], event.sender, room_id, event.event_id)
        await self._once(event.event_id, self._command(room_id, event.sender, text, event.event_id))

    async def _once(self, event_id: str, work: Coroutine[Any, Any, object]) -> None:
        """``work`` for the event ``event_id``, unless it was acted on before (in this run or an earlier one)."""
        if event_id in self._seen or await self._runtime.handled(PLATFORM, event_id):
            work.close()
            self._seen.add(event_id)
            return
        try:
            await work
        except Exception:  # one bad event must not stop the room: it is logged and counted as seen
            log.exception("event %s failed", event_id)
        self._seen.add(event_id)
        if len(self._seen) > 50_000:
            self._seen.clear()  # the database remembers; this only saves lookups

    def _left_a_circle(self, room_id: str, event: RoomMemberEvent) -> bool:
        """Whether ``event`` is someone in this room's circle leaving the room (or being removed)."""
        if event.membership not in ("leave", "ban") or event.prev_membership not in ("join", "invite"):
            return False
        hosted = self._runtime.circle_in(PLATFORM, room_id)
        person = hosted.circle.state.participants.get(member_id(event.state_key)) if hosted is not None else None
        return person is not None and person.state != "left"

    def _left_alone(self, room_id: str, event: RoomMemberEvent) -> bool:
        """Whether ``event`` is someone leaving (or refusing to join) a room that no circle uses and
        where only the bot is left now (no one joined or invited)."""
        me = self._client.user_id
        if event.membership not in ("leave", "ban") or event.state_key == me:
            return False
        room = self._client.rooms.get(room_id)
        return room is not None and set(room.users) == {me} and self._no_circle_in(room_id)

    def _no_circle_in(self, room_id: str) -> bool:
        """Whether ``room_id`` is no configured circle room and has no circle open in it."""
        return self.group_of(room_id) is None and self._runtime.circle_in(PLATFORM, room_id) is None

    async def _leave_room(self, room_id: str, why: str) -> None:
        """Leave ``room_id`` and forget it, so the bot's account no longer holds what was said there."""
        client = self._client
        for what, request in (("leave", client.room_leave), ("forget", client.room_forget)):
            done = await self._call(f"{what} a room", lambda: request(room_id))  # noqa: B023
            if isinstance(done, ErrorResponse):
                log.warning("could not %s the room %s: %s", what, room_id, done.message)
                return
        log.info("left and forgot %s (%s)", room_id, why)

    async def _leave(self, room_id: str, event: RoomMemberEvent) -> None:
        """Someone who leaves the room leaves its circle too: the piece moves on without them."""
        log.info("%s left %s: they leave its circle too", event.state_key, room_id)
        await self._runtime.submit(PLATFORM, room_id, Leave(member_id(event.state_key)), source=event.event_id)

    async def _command(self, room_id: str, sender: str, text: str, event_id: str) -> None:
        room = self._client.rooms.get(room_id)
        name = clean_name(room.user_name(sender) or sender) if room is not None else clean_name(sender)
        group = self.group_of(room_id)
        level = self.config.steer_level if group is None or group.steer_level is None else group.steer_level
        may_steer = room is not None and self.power_level(room, sender) >= level
        steer_needs = self._runtime.voice.say("steer_needs.matrix", level=level)  # said if they may not
        direct = await self._direct_with_bot(room_id) and (room is None or len(room.users) <= 2)
        await handle_command(
            self._runtime,
            PLATFORM,
            room_id,
            member_id(sender),
            name,
            text,
            resolve=lambda person: self._resolve(room, person),
            group=group.info() if group is not None else None,
            may_steer=may_steer,
            steer_needs=steer_needs,
            source=event_id,
            direct=direct,
        )

    async def _direct_with_bot(self, room_id: str) -> bool:
        """Whether ``room_id`` was made as a direct room with the bot (one it opened, or was invited
        to as one). While anyone else is in it too, it is treated as an ordinary room."""
        known = self._is_direct.get(room_id)
        if known is None:
            known = await self._db(self._runtime.store.get_value, self._key(f"dm-room:{room_id}")) is not None
            self._is_direct[room_id] = known
        return known

    async def _remember_direct(self, room_id: str, user_id: str, *, theirs: bool) -> None:
        """Keep ``room_id`` as a direct room with ``user_id``. Private lines go only to a room the bot
        opened itself: one a person opened may have (or later get) other people in it."""
        values = {self._key(f"dm-room:{room_id}"): user_id}
        if not theirs:
            values[self._key(f"dm:{user_id}")] = room_id
            self._direct[user_id] = room_id
        await self._db(self._runtime.store.set_values, values)
        self._is_direct[room_id] = True

    def _resolve(self, room: MatrixRoom | None, person: str) -> str:
        """A person named in a command (``@alice:example.org``, or a display name) as a member id."""
        wanted = person.strip()
        if MATRIX_USER.match(wanted):
            return member_id(wanted)
        if room is not None:
            plain = wanted.removeprefix("@").casefold()
            found = [uid for uid, user in room.users.items() if (user.display_name or "").casefold() == plain]
            if len(found) == 1:
                return member_id(found[0])
        return member_id(wanted)

    async def _invites(self, response: SyncResponse) -> None:
        client = self._client
        for room_id, info in response.rooms.invite.items():
            invite = next(
                (
                    e
                    for e in info.invite_state
                    if isinstance(e, InviteMemberEvent) and e.state_key == client.user_id and e.membership == "invite"
                ),
                None,
            )
            inviter = invite.sender if invite is not None else ""
            if self.config.may_invite(inviter):
                log.info("joining %s (invited by %s)", room_id, inviter)
                await self._call("join", lambda: client.join(room_id))  # noqa: B023
                if invite is not None and invite.content.get("is_direct") is True:
                    await self._remember_direct(room_id, inviter, theirs=True)
            else:
                log.warning("refusing the invite to %s from %s: not in allowed_inviters", room_id, inviter)
                await self._call("reject invite", lambda: client.room_leave(room_id))  # noqa: B023

    # ------------------------------------------------------------------ undecryptable events

    async def _hold(self, room_id: str, event: MegolmEvent) -> None:
        if event.event_id in self._held:
            return
        log.info("holding %s in %s until its keys arrive", event.event_id, room_id)
        self._held[event.event_id] = (room_id, event, self._runtime.clock.now())
        with contextlib.suppress(LocalProtocolError):  # already asked for this session's keys
            await self._call("key request", lambda: self._client.request_room_key(event))

    async def _retry_held(self) -> None:
        now = self._runtime.clock.now()
        olm = self._client.olm
        for event_id, (room_id, event, since) in list(self._held.items()):
            decrypted = None
            # Only once its session has arrived (nio would log a warning per held event per sync).
            if olm is not None and olm.inbound_group_store.get(room_id, event.sender_key, event.session_id):
                with contextlib.suppress(EncryptionError):
                    decrypted = self._client.decrypt_event(event)
            if decrypted is not None and not isinstance(decrypted, MegolmEvent):
                del self._held[event_id]
                await self._event(room_id, decrypted)
            elif now - since > GIVE_UP_DECRYPTING:
                del self._held[event_id]
                log.warning("gave up on %s in %s: its keys never arrived", event_id, room_id)

    def _held_json(self) -> str:
        return json.dumps([[room, event_id, since] for event_id, (room, _, since) in self._held.items()])

    async def _restore_held(self) -> None:
        raw = await self._db(self._runtime.store.get_value, self._key("held"))
        for room_id, event_id, since in json.loads(raw or "[]"):
            got = await self._call("fetch held event", lambda: self._client.room_get_event(room_id, event_id))  # noqa: B023
            if isinstance(got, RoomGetEventResponse) and isinstance(got.event, MegolmEvent):
                self._held[event_id] = (room_id, got.event, since)

    # ------------------------------------------------------------------ sending

    async def send(self, room: str, lines: Sequence[Line]) -> None:
        await self._ready.wait()
        for line in lines:
            if line.to is None and line.attachment is not None:
                log.warning("a line for room %s came with a file; the file is not sent there", room)
                line = replace(line, attachment=None)
            target = room if line.to is None else await self._direct_room(user_of(line.to))
            if target is None:
                continue
            if line.attachment is None:
                await self._send_notice(target, line)
                continue
            file = await self._upload(target, line.attachment)  # first: if it fails, nothing promises a file
            await self._send_notice(target, line)
            await self._send_file(target, line, file)

    async def _upload(self, room_id: str, attachment: Attachment) -> dict[str, Any]:
        """Upload ``attachment`` for ``room_id`` (encrypted if the room is): the ``url`` (plain) or
        ``file`` (encrypted) part of its ``m.file`` content. Raises if the homeserver will not take it."""
        client = self._client
        joined = client.rooms.get(room_id)
        encrypt = joined.encrypted if joined is not None else True
        keys: dict[str, Any] = {}

        async def upload() -> Any:
            response, decryption = await client.upload(
                io.BytesIO(attachment.data),  # a fresh reader for every try
                content_type=attachment.mime,
                filename=attachment.name,
                encrypt=encrypt,
                filesize=len(attachment.data),
            )
            keys.clear()
            keys.update(decryption or {})
            return response

        uploaded = await self._call("upload", upload)
        if not isinstance(uploaded, UploadResponse):
            log.warning("could not upload %s for %s: %s", attachment.name, room_id, getattr(uploaded, "message", ""))
            raise MatrixSendError(f"the homeserver did not take the file {attachment.name}")
        if encrypt:
            return {"file": {**keys, "url": uploaded.content_uri}}
        return {"url": uploaded.content_uri}

    async def _send_file(self, room_id: str, line: Line, file: dict[str, Any]) -> None:
        assert line.attachment is not None
        client = self._client
        content = file_message(line.attachment, file)
        txn = transaction_id(line.key + ".file") if line.key else None
        response = await self._call(
            "send file",
            lambda: client.room_send(room_id, "m.room.message", content, tx_id=txn, ignore_unverified_devices=True),
        )
        if isinstance(response, ErrorResponse):
            log.warning("could not send a file in %s: %s %s", room_id, response.status_code, response.message)
            raise MatrixSendError(f"the homeserver did not take the file {line.attachment.name}")

    async def _send_notice(self, room_id: str, line: Line) -> None:
        client = self._client
        content = notice(line)
        txn = transaction_id(line.key) if line.key else None
        response = await self._call(
            "send",
            lambda: client.room_send(room_id, "m.room.message", content, tx_id=txn, ignore_unverified_devices=True),
        )
        if isinstance(response, ErrorResponse):
            log.warning("could not say a line in %s: %s %s", room_id, response.status_code, response.message)

    async def _direct_room(self, user_id: str) -> str | None:
        """The direct room with ``user_id`` for private lines, created (and kept) on first use."""
        async with self._direct_lock:
            key = self._key(f"dm:{user_id}")
            room_id = self._direct.get(user_id) or await self._db(self._runtime.store.get_value, key)
            created_now = not room_id
            if not room_id:
                initial = [EnableEncryptionBuilder().as_dict()] if self.config.encrypt_direct_rooms else []
                created = await self._call(
                    "create direct room",
                    lambda: self._client.room_create(
                        is_direct=True, invite=[user_id], preset=RoomPreset.trusted_private_chat, initial_state=initial
                    ),
                )
                if isinstance(created, (RoomCreateError, ErrorResponse)):
                    log.warning("could not open a direct room with %s: %s", user_id, created.message)
                    return None
                room_id = created.room_id
                await self._remember_direct(room_id, user_id, theirs=False)
            self._direct[user_id] = room_id
        if await self._known(room_id, user_id, new=created_now):
            return room_id
        # They left it: forget it and open a new one.
        log.info("%s has left their direct room %s; opening a new one", user_id, room_id)
        self._direct.pop(user_id, None)
        await self._db(self._runtime.store.set_values, {self._key(f"dm:{user_id}"): ""})
        return await self._direct_room(user_id)

    async def forget(self, member: str) -> None:
        """``forget me``: leave and forget the direct rooms held with them, so the bot's account no
        longer holds what it said to them there: every room where only they (joined) and the bot are
        and no circle meets (the one it opened for their private lines, any they opened with it; found
        from the rooms themselves, as the notes are gone by now). A room they are only invited to is
        kept: it may hold the answer to ``forget me`` itself, which they could not read if the bot
        left before they joined; with no note left it is used for nothing else, and the bot leaves it
        when they leave it (:meth:`_left_alone`). Their next private line opens a new room."""
        if not member.startswith(f"{PLATFORM}:"):
            return
        user_id = user_of(member)
        me = self._client.user_id
        async with self._direct_lock:
            self._direct.pop(user_id, None)
            theirs = [
                (room_id, user_id in room.invited_users)
                for room_id, room in self._client.rooms.items()
                if set(room.users) == {me, user_id} and self._no_circle_in(room_id)
            ]
            for room_id, invited in sorted(theirs):
                self._is_direct.pop(room_id, None)
                if invited:
                    log.info("kept a direct room until they join and leave it (forget me)")
                else:
                    await self._leave_room(room_id, "forget me")
            # A direct room they had left holds the bot alone, with its old lines to them: with its
            # note gone (the erasure deleted it), nothing will use it again.
            lone = [
                room_id
                for room_id, room in self._client.rooms.items()
                if set(room.users) == {me} and self._no_circle_in(room_id)
            ]
            for room_id in sorted(lone):
                if await self._db(self._runtime.store.get_value, self._key(f"dm-room:{room_id}")) is None:
                    self._is_direct.pop(room_id, None)
                    await self._leave_room(room_id, "forget me: a direct room they had left")

    async def _known(self, room_id: str, user_id: str, *, new: bool) -> bool:
        """Wait until a sync has told nio about ``room_id`` with ``user_id`` in it (invited or joined):
        a message encrypted before then would not be shared with them. (A sync can return a new
        room before all of its creation has happened, the invite included.) False for a room made
        earlier that nio knows without them in it: they have left."""
        while user_id not in getattr(self._client.rooms.get(room_id), "users", {}):
            if not new and room_id in self._client.rooms:
                return False
            self._rooms_changed.clear()
            self._may_sync.set()  # the room comes with a later sync: let the producer fetch it
            await self._rooms_changed.wait()
        return True


class MatrixSendError(Exception):
    """A file for someone could not be delivered (the runtime logs it; they may ask again)."""


def _creators_outrank(version: str) -> bool:
    """Room versions where creators have unlimited power (12 and the experimental "hydra" ones)."""
    return (version.isdigit() and int(version) >= 12) or "hydra" in version


def _retry_after(response: ErrorResponse) -> float | None:
    """Seconds to wait from a 429: the ``Retry-After`` header first, then ``retry_after_ms``."""
    transport = getattr(response, "transport_response", None)
    header = transport.headers.get("Retry-After") if transport is not None else None
    if header:
        with contextlib.suppress(ValueError):
            return min(MAX_RETRY_AFTER, max(0.0, float(header)))
    if response.retry_after_ms:
        return min(MAX_RETRY_AFTER, float(response.retry_after_ms) / 1000)
    return None
