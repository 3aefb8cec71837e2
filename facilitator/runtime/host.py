"""The runtime: one asyncio process hosting many circles, their timers and the adapters.

- Routing: a circle lives in a room (``platform``, ``room``); an adapter's event for a room
  goes to the circle open there, and the actions go back to the adapter that owns it.
- Timers: one scheduler for all circles, a heap of stored deadlines (lazily invalidated),
  not a task or a poll per circle. Deadlines are data: stored with each circle and re-armed
  at start, so a restart loses no timer.
- Persistence: every accepted event's new state and records go to the :class:`Writer` as
  one write; the actions are only sent once it is committed, so what people are told is
  never ahead of what is kept.
- Resume: :meth:`Runtime.start` restores every circle that has not ended and sends each
  event ``Recover``: missed deadlines are caught up in one step with one message.
- Exactly once, for adapters that say ``durable = True`` (their platform redelivers input and
  deduplicates sends by an id): an incoming message's platform id (``source``) is kept in the
  same transaction as the change it made, so it is never acted on twice; the lines that
  report a change are kept with it in an outbox and deleted once sent, so a crash between
  keeping and saying loses nothing (they are sent again at start, under the same keys).
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import logging
import random
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any

from facilitator.engine import actions as A
from facilitator.engine import events as E
from facilitator.engine.circle import Circle
from facilitator.engine.state import CircleStatus
from facilitator.prompts import BankError, resolve_prompt
from facilitator.runtime.adapter import Adapter, Forgets
from facilitator.runtime.clock import Clock, SystemClock
from facilitator.runtime.dblock import ProcessLock
from facilitator.runtime.library import LoadedScript, ScriptLibrary
from facilitator.runtime.writer import Writer
from facilitator.script.loader import ScriptError
from facilitator.script.models import OpenPhase, PromptRef, RoundPhase
from facilitator.storage.store import NewCircle, Outgoing, Store, Write
from facilitator.voice import Line, Voice

if TYPE_CHECKING:
    from facilitator.config import ServeConfig

log = logging.getLogger(__name__)

GC_THRESHOLD = 50_000
HANDLED_KEPT_FOR = 7 * 24 * 3600.0
STALE_AFTER = 600.0
"""Seconds after which a kept line to a room is not said at start any more: the catch-up says where
the circle is, and an old "the piece is with you" would mislead. Private lines are always said."""
"""How long a handled message id is kept: platforms redeliver within minutes or hours (from the
last sync checkpoint, a gateway resume), never a week later."""


def tune_gc() -> None:
    """Collect garbage less often once the host is up: a process holding thousands of circles
    otherwise spends a large share of every event in the collector (measured: about half the
    event loop's time at 1,000 circles). Long-lived objects made at start-up are frozen out of
    collection; reference counting still frees everything else at once."""
    gc.freeze()
    if gc.get_threshold()[0] < GC_THRESHOLD:
        gc.set_threshold(GC_THRESHOLD, 20, 100)


Observer = Callable[["Hosted", A.Action], None]


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """What a deployment says about a room: its name, region and sector."""

    name: str | None = None
    region: str | None = None
    sector: str | None = None
    timezone: str | None = None


@dataclass(eq=False)
class Hosted:
    """A circle as the runtime holds it: the engine and where it lives."""

    id: str
    circle: Circle
    group_id: int
    platform: str
    room: str
    armed: float | None = None
    committed: dict[str, Any] | None = None
    """The last state the database has: what a failed write rolls back to."""
    retry_at: float | None = None
    backoff: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Runtime:
    """Hosts circles for a list of adapters, over one store and one clock."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock | None = None,
        adapters: Sequence[Adapter] = (),
        voice: Voice | None = None,
        library: ScriptLibrary | None = None,
        hints: dict[str, dict[str, str]] | None = None,
        resume: bool = True,
        config: ServeConfig | None = None,
    ) -> None:
        self.store = store
        self.config = config
        """The serve configuration (coordinators, privacy), if the runtime serves one."""
        self.clock: Clock = clock or SystemClock()
        self.adapters = {a.platform: a for a in adapters}
        self._durable = frozenset(p for p, a in self.adapters.items() if getattr(a, "durable", False))
        """Platforms whose adapters deduplicate sends by key: only they get keyed lines and the outbox."""
        self.voice = voice or Voice.load()
        self.library = library or ScriptLibrary()
        self.hints = hints or {}
        self.writer = Writer(store)
        self.observers: list[Observer] = []
        self.lateness: list[float] | None = None
        self._circles: dict[str, Hosted] = {}
        self._rooms: dict[tuple[str, str], Hosted] = {}
        self._groups: dict[tuple[str, str], int] = {}
        self._heap: list[tuple[float, str]] = []
        self._wake = asyncio.Event()
        self._scheduler: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._opening: set[tuple[str, str]] = set()
        self._resume = resume
        self._lock = ProcessLock(store.url)
        self._handled: set[tuple[str, str]] = set()
        """Sources whose change is on its way to the database (it answers for them once kept)."""

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Take the database, resume its open circles, connect the adapters, send what was kept
        but not yet said, then start the scheduler."""
        self._lock.acquire()
        # What the previous process kept but may not have said, read before this one adds its own
        # (the catch-up after restoring keeps its lines in the outbox too, and says them itself).
        unsent = await self._unsent()
        recovering = await self._restore_all() if self._resume else []
        tune_gc()
        for adapter in self.adapters.values():
            await adapter.connect(self)
        await self._redeliver(unsent)
        if recovering:
            await asyncio.gather(*recovering)
        self._scheduler = asyncio.get_running_loop().create_task(self._run_scheduler())

    async def stop(self) -> None:
        """Stop taking input, then timers; everything accepted so far is committed and said first."""
        for adapter in self.adapters.values():
            await adapter.disconnect()
        if self._scheduler is not None:
            self._scheduler.cancel()
            await asyncio.wait([self._scheduler])
            self._scheduler = None
        await self.settle(run_timers=False)
        self.writer.close()
        self._lock.release()

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------ circles

    def circle_in(self, platform: str, room: str) -> Hosted | None:
        """The circle open in ``room``, if any."""
        return self._rooms.get((platform, room))

    @property
    def circles(self) -> list[Hosted]:
        """Every circle hosted now."""
        return list(self._circles.values())

    async def group_id(self, platform: str, room: str, info: GroupInfo | None = None) -> int:
        """The stored group for a room (created on first use)."""
        key = (platform, room)
        if key not in self._groups or info is not None:
            info = info or GroupInfo()
            self._groups[key] = await self.writer.call(
                self.store.ensure_group, platform, room, info.name, info.region, info.sector, info.timezone
            )
        return self._groups[key]

    async def open_circle(
        self,
        platform: str,
        room: str,
        script_name: str,
        by: str,
        by_name: str,
        *,
        group: GroupInfo | None = None,
        seed: int | None = None,
        source: str | None = None,
    ) -> A.Outcome:
        """Open a circle from a script in a room; refused if one is open there already."""
        key = (platform, room)
        there = self._rooms.get(key)
        if there is not None and there.circle.due(self.clock.now()):
            # Time first, as for any event: a circle whose idle close is due closes and frees the room.
            await self._start_run(there, E.Tick(), self.clock.now())
        if key in self._rooms or key in self._opening:
            return await self.refuse(platform, room, by, "already_open", source=source)
        try:
            loaded = self.library.get(script_name)
        except ScriptError as error:
            return await self.refuse(platform, room, by, "bad_script", source=source, error=str(error))
        self._opening.add(key)  # held across the awaits below: two starts at once open one circle
        try:
            return await self._open(platform, room, loaded, by, by_name, group, seed, source)
        finally:
            self._opening.discard(key)

    async def _open(
        self,
        platform: str,
        room: str,
        loaded: LoadedScript,
        by: str,
        by_name: str,
        group: GroupInfo | None,
        seed: int | None,
        source: str | None,
    ) -> A.Outcome:
        group_id = await self.group_id(platform, room, group)
        seed = random.randrange(2**31) if seed is None else seed
        try:
            prompts = await self._choose_prompts(group_id, loaded.script.phases, seed)
        except BankError as error:  # a bank changed or broke since the library checked the script
            return await self.refuse(platform, room, by, "bad_script", source=source, error=str(error))
        circle_id = secrets.token_hex(16)
        hosted = Hosted(circle_id, Circle(loaded.script), group_id, platform, room)
        self._circles[circle_id] = hosted
        self._rooms[(platform, room)] = hosted
        now = self.clock.now()
        new = NewCircle(
            circle_id,
            group_id,
            loaded.name,
            loaded.script.title,
            loaded.sha256,
            loaded.text,
            by,
            by_name,
            secrets.token_hex(16),
            now,
        )
        return await self._start_run(hosted, E.Open(by, by_name, seed, prompts), now, new, source)

    async def _choose_prompts(self, group_id: int, phases: Iterable[object], seed: int) -> tuple[E.PhasePrompt, ...]:
        chosen: list[E.PhasePrompt] = []
        histories: dict[str, list[str]] = {}
        for index, phase in enumerate(phases):
            if not isinstance(phase, (RoundPhase, OpenPhase)) or not isinstance(phase.prompt, PromptRef):
                continue
            bank = phase.prompt.bank
            if bank not in histories:
                histories[bank] = await self.writer.call(self.store.prompt_history, group_id, bank)
            item = resolve_prompt(bank, phase.prompt.id, histories[bank], rng_seed=seed)
            histories[bank].append(item.id)
            chosen.append(E.PhasePrompt(index, item.text, item.id, bank))
        return tuple(chosen)

    async def submit(self, platform: str, room: str, event: E.Event, *, source: str | None = None) -> A.Outcome:
        """Hand an adapter's event to the circle in ``room``; returns once it is kept and said.

        ``source`` is the platform's id of the message the event came from: kept with the
        change, so the same message is not acted on twice (see :meth:`handled`)."""
        hosted = self._rooms.get((platform, room))
        if hosted is None:
            return await self.refuse(platform, room, getattr(event, "by", ""), "not_open", source=source)
        return await self._start_run(hosted, event, self.clock.now(), source=source)

    async def handled(self, platform: str, source: str) -> bool:
        """Whether the message ``source`` already made a change that is kept (skip it if so)."""
        if (platform, source) in self._handled:
            return True
        return await self.writer.call(self.store.is_handled, platform, source)

    async def _unsent(self) -> list[Outgoing]:
        """The outbox as the previous process left it (durable platforms only); old handled ids pruned."""
        if not self._durable:
            return []
        week_ago = self.clock.now() - HANDLED_KEPT_FOR
        await self.writer.call(self.store.forget_handled_before, week_ago)
        return await self.writer.call(self.store.pending_outbox, sorted(self._durable))

    async def _redeliver(self, unsent: list[Outgoing]) -> None:
        """Send the lines a previous process kept but may not have sent, under their first keys."""
        now = self.clock.now()
        for out in unsent:
            if now - out.at > STALE_AFTER:
                dropped = sum(1 for line in out.lines if line.get("to") is None)
                out = replace(out, lines=[line for line in out.lines if line.get("to") is not None])
                log.info(
                    "not saying %d stale line(s) in %s room %s (kept %.0f s ago)",
                    dropped,
                    out.platform,
                    out.room,
                    now - out.at,
                )
            lines = [Line(**{**line, "offer": tuple(line.get("offer", ()))}) for line in out.lines]
            if await self._send(out.platform, out.room, lines):  # True for no lines: the entry is cleared
                self.writer.sent(out.key)

    async def resume_all(self) -> int:
        """Restore every stored circle that has not ended, and wait for their catch-up; returns how many."""
        recovering = await self._restore_all()
        if recovering:
            await asyncio.gather(*recovering)
        return len(recovering)

    async def _restore_all(self) -> list[asyncio.Task[A.Outcome]]:
        """Restore every stored circle that has not ended; their catch-up runs in the returned tasks."""
        rows = await self.writer.call(self.store.open_circles)
        now = self.clock.now()
        waits = []
        for row in rows:
            if row.id in self._circles or (self.adapters and row.platform not in self.adapters):
                continue  # circles on a platform this process does not carry are left to the process that does
            try:
                script = self.library.parse(row.script_text, f"<stored script {row.script_name}>")
                circle = Circle.restore(script, row.state)
            except Exception:  # one damaged circle must not keep every other circle from resuming
                log.exception("circle %s could not be resumed; it is left as stored", row.id)
                continue
            hosted = Hosted(row.id, circle, row.group_id, row.platform, row.room, committed=row.state)
            self._circles[row.id] = hosted
            self._rooms[(row.platform, row.room)] = hosted
            self._groups[(row.platform, row.room)] = row.group_id
            downtime = max(0.0, now - row.updated_at)
            waits.append(self._start_run(hosted, E.Recover(downtime), now))
        return waits

    # ------------------------------------------------------------------ timers

    async def settle(self, run_timers: bool = True) -> None:
        """Run every due timer and wait until all that follows is kept and said (for tests)."""
        while True:
            if run_timers:
                self.fire_due()
            if not self._tasks:
                await self.writer.drain()
                if not run_timers or not self._due():
                    return
                continue
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def next_deadline(self) -> float | None:
        """The earliest armed deadline of any circle."""
        while self._heap:
            deadline, circle_id = self._heap[0]
            hosted = self._circles.get(circle_id)
            if hosted is not None and hosted.armed == deadline:
                return deadline
            heapq.heappop(self._heap)
        return None

    def _due(self) -> bool:
        return bool(self._heap) and self._heap[0][0] <= self.clock.now()

    def fire_due(self) -> int:
        """Tick every circle whose deadline has come; returns how many."""
        now = self.clock.now()
        fired = 0
        while self._heap and self._heap[0][0] <= now:
            deadline, circle_id = heapq.heappop(self._heap)
            hosted = self._circles.get(circle_id)
            if hosted is None or hosted.armed != deadline:
                continue
            hosted.armed = None
            if self.lateness is not None:
                self.lateness.append(now - deadline)
            try:
                self._start_run(hosted, E.Tick(), now)
            except Exception:  # one circle's failure must not stop every other circle's timers
                log.exception("circle %s failed on its timer; it is set aside", circle_id)
                self._forget(hosted)
            fired += 1
        return fired

    async def _run_scheduler(self) -> None:
        while True:
            self._wake.clear()
            self.fire_due()
            deadline = self._heap[0][0] if self._heap else None
            await self.clock.sleep_until(deadline, self._wake)

    def _arm(self, hosted: Hosted) -> None:
        deadline = hosted.circle.next_deadline
        if deadline is not None and hosted.retry_at is not None:
            deadline = max(deadline, hosted.retry_at)  # the database is failing: try again later, not at once
        if deadline == hosted.armed:
            return
        hosted.armed = deadline
        if deadline is None:
            return
        heapq.heappush(self._heap, (deadline, hosted.id))
        if len(self._heap) > 2 * len(self._circles) + 1024:
            self._compact_heap()
        if self._heap[0][1] == hosted.id:
            self._wake.set()

    def _compact_heap(self) -> None:
        """Drop superseded deadlines (every re-arm leaves one behind) so the heap stays near one per circle."""
        self._heap = [(h.armed, h.id) for h in self._circles.values() if h.armed is not None]
        heapq.heapify(self._heap)

    # ------------------------------------------------------------------ handling

    def _start_run(
        self,
        hosted: Hosted,
        event: E.Event,
        now: float,
        new: NewCircle | None = None,
        source: str | None = None,
    ) -> asyncio.Task[A.Outcome]:
        """Handle ``event`` now (synchronously), then keep and say it in a task."""
        if not isinstance(event, (E.Tick, E.Recover)) and hosted.circle.due(now):
            # Time first: an event that arrives just after a deadline meets the circle as it is now.
            self._start_run(hosted, E.Tick(), now)
        outcome = hosted.circle.handle(event, now)
        committed: asyncio.Future[None] | None = None
        state: dict[str, Any] | None = None
        lines: list[Line] | None = None
        durable = hosted.platform in self._durable
        key = source or (secrets.token_hex(8) if durable else "")
        if outcome.accepted and not isinstance(event, E.Status):
            circle = hosted.circle
            state = circle.snapshot()
            outgoing = None
            if durable:
                lines = self._render(hosted.platform, outcome.actions, key)
                outgoing = Outgoing(hosted.platform, hosted.room, key, [asdict(line) for line in lines])
            write = Write(
                hosted.id,
                hosted.group_id,
                hosted.platform,
                circle.status.value,
                state,
                circle.next_deadline,
                now,
                outcome.records,
                new,
                source,
                outgoing if lines else None,
            )
            committed = self.writer.submit(write)
            if source is not None:
                self._handled.add((hosted.platform, source))
        self._arm(hosted)
        if hosted.circle.status is CircleStatus.ENDED:
            self._forget(hosted)
        task = asyncio.get_running_loop().create_task(
            self._deliver(hosted, event, outcome, committed, state, key, lines)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _deliver(
        self,
        hosted: Hosted,
        event: E.Event,
        outcome: A.Outcome,
        committed: asyncio.Future[None] | None,
        state: dict[str, Any] | None,
        key: str,
        lines: list[Line] | None,
    ) -> A.Outcome:
        if committed is not None:
            try:
                await committed
            except Exception:
                self._handled.discard((hosted.platform, key))  # not kept, so not handled
                # Nothing is said that was not kept: back to what the database has; tell the sender.
                log.exception("could not keep an event for circle %s; it is rolled back", hosted.id)
                self._roll_back(hosted)
                by = getattr(event, "by", "")
                if not by:  # a timer or a resume: nobody to tell, it is tried again after a pause
                    return A.Outcome(False)
                return await self.refuse(hosted.platform, hosted.room, by, "storage_error", source=key)
            hosted.committed = state
            hosted.retry_at, hosted.backoff = None, 0.0
            self._handled.discard((hosted.platform, key))  # kept now: the database answers from here on
        async with hosted.lock:
            if lines is None:
                await self._say(hosted.platform, hosted.room, outcome.actions, hosted, key)
            else:  # rendered and kept in the outbox with the change: send those, then clear them
                self._observe(hosted, outcome.actions)
                if await self._send(hosted.platform, hosted.room, lines) and lines:
                    self.writer.sent(key)
        return outcome

    def _roll_back(self, hosted: Hosted) -> None:
        """Put a circle back to its last committed state, at once (no database read needed)."""
        if hosted.committed is None:  # it was never stored: it was never open
            self._forget(hosted)
            return
        hosted.circle = Circle.restore(hosted.circle.script, hosted.committed)
        if hosted.circle.status is CircleStatus.ENDED:
            self._forget(hosted)
            return
        self._circles[hosted.id] = hosted
        self._rooms[(hosted.platform, hosted.room)] = hosted
        hosted.backoff = min(60.0, max(1.0, hosted.backoff * 2))
        hosted.retry_at = self.clock.now() + hosted.backoff
        hosted.armed = None
        self._arm(hosted)

    def _forget(self, hosted: Hosted) -> None:
        self._circles.pop(hosted.id, None)
        if self._rooms.get((hosted.platform, hosted.room)) is hosted:
            del self._rooms[(hosted.platform, hosted.room)]

    async def _say(
        self, platform: str, room: str, actions: Sequence[A.Action], hosted: Hosted | None, key: str
    ) -> None:
        if hosted is not None:
            self._observe(hosted, actions)
        await self._send(platform, room, self._render(platform, actions, key))

    def _observe(self, hosted: Hosted, actions: Sequence[A.Action]) -> None:
        for observer in self.observers:
            for action in actions:
                observer(hosted, action)

    def _render(self, platform: str, actions: Sequence[A.Action], key: str) -> list[Line]:
        """The lines for ``actions``; on a durable platform each keyed ``KEY.N`` (stable for one
        incoming message), elsewhere unkeyed (no cost on the hot path of platforms that ignore keys)."""
        hints = self.hints.get(platform)
        return self._keyed(platform, [line for action in actions for line in self.voice.render(action, hints)], key)

    def _keyed(self, platform: str, lines: list[Line], key: str) -> list[Line]:
        if platform not in self._durable:
            return lines
        return [replace(line, key=f"{key}.{n}") for n, line in enumerate(lines)]

    async def _send(self, platform: str, room: str, lines: list[Line]) -> bool:
        """Say ``lines``; False if the adapter failed (kept lines then stay in the outbox, to be
        sent again, under the same keys, at the next start)."""
        adapter = self.adapters.get(platform)
        if adapter is None or not lines:
            return True
        try:
            await adapter.send(room, lines)
        except Exception:  # a platform hiccup must not take the circle down
            log.exception("sending to %s room %s failed", platform, room)
            return False
        return True

    async def refuse(
        self, platform: str, room: str, by: str, code: str, *, source: str | None = None, **params: str
    ) -> A.Outcome:
        """Tell ``by`` privately why something was refused (template ``refused.CODE``)."""
        refused = A.Refused(by, code, tuple(sorted(params.items())))
        await self._say(platform, room, (refused,), None, source or secrets.token_hex(8))
        return A.Outcome(False, (refused,), ())

    async def send_private_file(
        self, platform: str, room: str, to: str, line: Line, source: str | None = None
    ) -> A.Outcome:
        """Hand ``to`` a private line with its file (never through the outbox: files are not kept)."""
        assert line.to == to and line.attachment is not None
        sent = await self._send(platform, room, self._keyed(platform, [line], source or secrets.token_hex(8)))
        return A.Outcome(sent)

    async def forget_outside(self, member: str) -> None:
        """Ask every adapter that keeps something about people outside the database (files saved
        for them, a direct room) to let ``member`` go. A failure is logged: the records are erased."""
        for adapter in self.adapters.values():
            if isinstance(adapter, Forgets):
                try:
                    await adapter.forget(member)
                except Exception:
                    log.exception("%s could not let go of what it kept outside the database", adapter.platform)

    async def say_private(
        self, platform: str, room: str, to: str, template: str, *, source: str | None = None, **params: str
    ) -> A.Outcome:
        """Say ``template`` privately to ``to`` (help, the list of scripts)."""
        line = Line(self.voice.say(template, **params), to=to)
        await self._send(platform, room, self._keyed(platform, [line], source or secrets.token_hex(8)))
        return A.Outcome(True)
