"""``facilitator demo``: a whole circle with simulated participants, start to close.

The simulation plans what each participant does on the circle's own clock: when the piece
comes to them they speak for a while and say done, or pass (about one in five); in a
popcorn round someone who has not spoken asks for the piece. With ``speed`` 0 the clock
is a :class:`ManualClock` jumped straight to the next thing that happens (how the tests run
it); otherwise a :class:`ScaledClock` (60: a minute a second) and the real scheduler.

A script that cannot be used (unknown, invalid, naming a prompt bank that is not there) stops
the demo before anything starts, with the same ``file:line:column`` sentence ``check`` gives
and exit status 2 (:class:`DemoScriptError`).
"""

from __future__ import annotations

import asyncio
import heapq
import random
from dataclasses import dataclass, field
from typing import TextIO

import click

from adapters.console import ConsoleAdapter, member_id
from facilitator.engine import actions as A
from facilitator.runtime.clock import Clock, ManualClock, ScaledClock
from facilitator.runtime.host import Hosted, Runtime
from facilitator.runtime.library import ScriptLibrary
from facilitator.script.loader import ScriptError
from facilitator.storage.store import Store

NAMES = ["Ada", "Bilal", "Chen", "Dara", "Efua", "Finn", "Grace", "Hari", "Ines", "Jonah", "Kemi", "Luis"]
FACILITATOR = "Facilitator"


@dataclass(order=True)
class _Plan:
    at: float
    seq: int
    speaker: str = field(compare=False)
    text: str = field(compare=False)


class DemoScriptError(click.ClickException):
    """The demo's script cannot be used: the command line prints the sentence and exits 2."""

    exit_code = 2


@dataclass
class DemoResult:
    """How the demo went."""

    circle_id: str | None
    ended: bool
    lines: int


class _Participants:
    """Simulated people who react to what the circle says."""

    def __init__(self, names: list[str], clock: Clock, seed: int) -> None:
        self.names = {member_id(n): n for n in names}
        self.clock = clock
        self.rng = random.Random(seed)
        self.plans: list[_Plan] = []
        self.spoken: set[str] = set()
        self.ended = False
        self._seq = 0

    def plan(self, delay: float, speaker: str, text: str) -> None:
        self._seq += 1
        heapq.heappush(self.plans, _Plan(self.clock.now() + delay, self._seq, speaker, text))

    def observe(self, hosted: Hosted, action: A.Action) -> None:
        match action:
            case A.GivePiece(member=member, turn=turn) if member in self.names:
                self.spoken.add(member)
                if self.rng.random() < 0.2:
                    self.plan(self.rng.uniform(3, 10), self.names[member], "pass")
                else:
                    self.plan(turn * self.rng.uniform(0.4, 0.95), self.names[member], "done")
            case A.RoundStarted():
                self.spoken.clear()
            case A.PieceFree():
                waiting = [m for m in self.names if m not in self.spoken]
                if waiting:
                    self.plan(self.rng.uniform(5, 20), self.names[self.rng.choice(waiting)], "ask")
            case A.CircleEnded():
                self.ended = True


async def run_demo(
    out: TextIO,
    *,
    script: str = "check-in-30",
    participants: int = 5,
    speed: float = 60.0,
    database_url: str = "sqlite:///facilitator.db",
    seed: int = 7,
    library: ScriptLibrary | None = None,
) -> DemoResult:
    """Run one whole circle and return when it has closed.

    Raises :class:`DemoScriptError` if the script cannot be used (nothing is run or stored then).
    """
    if library is None:
        library, script = ScriptLibrary.for_script(script)
    try:
        library.get(script)
    except ScriptError as error:
        raise DemoScriptError(str(error)) from None
    clock: Clock = ManualClock(start=1_800_000_000.0) if speed == 0 else ScaledClock(speed)
    store = Store(database_url)
    console = ConsoleAdapter(out, room=f"demo-{seed}-{random.randrange(10**6)}")
    # The demo hosts only its own circle: circles stored by the console or a bot are theirs to resume.
    runtime = Runtime(store, clock=clock, adapters=[console], library=library, resume=False)
    names = NAMES[: max(1, min(participants, len(NAMES)))]
    people = _Participants(names, clock, seed)
    runtime.observers.append(people.observe)
    await runtime.start()
    try:
        outcome = await console.say(FACILITATOR, f"start {script}")
        if not outcome.accepted:
            return DemoResult(None, False, len(console.transcript))
        hosted = runtime.circle_in(console.platform, console.room)
        assert hosted is not None
        circle_id = hosted.id
        for name in names:
            await console.say(name, "join")
            await console.say(name, "consent")
        for index, role in enumerate(hosted.circle.script.required_roles):
            await console.say(FACILITATOR, f"role {names[index % len(names)]} {role}")
        await console.say(FACILITATOR, "begin")
        while not people.ended:
            await _step(runtime, console, people, clock, speed)
        await runtime.settle(run_timers=False)
        return DemoResult(circle_id, True, len(console.transcript))
    finally:
        await runtime.stop()
        store.close()


async def _step(runtime: Runtime, console: ConsoleAdapter, people: _Participants, clock: Clock, speed: float) -> None:
    deadline = runtime.next_deadline()
    planned = people.plans[0].at if people.plans else None
    candidates = [t for t in (deadline, planned) if t is not None]
    if not candidates:
        raise RuntimeError("the demo circle has nothing left to wait for but has not ended")
    target = min(candidates)
    if isinstance(clock, ManualClock):
        clock.set(target)
        await runtime.settle()
    else:
        await asyncio.sleep(max(0.0, (target - clock.now()) / speed))
        await runtime.settle()
    while people.plans and people.plans[0].at <= clock.now() and not people.ended:
        plan = heapq.heappop(people.plans)
        await console.say(plan.speaker, plan.text)
