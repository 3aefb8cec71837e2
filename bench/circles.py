"""Many concurrent circles in one process, persistence on: throughput, latency, timers, memory, resume.

Run ``python -m bench.circles --circles 1000`` (or ``--circles 10000``); ``--out
docs/benchmarks.md`` writes the figures into that file's section for this benchmark, keeping
the other runs already there (a column per circle count, code version and variant, a table per
code version: the last commit that changed facilitator/ or adapters/). Stages, all in one
process, one :class:`Runtime` over one SQLite file (WAL, ``synchronous=NORMAL``), the real
:class:`SystemClock` and the real scheduler task:

0. **Baselines**, measured in this run so the comparison is fair: raw ``sqlite3``
   single-row transactions per second (WAL, ``synchronous=NORMAL``, same directory as the
   database), 10,000 bare ``loop.call_at`` timers' lateness, and a CPU check (a fixed
   Python loop: shared machines vary from run to run).
1. **Setup**: N circles, each in its own console room, opened from a script derived from
   ``check-in-30`` (written to a temp dir), then P participants each ``join`` and
   ``consent``; every command goes through :func:`facilitator.front.handle_command`, as
   typed in chat. The bot's words are rendered and written by a :class:`ConsoleAdapter`
   to ``os.devnull`` (rendering is part of the real cost).
2. **Timers alone**: every circle is begun in one burst; each starts with an announce
   phase a little longer than the burst, so N deadlines fall in a window as wide as the burst
   (``--spread S`` adds 0 to S seconds by circle, to widen it) and fire with nothing else
   going on. Lateness is ``runtime.lateness`` (scheduler wake-up
   minus deadline) and, end to end, deadline to the next phase's words being committed and said.
3. **Timers under load**: the closed-loop load of stage 4 runs while the facilitator of every
   circle says ``next``, moving it to a silence phase of a few seconds (``--silence``); the
   ``next`` are paced over four silences, so about a quarter of the circles are silent at any
   moment and the load goes on in the rest while the N silence deadlines fire.
4. **Sustained load** (closed loop): ``--concurrency`` tasks, each owning N/C circles,
   submit ``Done`` (4 in 5) or ``Pass`` for the current holder with ``runtime.submit``,
   which returns once the event is committed and sent. Events per second, time-to-return
   p50/p99, events per commit, and the CPU the process and its two threads used.
5. **Paced load** (open loop), at ``--rate`` events a second (the 10,000/s target), then at
   half what stage 4 sustained: an event comes due every 1/rate s and goes to the next idle
   circle (one in flight per circle); latency counts from when it came due, so a backlog
   shows (no coordinated omission).
6. **Memory**: RSS (``/proc/self/status`` VmRSS) after setup minus before, per circle;
   and ``tracemalloc`` of rebuilding a sample of circles from their stored state.
7. **Resume**: stop the runtime, open a new :class:`Store` and :class:`Runtime` over the
   same file, time ``start()`` (``resume_all`` sends every circle ``Recover``, committed
   and said), and check that all N are back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import json
import math
import os
import random
import re
import shlex
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from adapters.console import ConsoleAdapter, member_id
from bench import report
from facilitator.engine import actions as A
from facilitator.engine import events as E
from facilitator.engine.circle import Circle
from facilitator.front import handle_command
from facilitator.runtime.clock import SystemClock
from facilitator.runtime.host import Hosted, Runtime
from facilitator.runtime.library import ScriptLibrary
from facilitator.storage.store import Store
from facilitator.voice import Line

PLATFORM = "console"
SCRIPT_NAME = "bench-circle"
ROUNDS_BEFORE_SILENCE = 1
ROUNDS_AFTER_SILENCE = 6
PASS_SHARE = 0.2

TARGET_EVENTS_PER_SECOND = 10_000
TARGET_LATENESS_P99_MS = 20.0
TARGET_RESUME_SECONDS = 5.0

SECTION_BEGIN = "<!-- bench.circles:begin -->"
SECTION_END = "<!-- bench.circles:end -->"
DATA_PREFIX = "<!-- bench.circles:data "
HEADING = "## Many circles in one process (`bench/circles.py`)"


# ---------------------------------------------------------------------------- the script


def script_text(announce: int, silence: int) -> str:
    """A check-in-30-like script: a short announce (timer), long rounds, a short silence (timer)."""
    rounds_a = "".join(
        _round(f"Check-in {k + 1}", "check-in" if k == 0 else None) for k in range(ROUNDS_BEFORE_SILENCE)
    )
    rounds_b = "".join(
        _round(f"Check-out {k + 1}", "check-out" if k == 0 else None) for k in range(ROUNDS_AFTER_SILENCE)
    )
    return f"""\
title: Benchmark circle
format: check-in
summary: >-
  A check-in circle for the benchmark: a short welcome, long rounds of the talking piece,
  a short silence, more rounds, and a close that does not come during the run.
expected_participants: 10
allow_anonymous: true
agreement: >-
  One voice at a time: whoever holds the talking piece speaks, and everyone else listens.
  Passing is always a good choice, and no one needs to say why.
  What is said here stays here.
consent:
  version: "bench-1"
  text: >-
    This circle records attendance only: that you took part, when you joined and left, and
    how many turns you spoke or passed. It never records what anyone says.
phases:
  - kind: announce
    name: Welcome
    text: >-
      Welcome, and thank you for making the time. The talking piece will come to each of you
      in turn; speak when it reaches you, say done when you have finished, or pass.
    show_agreement: true
    duration: {announce}s
{rounds_a}  - kind: silence
    name: A moment of silence
    text: A short quiet before we check out. No one will be called on.
    duration: {silence}s
{rounds_b}  - kind: close
    name: Close
    text: Thank you for the care and attention you brought today. Go gently.
    duration: 30m
"""


def _round(name: str, bank: str | None) -> str:
    prompt = f"    prompt: {{bank: {bank}}}\n" if bank else "    prompt: What is on your mind as we go round again?\n"
    return (
        f"  - kind: round\n    name: {name}\n    text: A minute or so each.\n{prompt}"
        '    turn: 10m\n    remind_before: ["1m"]\n    rounds: 10\n    order: join\n'
    )


# ---------------------------------------------------------------------------- helpers


class _NoTranscript(list[Line]):
    """The console adapter keeps every line for tests; a long run must not."""

    def append(self, item: Line) -> None:
        pass


class BenchConsole(ConsoleAdapter):
    """The console adapter, rendering every line to ``out``, without the test transcript."""

    def __init__(self, out: TextIO) -> None:
        super().__init__(out, room="bench", show_private=True)
        self.transcript = _NoTranscript()


def thread_cpu() -> dict[str, float]:
    """CPU seconds used so far by the whole process, the event loop's thread and the database thread."""
    ticks = os.sysconf("SC_CLK_TCK")

    def of(tid: int) -> float:
        try:
            with open(f"/proc/self/task/{tid}/stat", encoding="ascii") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime

    times = os.times()
    found = {"process": times.user + times.system, "event loop": of(threading.get_native_id())}
    for thread in threading.enumerate():
        if thread.name.startswith("facilitator-db") and thread.native_id is not None:
            found["database thread"] = found.get("database thread", 0.0) + of(thread.native_id)
    return found


def rss_bytes() -> int:
    """Resident set size of this process, from /proc/self/status."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def pct(values: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``; NaN if empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def ms_summary(seconds: list[float]) -> dict[str, float]:
    """p50, p99 and max of ``seconds``, in milliseconds."""
    return {
        "n": float(len(seconds)),
        "p50": pct(seconds, 50) * 1000,
        "p99": pct(seconds, 99) * 1000,
        "max": (max(seconds) if seconds else math.nan) * 1000,
    }


def script_name(variant: int) -> str:
    """The benchmark script with announce phase ``--announce`` + ``variant`` seconds."""
    return SCRIPT_NAME if variant == 0 else f"{SCRIPT_NAME}-{variant}"


def room_of(index: int) -> str:
    """The console room of circle ``index``."""
    return f"room-{index:05d}"


def facilitator_of(index: int) -> str:
    """The facilitator's display name in circle ``index``."""
    return f"f{index}"


def participant_names(index: int, count: int) -> list[str]:
    """Display names of circle ``index``'s participants (distinct people in every circle)."""
    return [f"c{index}p{j}" for j in range(count)]


async def pool(items: Iterable[int], workers: int, fn: Callable[[int], Awaitable[None]]) -> None:
    """Run ``fn`` over ``items`` with at most ``workers`` running at once."""
    iterator: Iterator[int] = iter(items)

    async def work() -> None:
        for item in iterator:
            await fn(item)

    await asyncio.gather(*(work() for _ in range(max(1, workers))))


def log(message: str) -> None:
    """Progress, on stderr, stamped with the time since the run began."""
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


_T0 = time.perf_counter()


@dataclass
class Progress:
    """What the progress printer reports."""

    stage: str = ""
    done: int = 0
    total: int = 0
    started: float = field(default_factory=time.perf_counter)

    def begin(self, stage: str, total: int = 0) -> None:
        self.stage, self.done, self.total, self.started = stage, 0, total, time.perf_counter()


async def report_progress(progress: Progress, every: float) -> None:
    """Print the current stage's progress every ``every`` seconds."""
    while True:
        await asyncio.sleep(every)
        elapsed = time.perf_counter() - progress.started
        rate = progress.done / elapsed if elapsed > 0 else 0.0
        of = f"/{progress.total}" if progress.total else ""
        log(f"  {progress.stage}: {progress.done}{of} ({rate:,.0f}/s), RSS {rss_bytes() / 2**20:,.0f} MiB")


class TimerWatch:
    """Observer: deadline of each announce/silence phase to the message that follows it."""

    def __init__(self) -> None:
        self.deadlines: dict[str, float] = {}
        self.announce: list[float] = []
        self.silence: list[float] = []

    def observe(self, hosted: Hosted, action: A.Action) -> None:
        if isinstance(action, A.PhaseStarted):
            if action.kind in ("announce", "silence") and action.ends_at is not None:
                self.deadlines[hosted.id] = action.ends_at
            elif action.index == 1 and hosted.id in self.deadlines:
                self.announce.append(time.time() - self.deadlines.pop(hosted.id))
        elif isinstance(action, A.SilenceCue) and hosted.id in self.deadlines:
            self.silence.append(time.time() - self.deadlines.pop(hosted.id))


# ---------------------------------------------------------------------------- baselines


def baseline_cpu() -> float:
    """Seconds for a fixed pure-Python loop (5,000,000 additions): how fast this CPU is right now.

    Shared virtual machines vary from run to run; this puts a run's figures in proportion.
    """
    start = time.perf_counter()
    total = 0
    for i in range(5_000_000):
        total += i
    return time.perf_counter() - start


def baseline_sqlite(directory: Path, seconds: float) -> float:
    """Raw sqlite3: single-row INSERT transactions per second (WAL, synchronous=NORMAL)."""
    path = directory / "baseline-sqlite.db"
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, circle TEXT, state TEXT, at REAL)")
        payload = "x" * 400
        count = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            con.execute("BEGIN")
            con.execute("INSERT INTO t (circle, state, at) VALUES (?, ?, ?)", (f"c{count}", payload, time.time()))
            con.execute("COMMIT")
            count += 1
        return count / elapsed
    finally:
        con.close()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{path}{suffix}")


async def baseline_timers(count: int, window: float) -> list[float]:
    """Bare asyncio: ``count`` ``call_at`` timers spread over ``window`` s; their lateness."""
    loop = asyncio.get_running_loop()
    lateness: list[float] = []
    done: asyncio.Future[None] = loop.create_future()

    def fire(when: float) -> None:
        lateness.append(loop.time() - when)
        if len(lateness) == count and not done.done():
            done.set_result(None)

    start = loop.time() + 0.2
    for k in range(count):
        when = start + window * k / count
        loop.call_at(when, fire, when)
    await done
    return lateness


# ---------------------------------------------------------------------------- the bench


@dataclass
class Options:
    """Command-line options."""

    circles: int
    participants: int
    db: Path
    concurrency: int
    duration: float
    rate: float
    announce: int
    silence: int
    out: Path | None
    seed: int
    command: str
    spread: int = 0
    temporary_db: bool = False
    switch_interval: float | None = None


class Bench:
    """One run: a runtime hosting N circles, driven through the stages."""

    def __init__(self, opts: Options, workdir: Path) -> None:
        self.opts = opts
        self.workdir = workdir
        self.rng = random.Random(opts.seed)
        self.progress = Progress()
        self.results: dict[str, Any] = {}
        self.sink = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - closed in run()
        scripts = workdir / "scripts"
        scripts.mkdir(exist_ok=True)
        for k in range(opts.spread + 1):
            text = script_text(opts.announce + k, opts.silence)
            (scripts / f"{script_name(k)}.yaml").write_text(text, encoding="utf-8")
        self.library_root = scripts
        self.url = f"sqlite:///{opts.db}"
        self.runtime: Runtime | None = None
        self.store: Store | None = None
        self.watch = TimerWatch()

    # ------------------------------------------------------------------ plumbing

    def _new_runtime(self) -> Runtime:
        self.store = Store(self.url)
        console = BenchConsole(self.sink)
        runtime = Runtime(
            self.store, clock=SystemClock(), adapters=[console], library=ScriptLibrary(root=self.library_root)
        )
        runtime.observers.append(self.watch.observe)
        return runtime

    @property
    def rt(self) -> Runtime:
        assert self.runtime is not None
        return self.runtime

    async def command(self, index: int, name: str, text: str) -> A.Outcome:
        """``name`` types ``text`` in circle ``index``'s room."""
        return await handle_command(self.rt, PLATFORM, room_of(index), member_id(name), name, text, resolve=member_id)

    def hosted(self, index: int) -> Hosted:
        hosted = self.rt.circle_in(PLATFORM, room_of(index))
        assert hosted is not None, f"circle {index} is not open"
        return hosted

    # ------------------------------------------------------------------ stages

    async def run(self) -> dict[str, Any]:
        opts = self.opts
        reporter = asyncio.get_running_loop().create_task(report_progress(self.progress, 5.0))
        try:
            await self.stage_baselines()
            self.runtime = self._new_runtime()
            await self.rt.start()
            self.rt.lateness = []
            gc.collect()
            rss_before = rss_bytes()
            await self.stage_setup()
            gc.collect()
            rss_after = rss_bytes()
            self.results["rss_before_mib"] = rss_before / 2**20
            self.results["rss_after_setup_mib"] = rss_after / 2**20
            self.results["memory_per_circle_kib"] = (rss_after - rss_before) / opts.circles / 1024
            await self.stage_timers_alone()
            await self.stage_timers_under_load()
            await self.stage_closed_loop("load", opts.duration)
            await self.stage_paced("paced", opts.rate)
            await self.stage_paced("paced_half", max(1.0, round(self.results["load"]["events_per_s"] / 2)))
            self.results["rss_after_load_mib"] = rss_bytes() / 2**20
            self.results["heap_entries"] = len(self.rt._heap)
            self.results["commits"] = self.rt.writer.commits
            await self.stage_resume()
        finally:
            reporter.cancel()
            if self.runtime is not None:  # a stage failed: stop what runs before closing the sink
                with contextlib.suppress(Exception):
                    await self.runtime.stop()
            if self.store is not None:
                self.store.close()
            self.sink.close()
        return self.results

    async def stage_baselines(self) -> None:
        log("baselines: raw sqlite3 single-row commits, bare asyncio timers")
        speed = baseline_cpu()
        rate = baseline_sqlite(self.opts.db.parent, 2.0)
        lateness = await baseline_timers(10_000, 1.0)
        self.results["baseline_cpu_seconds"] = speed
        self.results["baseline_sqlite_commits_per_s"] = rate
        self.results["baseline_asyncio_timers"] = ms_summary(lateness)
        log(
            f"  sqlite3 {rate:,.0f} commits/s; asyncio 10,000 timers p99 {pct(lateness, 99) * 1000:.2f} ms; "
            f"CPU check {speed:.2f} s"
        )

    async def stage_setup(self) -> None:
        opts = self.opts
        n, p = opts.circles, opts.participants
        events = n * (1 + 2 * p)
        log(f"setup: {n:,} circles x {p} participants (open, join, consent: {events:,} commands)")
        self.progress.begin("setup commands", events)
        latencies: list[float] = []

        async def one(index: int) -> None:
            t0 = time.perf_counter()
            variant = script_name(index % (opts.spread + 1))
            outcome = await self.command(index, facilitator_of(index), f"start {variant}")
            latencies.append(time.perf_counter() - t0)
            assert outcome.accepted, f"circle {index} did not open: {outcome.actions}"
            self.progress.done += 1
            for name in participant_names(index, p):
                for text in ("join", "consent"):
                    t0 = time.perf_counter()
                    outcome = await self.command(index, name, text)
                    latencies.append(time.perf_counter() - t0)
                    assert outcome.accepted, f"{name} {text} refused: {outcome.actions}"
                    self.progress.done += 1

        start = time.perf_counter()
        await pool(range(n), opts.concurrency, one)
        elapsed = time.perf_counter() - start
        assert len(self.rt.circles) == n
        self.results["setup_seconds"] = elapsed
        self.results["setup_events_per_s"] = events / elapsed
        self.results["setup_latency"] = ms_summary(latencies)
        log(f"  {elapsed:.1f} s, {events / elapsed:,.0f} commands/s")

    async def stage_timers_alone(self) -> None:
        opts = self.opts
        n = opts.circles
        lengths = f"{opts.announce}s" if not opts.spread else f"{opts.announce}s to {opts.announce + opts.spread}s"
        log(f"timers alone: begin {n:,} circles in a burst, then their {lengths} announce deadlines fire")
        self.rt.lateness = []
        self.watch.announce = []
        self.progress.begin("begin", n)
        latencies: list[float] = []

        async def begin(index: int) -> None:
            t0 = time.perf_counter()
            outcome = await self.command(index, facilitator_of(index), "begin")
            latencies.append(time.perf_counter() - t0)
            assert outcome.accepted, f"circle {index} did not begin: {outcome.actions}"
            self.progress.done += 1

        start = time.perf_counter()
        await pool(range(n), opts.concurrency, begin)
        burst = time.perf_counter() - start
        first_deadline = min(h.circle.next_deadline or math.inf for h in self.rt.circles)
        overlap = max(0.0, time.time() - first_deadline)
        log(f"  begin burst {burst:.2f} s ({n / burst:,.0f}/s); waiting for the deadlines")
        self.progress.begin("announce timers fired", n)
        limit = time.perf_counter() + opts.announce + opts.spread + 120
        while len(self.watch.announce) < n and time.perf_counter() < limit:
            self.progress.done = len(self.watch.announce)
            await asyncio.sleep(0.05)
        await self.rt.settle(run_timers=False)
        holders = sum(1 for h in self.rt.circles if h.circle.holder is not None)
        self.results["begin_seconds"] = burst
        self.results["begin_latency"] = ms_summary(latencies)
        self.results["timers_alone"] = ms_summary(list(self.rt.lateness))
        self.results["timers_alone_e2e"] = ms_summary(self.watch.announce)
        self.results["timers_alone_overlap_s"] = overlap
        self.results["timers_alone_fired"] = len(self.rt.lateness)
        assert holders == n, f"only {holders} of {n} circles reached their first round"
        s = self.results["timers_alone"]
        log(
            f"  {len(self.rt.lateness):,} fired; lateness p50 {s['p50']:.1f} ms p99 {s['p99']:.1f} ms "
            f"max {s['max']:.1f} ms; to message p99 {self.results['timers_alone_e2e']['p99']:.1f} ms"
        )
        if overlap > 0:
            log(f"  (the first deadlines came {overlap:.2f} s before the begin burst ended: raise --announce)")

    def _event_for(self, hosted: Hosted) -> E.Event | None:
        holder = hosted.circle.holder
        if holder is None:
            return None
        return E.Pass(holder) if self.rng.random() < PASS_SHARE else E.Done(holder)

    async def _drive(self, stop_at: Callable[[], float], latencies: list[float], counts: dict[str, int]) -> None:
        """Closed loop: ``concurrency`` workers, each owning a slice of the circles, until ``stop_at()``."""
        n, workers = self.opts.circles, min(self.opts.concurrency, self.opts.circles)
        runtime = self.rt

        async def worker(w: int) -> None:
            mine = [self.hosted(i) for i in range(w, n, workers)]
            while time.perf_counter() < stop_at():
                idle = True
                for hosted in mine:
                    event = self._event_for(hosted)
                    if event is None:
                        continue
                    idle = False
                    t0 = time.perf_counter()
                    outcome = await runtime.submit(PLATFORM, hosted.room, event)
                    latencies.append(time.perf_counter() - t0)
                    counts["accepted" if outcome.accepted else "refused"] += 1
                    self.progress.done += 1
                    if time.perf_counter() >= stop_at():
                        return
                if idle:  # every circle of this worker is in a phase without a holder
                    await asyncio.sleep(0.1)

        await asyncio.gather(*(worker(w) for w in range(workers)))

    async def stage_closed_loop(self, key: str, duration: float) -> None:
        opts = self.opts
        log(f"sustained load: {duration:.0f} s of done/pass, {min(opts.concurrency, opts.circles)} in flight")
        self.progress.begin("events")
        latencies: list[float] = []
        counts = {"accepted": 0, "refused": 0}
        commits0 = self.rt.writer.commits
        cpu0 = thread_cpu()
        start = time.perf_counter()
        await self._drive(lambda: start + duration, latencies, counts)
        elapsed = time.perf_counter() - start
        cpu = {name: (spent - cpu0.get(name, 0.0)) / elapsed for name, spent in thread_cpu().items()}
        self.results[key] = {
            "cpu": cpu,
            "events": counts["accepted"],
            "refused": counts["refused"],
            "seconds": elapsed,
            "events_per_s": counts["accepted"] / elapsed,
            "latency": ms_summary(latencies),
            "batch": counts["accepted"] / max(1, self.rt.writer.commits - commits0),
        }
        r = self.results[key]
        log(
            f"  {r['events']:,} events in {elapsed:.1f} s: {r['events_per_s']:,.0f}/s; "
            f"latency p50 {r['latency']['p50']:.1f} ms p99 {r['latency']['p99']:.1f} ms; "
            f"{r['batch']:.0f} events per commit; CPU: "
            + ", ".join(f"{name} {share:.2f}" for name, share in cpu.items())
        )

    async def stage_paced(self, key: str, rate: float) -> None:
        opts = self.opts
        duration, n = opts.duration, opts.circles
        log(f"paced load: {rate:,.0f} events/s offered for {duration:.0f} s (one in flight per circle)")
        self.progress.begin("events")
        hosted = [self.hosted(i) for i in range(n)]
        idle: deque[int] = deque(range(n))
        latencies: list[float] = []
        counts = {"accepted": 0, "refused": 0, "no_idle_circle": 0}
        tasks: set[asyncio.Task[None]] = set()
        runtime = self.rt

        async def one(index: int, event: E.Event, due: float) -> None:
            outcome = await runtime.submit(PLATFORM, hosted[index].room, event)
            latencies.append(time.perf_counter() - due)
            counts["accepted" if outcome.accepted else "refused"] += 1
            idle.append(index)
            self.progress.done += 1

        def next_event() -> tuple[int, E.Event] | None:
            for _ in range(len(idle)):
                index = idle.popleft()
                event = self._event_for(hosted[index])
                if event is not None:
                    return index, event
                idle.append(index)
            return None

        loop = asyncio.get_running_loop()
        issued = 0
        start = time.perf_counter()
        while (now := time.perf_counter()) - start < duration:
            for _ in range(int((now - start) * rate) - issued):
                due = start + issued / rate
                issued += 1
                found = next_event()
                if found is None:
                    counts["no_idle_circle"] += 1
                    continue
                task = loop.create_task(one(*found, due))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.sleep(0.001)
        if tasks:
            await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
        self.results[key] = {
            "offered_per_s": rate,
            "events": counts["accepted"],
            "refused": counts["refused"],
            "no_idle_circle": counts["no_idle_circle"],
            "seconds": elapsed,
            "events_per_s": counts["accepted"] / elapsed,
            "latency": ms_summary(latencies),
        }
        r = self.results[key]
        log(
            f"  {r['events']:,} events in {elapsed:.1f} s: {r['events_per_s']:,.0f}/s of {rate:,.0f}/s offered; "
            f"latency p50 {r['latency']['p50']:.1f} ms p99 {r['latency']['p99']:.1f} ms"
            + (f"; {r['no_idle_circle']:,} came due with every circle busy" if r["no_idle_circle"] else "")
        )

    async def stage_timers_under_load(self) -> None:
        opts = self.opts
        n = opts.circles
        window = max(4.0 * opts.silence, opts.duration)
        log(
            f"timers under load: 'next' to a {opts.silence}s silence in {n:,} circles, paced over {window:.0f} s, "
            "while done/pass goes on in the others"
        )
        self.rt.lateness = []
        self.watch.silence = []
        latencies: list[float] = []
        counts = {"accepted": 0, "refused": 0}
        stop_at = math.inf
        self.progress.begin("events")
        silence_index = ROUNDS_BEFORE_SILENCE + 1
        steered: list[float] = []

        async def steer(index: int) -> None:
            hosted = self.hosted(index)
            by = member_id(facilitator_of(index))
            while hosted.circle.state.phase < silence_index:
                t0 = time.perf_counter()
                outcome = await self.rt.submit(PLATFORM, hosted.room, E.Next(by))
                steered.append(time.perf_counter() - t0)
                assert outcome.accepted, f"next refused in circle {index}: {outcome.actions}"

        # Circle k is steered at start + k * window / n: about silence/window of the circles are
        # in their silence at any moment, and the load goes on in the rest.
        loop = asyncio.get_running_loop()
        commits0 = self.rt.writer.commits
        start = time.perf_counter()
        driving = loop.create_task(self._drive(lambda: stop_at, latencies, counts))
        steering_tasks = []
        for index in range(n):
            delay = start + index * window / n - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            steering_tasks.append(loop.create_task(steer(index)))
        await asyncio.gather(*steering_tasks)
        steering = time.perf_counter() - start
        log(f"  {len(steered):,} 'next' in {steering:.2f} s; waiting for the silence deadlines under load")
        limit = time.perf_counter() + opts.silence + 120
        while len(self.watch.silence) < n and time.perf_counter() < limit:
            await asyncio.sleep(0.05)
        stop_at = time.perf_counter() + 1.0
        await driving
        elapsed = time.perf_counter() - start
        self.results["timers_under_load"] = ms_summary(list(self.rt.lateness))
        self.results["timers_under_load_e2e"] = ms_summary(self.watch.silence)
        self.results["timers_under_load_fired"] = len(self.rt.lateness)
        self.results["load_during_timers"] = {
            "events": counts["accepted"] + len(steered),
            "events_per_s": (counts["accepted"] + len(steered)) / elapsed,
            "latency": ms_summary(latencies),
            "steering_seconds": steering,
            "window_seconds": window,
            "batch": (counts["accepted"] + len(steered)) / max(1, self.rt.writer.commits - commits0),
        }
        s = self.results["timers_under_load"]
        log(
            f"  {len(self.rt.lateness):,} fired under {self.results['load_during_timers']['events_per_s']:,.0f} "
            f"events/s; lateness p50 {s['p50']:.1f} ms p99 {s['p99']:.1f} ms max {s['max']:.1f} ms; "
            f"to message p99 {self.results['timers_under_load_e2e']['p99']:.1f} ms"
        )
        assert len(self.watch.silence) == n, f"only {len(self.watch.silence)} of {n} silences ended"

    async def stage_resume(self) -> None:
        n = self.opts.circles
        log(f"resume: stop, then a new Store and Runtime over the same file resume {n:,} circles")
        await self.rt.stop()
        assert self.store is not None
        self.store.close()
        self.runtime = None
        gc.collect()
        # How long reading the rows takes on its own (a throwaway store, before the resume).
        probe = Store(self.url)
        t0 = time.perf_counter()
        rows = probe.open_circles()
        read = time.perf_counter() - t0
        probe.close()
        self.runtime = self._new_runtime()
        start = time.perf_counter()
        await self.rt.start()
        elapsed = time.perf_counter() - start
        back = len(self.rt.circles)
        armed = sum(1 for h in self.rt.circles if h.armed is not None)
        self.results["resume_seconds"] = elapsed
        self.results["resume_read_seconds"] = read
        self.results["resumed"] = back
        self.results["resumed_armed"] = armed
        log(f"  {back:,} of {n:,} back in {elapsed:.2f} s (reading the rows: {read:.2f} s); {armed:,} timers re-armed")
        # Engine state per circle: tracemalloc while rebuilding a sample from stored rows.
        sample = rows[: min(len(rows), 500)]
        library = self.rt.library
        scripts = [library.parse(r.script_text) for r in sample]
        gc.collect()
        tracemalloc.start()
        kept = [
            Hosted(r.id, Circle.restore(s, r.state), r.group_id, r.platform, r.room)
            for r, s in zip(sample, scripts, strict=True)
        ]
        current, _peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        self.results["state_per_circle_kib"] = current / max(1, len(kept)) / 1024
        del kept
        await self.rt.stop()
        assert self.store is not None
        self.store.close()
        self.runtime = None
        assert back == n, f"only {back} of {n} circles resumed"


# ---------------------------------------------------------------------------- the report


def machine() -> dict[str, str]:
    """What this ran on, with the database's versions."""
    return {**report.machine(sqlalchemy="sqlalchemy"), "sqlite": sqlite3.sqlite_version}


def _f(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}"


def _lat(s: dict[str, float]) -> str:
    return f"{_f(s['p50'])} / {_f(s['p99'])} / {_f(s['max'])}"


def _cpu(cpu: dict[str, float] | None) -> str:
    if not cpu:
        return "n/a"
    return f"{_f(cpu.get('process'), 2)} ({_f(cpu.get('event loop'), 2)} + {_f(cpu.get('database thread'), 2)})"


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def rows_for(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(metric, target, figure) rows for one run's results; labels are the same for every run."""
    load, paced, half, under = r["load"], r["paced"], r["paced_half"], r["load_during_timers"]
    n = r["circles"]
    late_ok = TARGET_LATENESS_P99_MS
    return [
        (
            "Setup: open + join + consent, as typed (s; commands/s)",
            "",
            f"{_f(r['setup_seconds'])} s ({_f(r['setup_events_per_s'], 0)}/s)",
        ),
        ("  setup command latency p50 / p99 / max (ms)", "", _lat(r["setup_latency"])),
        (
            "Sustained events/s, closed loop (events per commit)",
            f"≥ {TARGET_EVENTS_PER_SECOND:,}",
            f"{_f(load['events_per_s'], 0)} ({_f(load['batch'], 0)}) — "
            + _verdict(load["events_per_s"] >= TARGET_EVENTS_PER_SECOND),
        ),
        (
            "  CPU during it, in cores: process (event loop + database thread)",
            "",
            _cpu(load.get("cpu")),
        ),
        (
            "  event latency p50 / p99 / max (ms), closed loop",
            "",
            f"{_lat(load['latency'])} ({r['concurrency']} in flight)",
        ),
        (
            "Paced at the target: offered → achieved events/s",
            f"{TARGET_EVENTS_PER_SECOND:,}",
            f"{_f(paced['offered_per_s'], 0)} → {_f(paced['events_per_s'], 0)} — "
            + _verdict(paced["events_per_s"] >= 0.98 * paced["offered_per_s"]),
        ),
        ("  latency from due time p50 / p99 / max (ms)", "", _lat(paced["latency"])),
        (
            "Paced at half the sustained rate: offered → achieved events/s",
            "",
            f"{_f(half['offered_per_s'], 0)} → {_f(half['events_per_s'], 0)}",
        ),
        ("  latency from due time p50 / p99 / max (ms)", "", _lat(half["latency"])),
        (
            "Timer lateness alone p50 / p99 / max (ms)",
            f"p99 < {late_ok:.0f} at 10,000",
            f"{_lat(r['timers_alone'])} ({r['timers_alone_fired']:,} deadlines over "
            f"{_f(r['begin_seconds'] + r.get('spread', 0))} s) — " + _verdict(r["timers_alone"]["p99"] < late_ok),
        ),
        ("  deadline → next phase committed and said (ms)", "", _lat(r["timers_alone_e2e"])),
        (
            "Timer lateness under load p50 / p99 / max (ms)",
            f"p99 < {late_ok:.0f} at 10,000",
            f"{_lat(r['timers_under_load'])} ({r['timers_under_load_fired']:,} deadlines, "
            f"{_f(under['events_per_s'], 0)} events/s) — " + _verdict(r["timers_under_load"]["p99"] < late_ok),
        ),
        ("  deadline → silence cue committed and said (ms)", "", _lat(r["timers_under_load_e2e"])),
        ("Memory per circle: RSS delta over setup (KiB)", "", _f(r["memory_per_circle_kib"])),
        ("  engine state per circle, tracemalloc of a restore (KiB)", "", _f(r["state_per_circle_kib"])),
        (
            "  RSS after setup / after the load (MiB); stale timer-heap entries",
            "",
            f"{_f(r['rss_after_setup_mib'], 0)} / {_f(r['rss_after_load_mib'], 0)}; {r['heap_entries']:,}",
        ),
        (
            "Resume all after a restart: s (of which reading rows), back",
            f"< {TARGET_RESUME_SECONDS:.0f} s at 10,000",
            f"{_f(r['resume_seconds'], 2)} ({_f(r['resume_read_seconds'], 2)}), {r['resumed']:,}/{n:,} — "
            + _verdict(r["resume_seconds"] < TARGET_RESUME_SECONDS and r["resumed"] == n),
        ),
        (
            "Baseline: raw sqlite3 single-row commits/s (WAL, NORMAL)",
            "≈ 25,000",
            _f(r["baseline_sqlite_commits_per_s"], 0),
        ),
        ("Baseline: asyncio 10,000 timers lateness (ms)", "p99 ≈ 1", _lat(r["baseline_asyncio_timers"])),
        ("CPU check: 5,000,000 Python additions (s; lower is faster)", "", _f(r.get("baseline_cpu_seconds"), 2)),
    ]


def code_version() -> str:
    """The last commit that changed facilitator/ or adapters/, ``+changes`` if they differ from it."""
    return report.git_commit(last_code_change=True)


def run_key(circles: int, code: str, switch_interval: float | None, spread: int = 0) -> str:
    """How a run is told apart in the report: its circle count, the code measured and the variant."""
    key = f"{circles:,} circles @ {code}"
    if spread:
        key += f", announce deadlines spread +{spread} s"
    if switch_interval is not None:
        key += f", switch interval {switch_interval * 1000:g} ms"
    return key


def _order(key: str) -> tuple[int, str]:
    return int(key.split(" ", 1)[0].replace(",", "")), key


def render_table(runs: dict[str, dict[str, Any]]) -> str:
    """A Markdown table, one column per run (circle count and variant)."""
    keys = sorted(runs, key=_order)
    per_run = {k: rows_for(runs[k]) for k in keys}
    first = per_run[keys[0]]
    header = "| Metric | Target | " + " | ".join(keys) + " |"
    lines = [header, "|" + "---|" * (2 + len(keys))]
    for i, (metric, target, _) in enumerate(first):
        # Metrics whose label carries run-specific numbers are labelled from the first run.
        cells = [per_run[k][i][2] for k in keys]
        lines.append(f"| {metric} | {target} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_section(runs: dict[str, dict[str, Any]]) -> str:
    """The generated part of docs/benchmarks.md (between the markers): a table per code version."""
    out = [SECTION_BEGIN, ""]
    out.append(
        "Generated by `bench/circles.py`: a run replaces the column of the same circle count, code and "
        "variant, and keeps the others. Newest code first."
    )
    by_code: dict[str, dict[str, dict[str, Any]]] = {}
    for key in sorted(runs, key=lambda k: runs[k].get("date", ""), reverse=True):
        by_code.setdefault(runs[key].get("code", "unknown"), {})[key] = runs[key]
    for code, group in by_code.items():
        note = group[next(iter(group))].get("code_note", "")
        out += ["", f"#### Code at `{code}`" + (f" — {note}" if note else ""), ""]
        for k in sorted(group, key=_order):
            r = group[k]
            m = r["machine"]
            out.append(f"- **{k}** — {r['date']}: `{r['command']}`  ")
            out.append(
                f"  {m['nproc']} × {m['cpu']}, {m['ram']} RAM, {m['os']}; Python {m['python']}, "
                f"SQLite {m['sqlite']}, SQLAlchemy {m['sqlalchemy']}; {r['participants']} participants a circle, "
                f"{r['concurrency']} in flight, {_f(r['duration'], 0)} s a load stage, "
                f"announce {r['announce']} s"
                + (f" (+0 to {r['spread']} s, by circle)" if r.get("spread") else "")
                + f", silence {r['silence']} s; {r['commits']:,} commits; {_f(r.get('run_seconds'), 0)} s in all."
            )
        out += ["", render_table(group)]
    out += ["", DATA_PREFIX + json.dumps(runs, separators=(",", ":")) + " -->", SECTION_END]
    return "\n".join(out)


def load_runs(text: str) -> dict[str, dict[str, Any]]:
    """Earlier runs stored in the section's data comment."""
    match = re.search(re.escape(DATA_PREFIX) + r"(.*?) -->", text)
    if not match:
        return {}
    try:
        data = json.loads(match.group(1))
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def write_report(path: Path, result: dict[str, Any]) -> None:
    """Put this run's column into ``path``'s section, keeping other circle counts."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    runs = load_runs(text)
    runs[result["key"]] = result
    report.write_section(path, HEADING, SECTION_BEGIN, SECTION_END, render_section(runs))


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.circles", description=__doc__.split("\n\n")[0])
    parser.add_argument("--circles", type=int, default=1000, help="circles to host (default 1000)")
    parser.add_argument("--participants", type=int, default=10, help="participants per circle (default 10)")
    parser.add_argument("--db", type=Path, default=None, help="SQLite file (default: a new temp file)")
    parser.add_argument("--concurrency", type=int, default=256, help="commands in flight at once (default 256)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each load stage (default 10)")
    parser.add_argument("--rate", type=float, default=TARGET_EVENTS_PER_SECOND, help="paced stage: events/s offered")
    parser.add_argument("--announce", type=int, default=None, help="announce phase, s (default: fits the begin burst)")
    parser.add_argument("--silence", type=int, default=None, help="silence phase, s (default 3)")
    parser.add_argument(
        "--spread",
        type=int,
        default=0,
        help="spread the announce deadlines over this many more seconds (circle i gets announce + i %% (spread+1))",
    )
    parser.add_argument("--out", type=Path, default=None, help="Markdown file to write the figures into")
    parser.add_argument("--keep-db", action="store_true", help="keep the temp database (default: removed)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--switch-interval", type=float, default=None, help="sys.setswitchinterval (s) for the run (default 0.005)"
    )
    args = parser.parse_args(argv)
    if args.circles < 1 or args.participants < 1:
        parser.error("--circles and --participants must be at least 1")
    # The begin burst runs at several hundred circles a second here: leave the announce deadlines room
    # after it, so they fire alone. The silence deadlines fire under load whatever their length.
    announce = args.announce if args.announce is not None else math.ceil(args.circles / 500) + 3
    silence = args.silence if args.silence is not None else 3
    db = args.db
    temporary = db is None
    if db is None:
        db = Path(tempfile.mkdtemp(prefix="bench-circles-")) / "circles.db"
    elif db.exists():
        parser.error(f"{db} exists; the benchmark needs a new database file")
    command = "python -m bench.circles " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    return Options(
        args.circles,
        args.participants,
        db,
        args.concurrency,
        args.duration,
        args.rate,
        announce,
        silence,
        args.out,
        args.seed,
        command.strip(),
        switch_interval=args.switch_interval,
        spread=max(0, args.spread),
        temporary_db=temporary and not args.keep_db,
    )


async def amain(opts: Options) -> dict[str, Any]:
    code = code_version()
    with tempfile.TemporaryDirectory(prefix="bench-circles-scripts-") as workdir:
        bench = Bench(opts, Path(workdir))
        results = await bench.run()
    results.update(
        run_seconds=time.perf_counter() - _T0,
        key=run_key(opts.circles, code, opts.switch_interval, opts.spread),
        code=code,
        switch_interval=sys.getswitchinterval(),
        circles=opts.circles,
        participants=opts.participants,
        concurrency=min(opts.concurrency, opts.circles),
        duration=opts.duration,
        announce=opts.announce,
        spread=opts.spread,
        silence=opts.silence,
        command=opts.command,
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=machine(),
    )
    return results


def main(argv: list[str] | None = None) -> None:
    opts = parse_args(argv)
    if opts.switch_interval is not None:
        sys.setswitchinterval(opts.switch_interval)
    variant = run_key(opts.circles, code_version(), opts.switch_interval, opts.spread)
    log(f"bench.circles: {variant}, database {opts.db}")
    try:
        results = asyncio.run(amain(opts))
    finally:
        if opts.temporary_db:
            shutil.rmtree(opts.db.parent, ignore_errors=True)
    print()
    print(render_table({variant: results}))
    if opts.out is not None:
        write_report(opts.out, results)
        log(f"wrote {opts.out}")


if __name__ == "__main__":
    main()
