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
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import random
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from facilitator.engine import actions as A
from facilitator.engine import events as E
from facilitator.engine.circle import Circle
from facilitator.engine.state import CircleStatus
from facilitator.prompts import resolve_prompt
from facilitator.runtime.adapter import Adapter
from facilitator.runtime.clock import Clock, SystemClock
from facilitator.runtime.library import ScriptLibrary
from facilitator.runtime.writer import Writer
from facilitator.script.loader import ScriptError
from facilitator.script.models import OpenPhase, PromptRef, RoundPhase
from facilitator.storage.store import NewCircle, Store, Write
from facilitator.voice import Line, Voice

log = logging.getLogger(__name__)

Observer = Callable[["Hosted", A.Action], None]


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """What a deployment says about a room: its name, region and sector."""

    name: str | None = None
    region: str | None = None
    sector: str | None = None


@dataclass(eq=False)
class Hosted:
    """A circle as the runtime holds it: the engine and where it lives."""

    id: str
    circle: Circle
    group_id: int
    platform: str
    room: str
    armed: float | None = None
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
    ) -> None:
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.adapters = {a.platform: a for a in adapters}
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

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Resume every open circle, start the scheduler, connect the adapters."""
        await self.resume_all()
        self._scheduler = asyncio.get_running_loop().create_task(self._run_scheduler())
        for adapter in self.adapters.values():
            await adapter.connect(self)

    async def stop(self) -> None:
        """Stop timers and adapters; everything accepted so far is committed first."""
        if self._scheduler is not None:
            self._scheduler.cancel()
            await asyncio.wait([self._scheduler])
            self._scheduler = None
        await self.settle(run_timers=False)
        for adapter in self.adapters.values():
            await adapter.disconnect()
        self.writer.close()

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
                self.store.ensure_group, platform, room, info.name, info.region, info.sector
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
    ) -> A.Outcome:
        """Open a circle from a script in a room; refused if one is open there already."""
        if (platform, room) in self._rooms:
            return await self.refuse(platform, room, by, "already_open")
        try:
            loaded = self.library.get(script_name)
        except ScriptError as error:
            return await self.refuse(platform, room, by, "bad_script", error=str(error))
        group_id = await self.group_id(platform, room, group)
        seed = random.randrange(2**31) if seed is None else seed
        prompts = await self._choose_prompts(group_id, loaded.script.phases, seed)
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
        return await self._run(hosted, E.Open(by, by_name, seed, prompts), now, new)

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

    async def submit(self, platform: str, room: str, event: E.Event) -> A.Outcome:
        """Hand an adapter's event to the circle in ``room``; returns once it is kept and said."""
        hosted = self._rooms.get((platform, room))
        if hosted is None:
            return await self.refuse(platform, room, getattr(event, "by", ""), "not_open")
        return await self._run(hosted, event, self.clock.now())

    async def resume_all(self) -> int:
        """Restore every stored circle that has not ended; returns how many."""
        rows = await self.writer.call(self.store.open_circles)
        now = self.clock.now()
        waits = []
        for row in rows:
            if row.id in self._circles:
                continue
            script = self.library.parse(row.script_text, f"<stored script {row.script_name}>")
            hosted = Hosted(row.id, Circle.restore(script, row.state), row.group_id, row.platform, row.room)
            self._circles[row.id] = hosted
            self._rooms[(row.platform, row.room)] = hosted
            self._groups[(row.platform, row.room)] = row.group_id
            downtime = max(0.0, now - row.updated_at)
            waits.append(self._start_run(hosted, E.Recover(downtime), now))
        if waits:
            await asyncio.gather(*waits)
        return len(rows)

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
            self._start_run(hosted, E.Tick(), now)
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
        if deadline == hosted.armed:
            return
        hosted.armed = deadline
        if deadline is None:
            return
        heapq.heappush(self._heap, (deadline, hosted.id))
        if self._heap[0][1] == hosted.id:
            self._wake.set()

    # ------------------------------------------------------------------ handling

    def _start_run(
        self, hosted: Hosted, event: E.Event, now: float, new: NewCircle | None = None
    ) -> asyncio.Task[A.Outcome]:
        """Handle ``event`` now (synchronously), then keep and say it in a task."""
        if not isinstance(event, (E.Tick, E.Recover)) and hosted.circle.due(now):
            # Time first: an event that arrives just after a deadline meets the circle as it is now.
            self._start_run(hosted, E.Tick(), now)
        outcome = hosted.circle.handle(event, now)
        committed: asyncio.Future[None] | None = None
        if outcome.accepted and not isinstance(event, E.Status):
            circle = hosted.circle
            write = Write(
                hosted.id,
                hosted.group_id,
                hosted.platform,
                circle.status.value,
                circle.snapshot(),
                circle.next_deadline,
                now,
                outcome.records,
                new,
            )
            committed = self.writer.submit(write)
        self._arm(hosted)
        if hosted.circle.status is CircleStatus.ENDED:
            self._forget(hosted)
        task = asyncio.get_running_loop().create_task(self._deliver(hosted, event, outcome, committed))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(self, hosted: Hosted, event: E.Event, now: float, new: NewCircle | None = None) -> A.Outcome:
        return await self._start_run(hosted, event, now, new)

    async def _deliver(
        self, hosted: Hosted, event: E.Event, outcome: A.Outcome, committed: asyncio.Future[None] | None
    ) -> A.Outcome:
        if committed is not None:
            try:
                await committed
            except Exception:
                # Nothing is said that was not kept: go back to what the database has, and tell the sender.
                log.exception("could not keep an event for circle %s; reloading it", hosted.id)
                await self._reload(hosted)
                return await self.refuse(hosted.platform, hosted.room, getattr(event, "by", ""), "storage_error")
        async with hosted.lock:
            await self._say(hosted.platform, hosted.room, outcome.actions, hosted)
        return outcome

    async def _reload(self, hosted: Hosted) -> None:
        """Replace a circle's in-memory state with its last committed state."""
        row = await self.writer.call(self.store.circle_row, hosted.id)
        if row is None or not row["state_json"] or row["state_json"] == "{}":
            self._forget(hosted)
            return
        hosted.circle = Circle.restore(hosted.circle.script, json.loads(row["state_json"]))
        if hosted.circle.status is CircleStatus.ENDED:
            self._forget(hosted)
            return
        self._circles[hosted.id] = hosted
        self._rooms[(hosted.platform, hosted.room)] = hosted
        hosted.armed = None
        self._arm(hosted)

    def _forget(self, hosted: Hosted) -> None:
        self._circles.pop(hosted.id, None)
        if self._rooms.get((hosted.platform, hosted.room)) is hosted:
            del self._rooms[(hosted.platform, hosted.room)]

    async def _say(self, platform: str, room: str, actions: Sequence[A.Action], hosted: Hosted | None = None) -> None:
        lines: list[Line] = []
        hints = self.hints.get(platform)
        for action in actions:
            if hosted is not None:
                for observer in self.observers:
                    observer(hosted, action)
            lines.extend(self.voice.render(action, hints))
        adapter = self.adapters.get(platform)
        if adapter is None or not lines:
            return
        try:
            await adapter.send(room, lines)
        except Exception:  # a platform hiccup must not take the circle down
            log.exception("sending to %s room %s failed", platform, room)

    async def refuse(self, platform: str, room: str, by: str, code: str, **params: str) -> A.Outcome:
        """Tell ``by`` privately why something was refused (template ``refused.CODE``)."""
        refused = A.Refused(by, code, tuple(sorted(params.items())))
        await self._say(platform, room, (refused,))
        return A.Outcome(False, (refused,), ())

    async def say_private(self, platform: str, room: str, to: str, key: str, **params: str) -> A.Outcome:
        """Say template ``key`` privately to ``to`` (help, the list of scripts)."""
        adapter = self.adapters.get(platform)
        if adapter is not None:
            try:
                await adapter.send(room, [Line(self.voice.say(key, **params), to=to)])
            except Exception:
                log.exception("sending to %s room %s failed", platform, room)
        return A.Outcome(True)
