"""Command-to-reply latency on Matrix: the facilitator bot against a bare matrix-nio echo bot.

The question (from the issue): over 200 sequential commands, how much slower does the bot
answer than a bare matrix-nio echo bot on the same Synapse in the same run? Goal: the ratio of
the p50s and of the p95s at or under 1.10.

One run:

1. Starts its own Synapse on 127.0.0.1 (``tests.synapse_server.SynapseServer``, in a temp
   dir: SQLite, rate limits out of the way) and registers three users: the facilitator bot, the
   echo bot and the measuring person.
2. Starts the bot as people run it: ``facilitator serve --config FILE -v`` in a child process,
   with a SQLite database file and the nio store beside it (the README's configuration, with
   the defaults for everything it does not name).
3. Starts the echo bot (``bench/matrix_echo.py``) in another child process: nio with the same
   client configuration (encryption store, pickle key, 30 s long-poll ``sync_forever``), which
   answers each ``!echo WORDS`` with an ``m.notice`` in the same room.
4. The measuring person (a nio client with encryption, syncing in this process) creates a
   room, invites both bots and opens a circle there as its facilitator (``start check-in-30``,
   ``join``, ``consent``, ``begin``, ``next`` twice to the check-in round, where the talking piece
   is theirs, then ``extend 120`` so no timer fires during the run).
5. It then sends ``--warmup`` (not counted) and ``--commands`` commands to each bot, interleaved
   (facilitator, echo, facilitator, echo, ...) so drift in Synapse's or the machine's load hits
   both alike: ``!circle pause`` and ``!circle resume`` in turn to the bot, each answered in the
   room with one line ("We pause here...", "We carry on..."), and ``!echo N`` to the echo bot.
   Latency is from just before ``room_send`` until the measuring client's own sync delivers the
   reply; the next command goes out ``--gap`` seconds after a reply.
6. Steps 4-5 again in an encrypted room (``--rooms``), then everything is stopped.

Why pause and resume: they are the real command path (sync → ``!circle`` parsed → power level
checked → the engine → the change and its line committed to the database → ``m.notice`` sent)
and each is answered with exactly one line in the room, as the echo bot answers with one. The
commonest command in a circle, ``done``/``pass``, is answered with two or three lines (thanks,
then the piece to the next person or the next round) and needs the holder to send it, so it
cannot be repeated 200 times by one person with one reply each; ``status`` is answered
privately. Both bots see every message in the room (each other's commands and replies), and
all three clients run on the same two cores as Synapse.

Besides the latency it records, for each row: the measuring client's own ``room_send`` round
trip, the time between the command's and the reply's ``origin_server_ts`` (Synapse's clock:
the bot's own share, without the measuring client's sync), and the CPU each process used per
command (from ``/proc``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import datetime as dt
import json
import logging
import math
import os
import random
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import nio

from bench.report import ROOT, git_commit, machine, pct, summary, write_section
from bench.report import fmt as _f
from facilitator.config import MatrixConfig
from tests.matrix_people import write_config
from tests.synapse_server import SynapseServer

TARGET_RATIO = 1.10
HEADING = "## Command-to-reply latency on Matrix (`bench/matrix_latency.py`)"
SECTION_BEGIN = "<!-- bench.matrix_latency:begin -->"
SECTION_END = "<!-- bench.matrix_latency:end -->"
SYNC_TIMEOUT_MS = 30_000
REPLY_TIMEOUT = 60.0
SCRIPT = "check-in-30"
ROOM_KINDS = ("unencrypted", "encrypted")

BOT_ENV = {"BENCH_BOT_PASSWORD": "bench-bot-pw", "BENCH_BOT_PICKLE": "the facilitator bot's pickle passphrase"}
ECHO_ENV = {"ECHO_PASSWORD": "bench-echo-pw", "ECHO_PICKLE": "the echo bot's own pickle passphrase"}
PERSON_PASSWORD = "bench-person-pw"
PERSON_PICKLE = "the measuring person's pickle passphrase"

_T0 = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- child processes


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the benchmark process dies (Linux ``PR_SET_PDEATHSIG``)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


class Child:
    """A bot in a child process of this one, its output in ``log_path``."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name, self.command, self.env, self.log_path = name, command, env, log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            preexec_fn=_die_with_parent,  # before any thread starts here
        )

    @property
    def pid(self) -> int:
        assert self.process is not None, "start first"
        return self.process.pid

    def check(self) -> None:
        """Raise if the child has exited."""
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 30 s; the exit status."""
        process, self.process = self.process, None
        code = None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), from ``/proc``."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pid_running(argument: str) -> int:
    """The process whose command line has ``argument`` (Synapse's config path: its pid, for /proc)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if argument.encode() in (entry / "cmdline").read_bytes().split(b"\0"):
                    return int(entry.name)
    raise RuntimeError(f"no process running with {argument}")


def machine_busy_seconds() -> float:
    """CPU time all processes on the machine have used (every core), from ``/proc/stat``."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            values = [int(v) for v in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return math.nan
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------------------- the measuring person


@dataclass
class Reply:
    at: float
    """``time.perf_counter()`` when the measuring client's sync handed the reply over."""
    room_id: str
    sender: str
    body: str
    server_ts: int


@dataclass
class Sample:
    total_ms: float
    """From just before ``room_send`` until the measuring client's sync delivered the reply."""
    send_ms: float
    """The measuring client's ``room_send`` round trip."""
    server_ms: float | None
    """The reply's ``origin_server_ts`` minus the command's (Synapse's clock, ms resolution)."""


@dataclass
class _Waiter:
    room_id: str | None
    sender: str
    wanted: Callable[[str], bool]
    future: asyncio.Future[Reply]


@dataclass
class Person:
    """The one measuring the bots: a nio client with encryption, syncing in this process."""

    server: SynapseServer
    localpart: str
    store_dir: Path
    user_id: str = ""
    client: nio.AsyncClient = field(init=False)
    sent_at: dict[str, int] = field(default_factory=dict)
    """``origin_server_ts`` of our own messages, by event id (from our sync)."""
    unexpected: list[Reply] = field(default_factory=list)
    _waiters: list[_Waiter] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.user_id = self.server.register(self.localpart, PERSON_PASSWORD)
        self.store_dir.mkdir(parents=True, exist_ok=True)
        config = nio.AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False, pickle_key=PERSON_PICKLE)
        self.client = nio.AsyncClient(self.server.url, self.user_id, store_path=str(self.store_dir), config=config)
        logged = await self.client.login(PERSON_PASSWORD, device_name="bench")
        if not isinstance(logged, nio.LoginResponse):
            raise RuntimeError(f"the measuring person could not log in: {logged}")
        self.client.add_event_callback(self._on_notice, nio.RoomMessageNotice)
        self.client.add_event_callback(self._on_text, nio.RoomMessageText)
        self.client.add_event_callback(self._on_invite, nio.InviteMemberEvent)
        await self.client.sync(timeout=0)
        if self.client.should_upload_keys:
            await self.client.keys_upload()
        self._task = asyncio.get_running_loop().create_task(self.client.sync_forever(timeout=SYNC_TIMEOUT_MS))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.client.close()

    async def _on_notice(self, room: nio.MatrixRoom, event: nio.RoomMessageNotice) -> None:
        reply = Reply(time.perf_counter(), room.room_id, event.sender, event.body, event.server_timestamp)
        for waiter in self._waiters:
            if (
                not waiter.future.done()
                and waiter.sender == reply.sender
                and waiter.room_id in (None, reply.room_id)
                and waiter.wanted(reply.body)
            ):
                waiter.future.set_result(reply)
                self._waiters.remove(waiter)
                return
        self.unexpected.append(reply)

    async def _on_text(self, room: nio.MatrixRoom, event: nio.RoomMessageText) -> None:
        if event.sender == self.user_id:
            self.sent_at[event.event_id] = event.server_timestamp

    async def _on_invite(self, room: nio.MatrixRoom, event: nio.InviteMemberEvent) -> None:
        if event.state_key == self.user_id and event.membership == "invite":
            await self.client.join(room.room_id)  # the bot's direct room: accepted, as Element users do

    def watch(self, room_id: str | None, sender: str, wanted: Callable[[str], bool]) -> asyncio.Future[Reply]:
        """A future for the next notice from ``sender`` (in ``room_id``, or any room if None) that is ``wanted``."""
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiters.append(_Waiter(room_id, sender, wanted, future))
        return future

    async def command(
        self, room_id: str, text: str, bot: str, wanted: Callable[[str], bool], *, reply_in: str | None = ""
    ) -> Sample:
        """Say ``text`` in ``room_id`` and wait for ``bot``'s wanted reply (in the same room unless
        ``reply_in`` names another, or is None for any room)."""
        future = self.watch(room_id if reply_in == "" else reply_in, bot, wanted)
        started = time.perf_counter()
        sent = await self.client.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": text}, ignore_unverified_devices=True
        )
        send_done = time.perf_counter()
        if not isinstance(sent, nio.RoomSendResponse):
            raise RuntimeError(f"could not send {text!r}: {sent}")
        try:
            reply = await asyncio.wait_for(future, REPLY_TIMEOUT)
        except TimeoutError:
            raise RuntimeError(f"no reply from {bot} to {text!r} within {REPLY_TIMEOUT:.0f} s") from None
        command_ts = self.sent_at.get(sent.event_id)
        server_ms = float(reply.server_ts - command_ts) if command_ts is not None else None
        return Sample((reply.at - started) * 1000, (send_done - started) * 1000, server_ms)

    async def until(self, condition: Callable[[], bool], what: str, timeout: float = REPLY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            await asyncio.sleep(0.05)  # local state, filled by the sync task

    async def room_with(self, bots: Sequence[str], *, encrypted: bool) -> str:
        """A new room with ``bots`` invited; returns once every one of them has joined."""
        initial = [nio.event_builders.EnableEncryptionBuilder().as_dict()] if encrypted else []
        name = f"Latency ({'encrypted' if encrypted else 'unencrypted'})"
        created = await self.client.room_create(name=name, invite=list(bots), initial_state=initial)
        if not isinstance(created, nio.RoomCreateResponse):
            raise RuntimeError(f"could not create a room: {created}")
        room_id = str(created.room_id)

        def everyone_in() -> bool:
            room = self.client.rooms.get(room_id)
            return room is not None and all(b in room.users and b not in room.invited_users for b in bots)

        await self.until(everyone_in, f"{', '.join(bots)} to join {room_id}")
        return room_id


def _has(text: str) -> Callable[[str], bool]:
    return lambda body: text in body


# ---------------------------------------------------------------------------- one row


@dataclass
class Procs:
    bot: Child
    echo: Child
    synapse_pid: int


def _cpu_now(procs: Procs) -> dict[str, float]:
    return {
        "facilitator": cpu_seconds(procs.bot.pid),
        "echo": cpu_seconds(procs.echo.pid),
        "synapse": cpu_seconds(procs.synapse_pid),
        "measuring": own_cpu_seconds(),
        "machine": machine_busy_seconds(),
    }


async def open_circle(person: Person, room_id: str, bot: str) -> None:
    """A circle in ``room_id`` with the person as facilitator and only participant, in the check-in
    round with the talking piece, and its turn extended so that no timer fires during the run."""
    steps: list[tuple[str, str, str | None]] = [
        (f"!circle start {SCRIPT}", "Welcome to", ""),
        ("!circle join", "exactly what this circle keeps", None),  # privately, in the direct room
        ("!circle consent", "Someone has joined", ""),
        ("!circle begin", "Welcome, and thank you", ""),
        ("!circle next", "agreement we hold", ""),
        ("!circle next", "the talking piece is with you", ""),
        ("!circle extend 120", "more", ""),
    ]
    for text, reply, where in steps:
        await person.command(room_id, text, bot, _has(reply), reply_in=where)


async def measure_room(person: Person, procs: Procs, kind: str, bot: str, echo: str, opts: Options) -> dict[str, Any]:
    """Interleaved commands to the facilitator and the echo bot in a new room of ``kind``."""
    room_id = await person.room_with([bot, echo], encrypted=kind == "encrypted")
    log(f"{kind}: room {room_id}; opening a circle")
    await open_circle(person, room_id, bot)
    samples: dict[str, list[Sample]] = {"facilitator": [], "echo": []}
    person.unexpected.clear()
    cpu_before: dict[str, float] = {}
    started = 0.0
    total = opts.warmup + opts.commands
    for index in range(total):
        if index == opts.warmup:
            cpu_before, started = _cpu_now(procs), time.perf_counter()
            log(f"{kind}: warm-up done ({opts.warmup} each); measuring {opts.commands} each")
        pause = index % 2 == 0
        text, reply = ("!circle pause", "We pause here") if pause else ("!circle resume", "We carry on")
        got = await person.command(room_id, text, bot, lambda body, r=reply: body.startswith(r))  # type: ignore[misc]
        if index >= opts.warmup:
            samples["facilitator"].append(got)
        if opts.gap:
            await asyncio.sleep(opts.gap)
        token = f"{kind}-{index}"
        got = await person.command(room_id, f"!echo {token}", echo, lambda body, t=token: body == t)  # type: ignore[misc]
        if index >= opts.warmup:
            samples["echo"].append(got)
        if opts.gap:
            await asyncio.sleep(opts.gap)
        if index % 50 == 49:
            procs.bot.check()
            procs.echo.check()
            so_far = [s.total_ms for s in samples["facilitator"]], [s.total_ms for s in samples["echo"]]
            if so_far[0]:
                log(f"{kind}: {index + 1}/{total}; p50 so far {pct(so_far[0], 50):.1f} / {pct(so_far[1], 50):.1f} ms")
    elapsed = time.perf_counter() - started
    cpu_after = _cpu_now(procs)
    # Each bot's CPU per command to it; Synapse's and this process's per command to either bot.
    per = {
        "facilitator": opts.commands,
        "echo": opts.commands,
        "synapse": 2 * opts.commands,
        "measuring": 2 * opts.commands,
    }
    used = {name: cpu_after[name] - cpu_before[name] for name in cpu_after}
    cpu_per_command = {name: used[name] * 1000 / per[name] for name in per}
    ours = sum(used[name] for name in per)
    result: dict[str, Any] = {
        "room": kind,
        "seconds": elapsed,
        "cpu_ms_per_command": cpu_per_command,
        "cores_busy": {"ours": ours / elapsed, "others": max(0.0, used["machine"] - ours) / elapsed},
        "unexpected_notices": [r.body[:80] for r in person.unexpected if r.room_id == room_id],
    }
    for name, got_samples in samples.items():
        result[name] = {
            "total": summary([s.total_ms for s in got_samples]),
            "send": summary([s.send_ms for s in got_samples]),
            "server": summary([s.server_ms for s in got_samples if s.server_ms is not None]),
            "raw_ms": [round(s.total_ms, 2) for s in got_samples],
            "raw_send_ms": [round(s.send_ms, 2) for s in got_samples],
            "raw_server_ms": [s.server_ms for s in got_samples],
        }
    fac, echo_ms = result["facilitator"]["raw_ms"], result["echo"]["raw_ms"]
    result["ratio_p50"] = pct(fac, 50) / pct(echo_ms, 50)
    result["ratio_p95"] = pct(fac, 95) / pct(echo_ms, 95)
    result["ratio_p50_ci"] = bootstrap_ratio(fac, echo_ms, 50)
    result["ratio_p95_ci"] = bootstrap_ratio(fac, echo_ms, 95)
    paired = [a - b for a, b in zip(fac, echo_ms, strict=True)]
    result["paired_difference"] = {"p50": pct(paired, 50), "mean": sum(paired) / len(paired)}
    return result


# ---------------------------------------------------------------------------- statistics


def bootstrap_ratio(
    a: Sequence[float], b: Sequence[float], q: float, rounds: int = 2000, seed: int = 7
) -> tuple[float, float]:
    """A 95 % interval for ``pct(a, q) / pct(b, q)``: the pairs (same iteration) resampled."""
    if not a or len(a) != len(b):
        return (math.nan, math.nan)
    rng = random.Random(seed)
    n = len(a)
    ratios = []
    for _ in range(rounds):
        picks = [rng.randrange(n) for _ in range(n)]
        ratios.append(pct([a[i] for i in picks], q) / pct([b[i] for i in picks], q))
    return (pct(ratios, 2.5), pct(ratios, 97.5))


# ---------------------------------------------------------------------------- the run


@dataclass
class Options:
    commands: int
    warmup: int
    gap: float
    rooms: tuple[str, ...]
    out: Path | None
    keep: bool
    synapse_python: str
    command: str
    json_out: Path | None = None


def synapse_python() -> str | None:
    configured = os.environ.get("FACILITATOR_SYNAPSE_PYTHON")
    if configured:
        return configured
    default = ROOT / ".venv-synapse" / "bin" / "python"
    return str(default) if default.exists() else None


async def run(opts: Options, base: Path) -> dict[str, Any]:
    server = SynapseServer(base / "synapse", opts.synapse_python)
    log(f"starting Synapse in {server.base_dir}")
    server.start()
    bot: Child | None = None
    echo: Child | None = None
    person: Person | None = None
    try:
        bot_user = server.register("facilitator-bot", BOT_ENV["BENCH_BOT_PASSWORD"])
        echo_user = server.register("echo-bot", ECHO_ENV["ECHO_PASSWORD"])
        config = MatrixConfig(
            homeserver=server.url,
            user_id=bot_user,
            password_env="BENCH_BOT_PASSWORD",
            pickle_key_env="BENCH_BOT_PICKLE",
            store_dir=base / "bot" / "matrix-store",
            allowed_inviters=(":localhost",),
        )
        (base / "bot").mkdir()
        db_url = f"sqlite:///{base / 'bot' / 'facilitator.db'}"
        config_path = write_config(base / "bot" / "serve.yaml", config, db_url)
        bot = Child(
            "facilitator serve",
            [sys.executable, "-m", "facilitator.cli", "serve", "--config", str(config_path), "-v"],
            BOT_ENV,
            base / "bot" / "serve.log",
        )
        echo = Child(
            "echo bot",
            [
                sys.executable,
                "-m",
                "bench.matrix_echo",
                "--homeserver",
                server.url,
                "--user",
                echo_user,
                "--store",
                str(base / "echo" / "store"),
            ],
            ECHO_ENV,
            base / "echo.log",
        )
        (base / "echo").mkdir()
        bot.start()
        echo.start()
        synapse_pid = pid_running(str(server.config_path))
        procs = Procs(bot, echo, synapse_pid)
        person = Person(server, "person", base / "person")
        await person.start()
        log(f"bot {bot_user} (pid {bot.pid}), echo {echo_user} (pid {echo.pid}), Synapse pid {synapse_pid}")
        rows = []
        for kind in opts.rooms:
            bot.check()
            echo.check()
            rows.append(await measure_room(person, procs, kind, bot_user, echo_user, opts))
            row = rows[-1]
            log(
                f"{kind}: facilitator p50 {row['facilitator']['total']['p50']:.1f} ms, "
                f"echo p50 {row['echo']['total']['p50']:.1f} ms; ratio p50 {row['ratio_p50']:.3f}, "
                f"p95 {row['ratio_p95']:.3f}"
            )
        return {"rows": rows, "synapse": synapse_version(opts.synapse_python)}
    except BaseException:
        for child in (bot, echo):
            if child is not None and child.process is not None:
                log(f"--- {child.name} log (last lines)\n{child.tail()}")
        raise
    finally:
        if person is not None:
            await person.stop()
        codes = {c.name: c.stop() for c in (bot, echo) if c is not None}
        server.stop()
        log(f"stopped: {codes}, Synapse")


# ---------------------------------------------------------------------------- the report


def synapse_version(python: str) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            [python, "-c", "import synapse; print(synapse.__version__)"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout.strip().split(" ")[0]
    return "unknown"


def _lat(s: dict[str, float]) -> str:
    return f"{_f(s['p50'])} / {_f(s['p95'])} / {_f(s['p99'])} / {_f(s['max'])}"


def _interval(bounds: Sequence[float]) -> str:
    return f"{bounds[0]:.3f} – {bounds[1]:.3f}"


def _ratio(ratio: float) -> str:
    return f"{ratio:.3f} — " + ("met" if ratio <= TARGET_RATIO else "**missed**")


def rows_for(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(metric, goal, figure) rows for one room's results."""
    fac, echo, cpu = r["facilitator"], r["echo"], r["cpu_ms_per_command"]
    stray = r.get("unexpected_notices") or []
    return [
        ("Facilitator: command → reply p50 / p95 / p99 / max (ms)", "", _lat(fac["total"])),
        ("Echo bot: command → reply p50 / p95 / p99 / max (ms)", "", _lat(echo["total"])),
        ("**Ratio of the p50s** (facilitator / echo)", f"≤ {TARGET_RATIO:.2f}", _ratio(r["ratio_p50"])),
        ("  95 % interval (bootstrap over the pairs)", "", _interval(r["ratio_p50_ci"])),
        ("**Ratio of the p95s**", f"≤ {TARGET_RATIO:.2f}", _ratio(r["ratio_p95"])),
        ("  95 % interval (bootstrap over the pairs)", "", _interval(r["ratio_p95_ci"])),
        (
            "  difference of the p50s / of the p95s (ms)",
            "",
            f"{_f(fac['total']['p50'] - echo['total']['p50'])} / {_f(fac['total']['p95'] - echo['total']['p95'])}",
        ),
        (
            "  paired difference, facilitator − echo in the same iteration: median / mean (ms)",
            "",
            f"{_f(r['paired_difference']['p50'])} / {_f(r['paired_difference']['mean'])}",
        ),
        (
            "  measuring client's `room_send` round trip p50, to facilitator / to echo (ms)",
            "",
            f"{_f(fac['send']['p50'])} / {_f(echo['send']['p50'])}",
        ),
        (
            "  command → reply on Synapse's clock (`origin_server_ts`) p50 / p95, facilitator (ms)",
            "",
            f"{_f(fac['server']['p50'], 0)} / {_f(fac['server']['p95'], 0)}",
        ),
        (
            "  the same, echo bot (ms)",
            "",
            f"{_f(echo['server']['p50'], 0)} / {_f(echo['server']['p95'], 0)}",
        ),
        (
            "CPU per command (ms): facilitator process / echo process",
            "",
            f"{_f(cpu['facilitator'])} / {_f(cpu['echo'])}",
        ),
        (
            "  Synapse / measuring process, per command of either bot (ms)",
            "",
            f"{_f(cpu['synapse'])} / {_f(cpu['measuring'])}",
        ),
        ("Measured part: commands each, seconds", "", f"{int(fac['total']['n'])}, {_f(r['seconds'])} s"),
        (
            "  cores busy meanwhile: these four processes / anything else on the machine",
            "",
            f"{_f(r['cores_busy']['ours'], 2)} / {_f(r['cores_busy']['others'], 2)}",
        ),
        ("Other notices in the room while measuring", "none", str(len(stray)) + (f" ({stray[0]!r}…)" if stray else "")),
    ]


def render_table(rows: list[dict[str, Any]]) -> str:
    per_room = [rows_for(r) for r in rows]
    lines = [
        "| Metric | Goal | " + " | ".join(f"{r['room'].capitalize()} room" for r in rows) + " |",
        "|" + "---|" * (2 + len(rows)),
    ]
    for i, (metric, goal, _) in enumerate(per_room[0]):
        lines.append(f"| {metric} | {goal} | " + " | ".join(room[i][2] for room in per_room) + " |")
    return "\n".join(lines)


def verdict_line(rows: list[dict[str, Any]]) -> str:
    parts = []
    for r in rows:
        ok = r["ratio_p50"] <= TARGET_RATIO and r["ratio_p95"] <= TARGET_RATIO
        parts.append(
            f"{r['room']} room: p50 {r['ratio_p50']:.3f}, p95 {r['ratio_p95']:.3f} — "
            + ("**met**" if ok else "**missed**")
        )
    return f"Goal: both ratios ≤ {TARGET_RATIO:.2f}. " + "; ".join(parts) + "."


def render_section(result: dict[str, Any]) -> str:
    m = result["machine"]
    out = [
        SECTION_BEGIN,
        "",
        "Generated by `bench/matrix_latency.py` (a run replaces everything between the markers).",
        "",
        f"- **Code at `{result['commit']}`** — {result['date']}: `{result['command']}`  ",
        f"  {m['nproc']} × {m['cpu']}, {m['ram']} RAM, {m['os']}; Python {m['python']}, "
        f"Synapse {result['synapse']} (SQLite), matrix-nio {m['nio']}; {result['commands']} commands to each bot "
        f"after {result['warmup']} of warm-up, interleaved, {result['gap'] * 1000:g} ms after each reply; "
        f"{_f(result['run_seconds'], 0)} s in all.",
        "",
        render_table(result["rows"]),
        "",
        verdict_line(result["rows"]),
        "",
        SECTION_END,
    ]
    return "\n".join(out)


def write_report(path: Path, result: dict[str, Any]) -> None:
    """Replace the generated part of this benchmark's section in ``path`` (added at the end if new)."""
    write_section(path, HEADING, SECTION_BEGIN, SECTION_END, render_section(result))


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.matrix_latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=200, help="measured commands to each bot (default 200)")
    parser.add_argument("--warmup", type=int, default=10, help="commands to each bot first, not counted (default 10)")
    parser.add_argument(
        "--gap", type=float, default=0.1, help="seconds to wait after each reply before the next command (default 0.1)"
    )
    parser.add_argument(
        "--rooms",
        default=",".join(ROOM_KINDS),
        help="which rooms to measure in, in order: unencrypted, encrypted (default both)",
    )
    parser.add_argument("--out", type=Path, default=None, help="Markdown file to write the figures into")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (Synapse's data, the bots' logs)")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results (every sample) here")
    args = parser.parse_args(argv)
    rooms = tuple(r.strip() for r in args.rooms.split(",") if r.strip())
    if not rooms or any(r not in ROOM_KINDS for r in rooms):
        parser.error(f"--rooms: a comma-separated list of {', '.join(ROOM_KINDS)}")
    if args.commands < 1 or args.warmup < 0 or args.gap < 0:
        parser.error("--commands must be at least 1, --warmup and --gap at least 0")
    python = synapse_python()
    if python is None:
        parser.error("no Synapse: set FACILITATOR_SYNAPSE_PYTHON to the Python of a virtualenv with Synapse")
    command = "python -m bench.matrix_latency " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    return Options(args.commands, args.warmup, args.gap, rooms, args.out, args.keep, python, command.strip(), args.json)


def main(argv: list[str] | None = None) -> None:
    opts = parse_args(argv)
    commit = git_commit()  # now, before the bot starts: the code it runs
    logging.getLogger("nio").setLevel(logging.ERROR)  # the measuring client's own chatter
    base = Path(tempfile.mkdtemp(prefix="bench-matrix-"))
    log(f"bench.matrix_latency: {opts.commands} commands to each bot (+{opts.warmup} warm-up), rooms {opts.rooms}")
    try:
        result = asyncio.run(run(opts, base))
    finally:
        if opts.keep:
            log(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    result.update(
        commit=commit,
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        command=opts.command,
        machine=machine(nio="matrix-nio"),
        commands=opts.commands,
        warmup=opts.warmup,
        gap=opts.gap,
        run_seconds=time.perf_counter() - _T0,
    )
    print()
    print(render_table(result["rows"]))
    print()
    print(verdict_line(result["rows"]))
    if opts.json_out is not None:
        opts.json_out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    if opts.out is not None:
        write_report(opts.out, result)
        log(f"wrote {opts.out}")


if __name__ == "__main__":
    main()
