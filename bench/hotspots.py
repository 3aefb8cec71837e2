"""Where one event's time goes: the per-event costs behind ``bench.circles``, in microseconds.

Run ``python -m bench.hotspots``. It builds ``--circles`` circles of ``--participants``
people each (the benchmark's script), all in their first round, and times, per ``Done``:

- on the event loop: ``Circle.handle`` and ``Circle.snapshot``; rendering the actions;
- the state's JSON: its size, ``json.dumps`` and (if installed) ``orjson.dumps``;
- on the database thread: ``Store.apply`` per write in batches of ``--batch`` (the group
  commit), against the same rows through bare ``sqlite3`` (the floor), also with
  ``secure_delete`` off and with the state in a narrow table of its own (the ``circle`` row
  also holds the whole script text, rewritten with every state update);
- the runtime with persistence stubbed out (a store whose ``apply`` does nothing): the
  ceiling that the event loop alone allows, through ``Runtime.submit``;
- memory: what stays allocated per circle after setting ``--memory-circles`` up in a real
  runtime and store (``tracemalloc``), by source file.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import secrets
import sqlite3
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from adapters.console import HINTS, member_id
from bench.circles import BenchConsole, script_text
from facilitator.engine import actions as A
from facilitator.engine import events as E
from facilitator.engine.circle import Circle
from facilitator.runtime.clock import SystemClock
from facilitator.runtime.host import Runtime
from facilitator.runtime.library import ScriptLibrary
from facilitator.storage.store import NewCircle, Store, Write, seat_of
from facilitator.voice import Voice

PLATFORM = "console"


class NullStore(Store):
    """A store that keeps nothing: to see what the runtime costs without persistence."""

    def apply(self, writes: Sequence[Write], sent: Sequence[str] = ()) -> None:
        pass


def per_call_us(fn: Callable[[], object], repeat: int) -> float:
    """Mean microseconds of ``fn()`` over ``repeat`` calls."""
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1e6


class World:
    """K circles driven by hand (no runtime), with the writes the runtime would make."""

    def __init__(self, library: ScriptLibrary, circles: int, participants: int) -> None:
        loaded = library.get("bench-circle")
        self.loaded = loaded
        self.now = time.time()
        self.circles: list[tuple[str, Circle]] = []
        self.setup: list[Write] = []
        for index in range(circles):
            cid = secrets.token_hex(16)
            circle = Circle(loaded.script)
            by = member_id(f"f{index}")
            new = NewCircle(
                cid,
                index + 1,
                loaded.name,
                loaded.script.title,
                loaded.sha256,
                loaded.text,
                by,
                f"f{index}",
                secrets.token_hex(16),
                self.now,
            )
            self._write(cid, index + 1, circle, E.Open(by, f"f{index}", 7, ()), new)
            for j in range(participants):
                name = f"c{index}p{j}"
                self._write(cid, index + 1, circle, E.Join(member_id(name), name))
                self._write(cid, index + 1, circle, E.Consent(member_id(name), loaded.script.consent.text_hash))
            self._write(cid, index + 1, circle, E.Begin(by))
            self.circles.append((cid, circle))
        self.now += loaded.script.phases[0].duration + 1  # type: ignore[union-attr]
        for index, (cid, circle) in enumerate(self.circles):
            self._write(cid, index + 1, circle, E.Tick())
            assert circle.holder is not None

    def _write(self, cid: str, group: int, circle: Circle, event: E.Event, new: NewCircle | None = None) -> None:
        outcome = circle.handle(event, self.now)
        assert outcome.accepted, outcome.actions
        self.setup.append(self.write_of(cid, group, circle, outcome, new))

    def write_of(self, cid: str, group: int, circle: Circle, outcome: A.Outcome, new: NewCircle | None = None) -> Write:
        return Write(
            cid,
            group,
            PLATFORM,
            circle.status.value,
            circle.snapshot(),
            circle.next_deadline,
            self.now,
            outcome.records,
            new,
        )

    def done_round(self) -> list[tuple[Circle, A.Outcome, Write]]:
        """One Done in every circle, as the runtime would make and write it."""
        self.now += 1.0
        out = []
        for index, (cid, circle) in enumerate(self.circles):
            holder = circle.holder
            assert holder is not None
            outcome = circle.handle(E.Done(holder), self.now)
            out.append((circle, outcome, self.write_of(cid, index + 1, circle, outcome)))
        return out


def fresh_store(cls: type[Store], directory: Path, name: str, world: World, batch: int) -> Store:
    store = cls(f"sqlite:///{directory / name}")
    for group in range(1, len(world.circles) + 1):
        store.ensure_group(PLATFORM, f"room-{group:05d}")
    for start in range(0, len(world.setup), batch):
        store.apply(world.setup[start : start + batch])
    return store


def time_store(store: Store, rounds: list[list[Write]], batch: int) -> float:
    """Microseconds per write of ``store.apply`` in batches of ``batch``."""
    count = 0
    start = time.perf_counter()
    for writes in rounds:
        for first in range(0, len(writes), batch):
            store.apply(writes[first : first + batch])
            count += len(writes[first : first + batch])
    return (time.perf_counter() - start) / count * 1e6


def time_raw_sqlite(
    path: Path,
    rounds: list[list[Write]],
    salts: dict[str, str],
    batch: int,
    *,
    secure_delete: bool = True,
    narrow: bool = False,
) -> float:
    """The same rows through bare sqlite3, each statement one executemany per batch: the floor.

    ``narrow``: the state goes to a table of its own (id, status, state, deadline, time)
    instead of the ``circle`` row that also holds the whole script text.
    """
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute(f"PRAGMA secure_delete={'ON' if secure_delete else 'OFF'}")
    table = "circle"
    if narrow:
        table = "circle_state"
        con.execute(
            "CREATE TABLE IF NOT EXISTS circle_state (id TEXT PRIMARY KEY, status TEXT, state_json TEXT, "
            "next_deadline REAL, updated_at REAL)"
        )
        con.execute(
            "INSERT OR REPLACE INTO circle_state SELECT id, status, state_json, next_deadline, updated_at FROM circle"
        )
    count = 0
    start = time.perf_counter()
    for writes in rounds:
        for first in range(0, len(writes), batch):
            chunk = writes[first : first + batch]
            turns: dict[str, list[tuple[str, str]]] = {"turns_passed": [], "turns_spoken": []}
            for w in chunk:
                for record in w.records:
                    if isinstance(record, A.TurnRecorded):
                        column = "turns_passed" if record.outcome == "passed" else "turns_spoken"
                        turns[column].append((w.circle_id, seat_of(salts[w.circle_id], record.member)))
            states = [(w.status, encode(w.state), w.next_deadline, w.at, w.circle_id) for w in chunk]
            con.execute("BEGIN")
            for column, rows in turns.items():
                con.executemany(
                    f"UPDATE attendance SET {column} = {column} + 1 "
                    "WHERE circle_id = ? AND seat = ? AND left_at IS NULL",
                    rows,
                )
            con.executemany(
                f"UPDATE {table} SET status = ?, state_json = ?, next_deadline = ?, updated_at = ? WHERE id = ?",
                states,
            )
            con.execute("COMMIT")
            count += len(chunk)
    elapsed = time.perf_counter() - start
    con.close()
    return elapsed / count * 1e6


def encode(state: dict[str, Any]) -> str:
    """Compact JSON, with orjson when it is installed (as the store does)."""
    try:
        import orjson
    except ImportError:
        return json.dumps(state, separators=(",", ":"))
    return orjson.dumps(state).decode("utf-8")


async def runtime_ceiling(
    library_root: Path, directory: Path, circles: int, participants: int, seconds: float
) -> float:
    """Events/s through ``Runtime.submit`` (256 in flight) with a store that keeps nothing."""
    store = NullStore(f"sqlite:///{directory / 'null.db'}")
    with open("/dev/null", "w", encoding="utf-8") as sink:
        runtime = Runtime(
            store, clock=SystemClock(), adapters=[BenchConsole(sink)], library=ScriptLibrary(root=library_root)
        )
        await runtime.start()
        text_hash = runtime.library.get("bench-circle").script.consent.text_hash
        for index in range(circles):
            room = f"room-{index:05d}"
            by = member_id(f"f{index}")
            await runtime.open_circle(PLATFORM, room, "bench-circle", by, f"f{index}")
            for j in range(participants):
                name = f"c{index}p{j}"
                await runtime.submit(PLATFORM, room, E.Join(member_id(name), name))
                await runtime.submit(PLATFORM, room, E.Consent(member_id(name), text_hash))
            await runtime.submit(PLATFORM, room, E.Begin(by))
        await asyncio.sleep(1.2)  # the 1 s announce phases end
        await runtime.settle()
        hosted_all = runtime.circles
        assert all(h.circle.holder is not None for h in hosted_all)
        workers = min(256, len(hosted_all))
        count = 0
        stop = time.perf_counter() + seconds

        async def worker(w: int) -> None:
            nonlocal count
            mine = hosted_all[w::workers]
            while time.perf_counter() < stop:
                for hosted in mine:
                    holder = hosted.circle.holder
                    if holder is None:
                        continue
                    await runtime.submit(PLATFORM, hosted.room, E.Done(holder))
                    count += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(workers)))
        rate = count / (time.perf_counter() - start)
        await runtime.stop()
    store.close()
    return rate


async def memory_breakdown(
    library_root: Path, directory: Path, circles: int, participants: int, top: int = 10
) -> list[tuple[str, float]]:
    """Bytes per circle still allocated after setting circles up in a real runtime, by source file."""
    store = Store(f"sqlite:///{directory / 'memory.db'}")
    with open("/dev/null", "w", encoding="utf-8") as sink:
        runtime = Runtime(
            store, clock=SystemClock(), adapters=[BenchConsole(sink)], library=ScriptLibrary(root=library_root)
        )
        await runtime.start()
        text_hash = runtime.library.get("bench-circle").script.consent.text_hash

        async def setup(index: int) -> None:
            room = f"room-{index:05d}"
            by = member_id(f"f{index}")
            await runtime.open_circle(PLATFORM, room, "bench-circle", by, f"f{index}")
            for j in range(participants):
                name = f"c{index}p{j}"
                await runtime.submit(PLATFORM, room, E.Join(member_id(name), name))
                await runtime.submit(PLATFORM, room, E.Consent(member_id(name), text_hash))
            await runtime.submit(PLATFORM, room, E.Begin(by))

        await setup(0)  # warm the caches that do not grow with circles
        await runtime.settle()
        gc.collect()
        tracemalloc.start(1)
        before = tracemalloc.take_snapshot()
        await asyncio.gather(*(setup(i) for i in range(1, circles + 1)))
        await runtime.settle()
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        await runtime.stop()
    store.close()
    stats = after.compare_to(before, "filename")
    root = str(Path(__file__).resolve().parent.parent)
    rows = [
        (str(stat.traceback[0].filename).replace(root + "/", "").replace(sys.prefix, "<venv>"), stat.size_diff)
        for stat in stats
    ]
    rows.sort(key=lambda row: -row[1])
    total = sum(size for _, size in rows)
    return [("total", total / circles)] + [(where, size / circles) for where, size in rows[:top]]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hotspots", description=__doc__.split("\n\n")[0])
    parser.add_argument("--circles", type=int, default=256)
    parser.add_argument("--participants", type=int, default=10)
    parser.add_argument("--batch", type=int, default=256, help="writes per transaction (default 256)")
    parser.add_argument("--rounds", type=int, default=20, help="Done events per circle timed (default 20)")
    parser.add_argument("--memory-circles", type=int, default=300, help="circles for the memory breakdown")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-hotspots-") as tmp:
        directory = Path(tmp)
        scripts = directory / "scripts"
        scripts.mkdir()
        (scripts / "bench-circle.yaml").write_text(script_text(5, 3), encoding="utf-8")
        library = ScriptLibrary(root=scripts)
        voice = Voice.load()

        world = World(library, args.circles, args.participants)
        circle = world.circles[0][1]
        results["Circle.snapshot"] = per_call_us(circle.snapshot, 20_000)
        state = circle.snapshot()
        results["json.dumps(state)"] = per_call_us(lambda: json.dumps(state, separators=(",", ":")), 20_000)
        try:
            import orjson

            results["orjson.dumps(state)"] = per_call_us(lambda: orjson.dumps(state), 20_000)
        except ImportError:
            pass
        results["state JSON bytes"] = float(len(json.dumps(state, separators=(",", ":"))))

        # Handle + render, per Done, over whole rounds of the K circles.
        handle_total = render_total = 0.0
        events = 0
        rounds: list[list[Write]] = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            made = world.done_round()
            handle_total += time.perf_counter() - t0
            t1 = time.perf_counter()
            for _c, outcome, _w in made:
                for action in outcome.actions:
                    voice.render(action, HINTS)
            render_total += time.perf_counter() - t1
            events += len(made)
            rounds.append([w for _c, _o, w in made])
        results["Circle.handle(Done) + snapshot"] = handle_total / events * 1e6
        results["render the actions"] = render_total / events * 1e6

        salts = {w.circle_id: w.new.seat_salt for w in world.setup if w.new is not None}
        store = fresh_store(Store, directory, "store.db", world, args.batch)
        results["Store.apply per write"] = time_store(store, rounds, args.batch)
        store.close()
        variants = {
            "bare sqlite3 per write (floor)": {},
            "  same, secure_delete off": {"secure_delete": False},
            "  same, state in a narrow table": {"narrow": True},
            "  same, both": {"secure_delete": False, "narrow": True},
        }
        for label, kwargs in variants.items():
            name = f"raw-{len(results)}.db"
            fresh_store(Store, directory, name, world, args.batch).close()
            results[label] = time_raw_sqlite(directory / name, rounds, salts, args.batch, **kwargs)

        quick = directory / "quick"
        quick.mkdir()
        (quick / "bench-circle.yaml").write_text(script_text(1, 3), encoding="utf-8")
        results["runtime, no persistence: events/s"] = asyncio.run(
            runtime_ceiling(quick, directory, min(args.circles, 256), args.participants, 5.0)
        )
        memory = asyncio.run(memory_breakdown(quick, directory, args.memory_circles, args.participants))

    width = max(len(k) for k in results)
    print(f"{'per Done event, ' + str(args.participants) + ' participants':<{width}}   µs (or as named)")
    for key, value in results.items():
        print(f"{key:<{width}}   {value:,.1f}")
    print()
    print(f"memory kept per circle after setup, {args.memory_circles} circles (tracemalloc), by file:")
    for where, size in memory:
        print(f"  {size / 1024:8.2f} KiB  {where}")


if __name__ == "__main__":
    main()
