"""Interaction response time on Discord: from INTERACTION_CREATE to the interaction callback.

The question (issue 4): on the loopback Discord, how long from Discord dispatching a command
to the bot until the bot's interaction callback reaches Discord, p50 and p99 over 1,000
commands; and with a 2-second stall in storage, does every command still get its first answer
inside Discord's 3 seconds (after which the person sees "The application did not respond")?

One run, in one process:

1. Starts the loopback Discord (``tests/discord_fake``: gateway and REST over real sockets on
   127.0.0.1) and the bot as tests/discord_people.py does: the real :class:`DiscordAdapter` on
   the real discord.py client, the real :class:`Runtime` with the system clock, over a SQLite
   file database in a temp dir. The store is ``SlowStore``: each commit first sleeps ``stall``
   seconds on the database thread (0 until the stalled part).
2. Opens a circle as people do: Fran (role "Facilitator") ``/circle start check-in-30``, Fran
   and Ada ``join`` and ``consent``, ``begin``, ``next`` twice to the check-in round, ``extend``
   by 120 minutes so no timer fires during the run.
3. Fran sends ``--warmup`` (not counted) then ``--commands`` commands, one after the other:
   ``/circle pause`` and ``/circle resume`` in turn. The next goes out once the previous one is
   fully answered and everything it wrote is committed (the bot is idle between commands).
4. The same, ``--stalled-commands`` of them, with every commit stalled ``--stall`` seconds.

Why pause and resume: they go the whole way a command goes (the interaction → ``/circle`` →
who may steer → the engine → the change and its line committed → the line posted to the
channel → the interaction answered, privately: "Done."), as in ``bench/matrix_latency.py``.
``/circle status`` is answered as the interaction response too, but writes nothing (the
engine's status is not kept), so a stall in storage would never touch it; ``done``/``pass``
need the holder to change every time.

What is measured, all on the fake's clock (``time.monotonic``), from its records:

- **callback**: ``Callback.latency``, from the fake sending INTERACTION_CREATE on the gateway
  to the bot's ``POST /interactions/{id}/{token}/callback`` arriving (what Discord times
  against its 3 seconds). The answer itself (type 4) when it is ready within the adapter's
  ``DEFER_AFTER``, otherwise a deferral (type 5, "thinking…") first.
- **answer shown**: until the person sees the answer: the callback for type 4, the edit of the
  deferred response for type 5.

The fake and the bot share the process and its event loop (and the machine's two cores), so
the fake's own work (aiohttp, JSON) is inside the figures; Discord's network round trips are not.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from adapters.discord.adapter import DEFER_AFTER
from bench.report import fmt, git_commit, machine, summary, write_section
from facilitator.config import GroupConfig
from facilitator.engine.state import CircleStatus
from facilitator.runtime.clock import SystemClock
from facilitator.runtime.host import Runtime
from tests.discord_fake import Channel, DiscordFake, Interaction, Member
from tests.discord_people import SlowStore, bot_config, start_bot

HEADING = "## Interaction response time on Discord (`bench/discord_latency.py`)"
SECTION_BEGIN = "<!-- bench.discord_latency:begin -->"
SECTION_END = "<!-- bench.discord_latency:end -->"
DEADLINE = 3.0
"""Discord's window for the first response to an interaction, in seconds."""
WAIT = 30.0
"""How long to wait for any one answer before giving up on the run."""
SCRIPT = "check-in-30"

_T0 = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


@dataclass
class Sample:
    """One command: its callback's type and timing, and when its answer was shown (seconds)."""

    command: str
    type: int
    callback: float
    late: bool
    shown: float


@dataclass
class Options:
    commands: int
    stalled_commands: int
    stall: float
    warmup: int
    out: Path | None
    json_out: Path | None
    command: str


@dataclass
class Bot:
    fake: DiscordFake
    runtime: Runtime
    store: SlowStore
    channel: Channel
    fran: Member
    ada: Member


async def answered(handle: Interaction) -> str:
    """The text of the answer to ``handle`` once it is shown (a deferred one once filled in)."""
    await handle.response(timeout=WAIT)
    original = await handle.wait_original(lambda m: not m.loading, timeout=WAIT)
    return original.content


async def command(bot: Bot, who: Member, subcommand: str, **options: object) -> Interaction:
    """``who`` runs ``/circle subcommand``; returns once it is answered and the bot is idle again."""
    handle = await bot.fake.slash(who, bot.channel, "circle", subcommand, options)
    await answered(handle)
    await bot.runtime.settle(run_timers=False)
    return handle


async def open_circle(bot: Bot) -> None:
    """A circle with Fran and Ada in its check-in round, the turn extended past the run's end."""
    fran, ada = bot.fran, bot.ada
    await command(bot, fran, "start", script=SCRIPT)
    for who in (fran, ada):
        await command(bot, who, "join")
        await command(bot, who, "consent")
    await command(bot, fran, "begin")
    await command(bot, fran, "next")
    await command(bot, fran, "next")
    await bot.fake.wait_for_message(
        lambda m: "the talking piece is with you" in m.content, channel=bot.channel, what="the check-in round"
    )
    await command(bot, fran, "extend", minutes=120)


async def measure(bot: Bot, count: int, warmup: int, label: str) -> dict[str, Any]:
    """``warmup`` + ``count`` pauses and resumes by Fran; the counted ones' samples and figures."""
    hosted = bot.runtime.circle_in("discord", str(bot.channel.id))
    assert hosted is not None, "no circle open"
    samples: list[Sample] = []
    cpu_before = started = 0.0
    for index in range(warmup + count):
        if index == warmup:
            cpu_before, started = _cpu(), time.perf_counter()
        pausing = hosted.circle.status is not CircleStatus.PAUSED
        subcommand, said = ("pause", "We pause here") if pausing else ("resume", "We carry on")
        before = len(bot.fake.messages(bot.channel, ephemeral=False))
        handle = await command(bot, bot.fran, subcommand)
        callback = handle.callback
        assert callback is not None and callback.accepted and callback.ephemeral, f"{subcommand}: {callback}"
        original = handle.original
        assert original is not None and original.content == "Done.", f"{subcommand} answered {original}"
        posted = bot.fake.messages(bot.channel, ephemeral=False)[before:]
        assert [m.content[: len(said)] for m in posted] == [said], f"{subcommand} posted {posted}"
        shown = callback.latency if not original.edits else original.edits[-1].at - handle.dispatched_at
        if index >= warmup:
            samples.append(Sample(subcommand, callback.type, callback.latency, callback.late, shown))
        if (index + 1) % 100 == 0 or (count <= 100 and (index + 1) % 10 == 0):
            log(f"{label}: {index + 1}/{warmup + count}")
    seconds = time.perf_counter() - started
    cpu = _cpu() - cpu_before
    return {
        "label": label,
        "commands": count,
        "seconds": seconds,
        "cpu_ms_per_command": cpu * 1000 / count,
        "callback_ms": summary([s.callback * 1000 for s in samples]),
        "shown_ms": summary([s.shown * 1000 for s in samples]),
        "answered": sum(s.type == 4 for s in samples),
        "deferred": sum(s.type == 5 for s in samples),
        "late": sum(s.late or s.callback > DEADLINE for s in samples),
        "samples": [asdict(s) for s in samples],
    }


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


async def run(opts: Options, base: Path) -> dict[str, Any]:
    async with DiscordFake() as fake:
        channel = fake.channel("circles")
        facilitators = fake.add_role("Facilitator")
        fran = fake.add_member("fran", display_name="Fran", roles=[facilitators])
        ada = fake.add_member("ada", display_name="Ada")
        os.environ["FACILITATOR_DISCORD_TOKEN"] = fake.token
        group = GroupConfig(name="Bench", region="North West", sector="health", discord_channels=(channel.id,))
        db_url = f"sqlite:///{base / 'facilitator.db'}"
        with fake.pointed_at():
            runtime, store, _ = await start_bot(fake, db_url, SystemClock(), bot_config(fake), group, SlowStore)
            assert isinstance(store, SlowStore)
            bot = Bot(fake, runtime, store, channel, fran, ada)
            try:
                log("the bot is ready; opening a circle")
                await open_circle(bot)
                log(f"measuring {opts.commands} commands (+{opts.warmup} warm-up), no stall")
                plain = await measure(bot, opts.commands, opts.warmup, "no stall")
                figures = plain["callback_ms"]
                log(f"no stall: callback p50 {figures['p50']:.1f} ms, p99 {figures['p99']:.1f} ms")
                store.stall = opts.stall
                log(f"measuring {opts.stalled_commands} commands, every commit stalled {opts.stall:g} s")
                stalled = await measure(bot, opts.stalled_commands, 0, f"{opts.stall:g} s")
                log(
                    f"stalled: callback p50 {stalled['callback_ms']['p50']:.1f} ms, "
                    f"max {stalled['callback_ms']['max']:.1f} ms"
                )
            finally:
                store.stall = 0.0
                await runtime.stop()
                store.close()
                os.environ.pop("FACILITATOR_DISCORD_TOKEN", None)
        late_anywhere = sum(c.late for c in fake.callbacks)
    return {"runs": [plain, stalled], "late_anywhere": late_anywhere}


# ---------------------------------------------------------------------------- the report


def _lat(s: dict[str, float]) -> str:
    return f"{fmt(s['p50'])} / {fmt(s['p95'])} / {fmt(s['p99'])} / {fmt(s['max'])}"


def rows_for(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(metric, goal, figure) rows for one run."""
    return [
        ("Commands measured (`/circle pause` and `resume` in turn)", "", f"{r['commands']:,}"),
        ("**INTERACTION_CREATE → callback** p50 / p95 / p99 / max (ms)", "", _lat(r["callback_ms"])),
        ("Callbacks after Discord's 3 s", "0", str(r["late"])),
        ("  answered at once (type 4) / deferred first (type 5)", "", f"{r['answered']:,} / {r['deferred']:,}"),
        ("INTERACTION_CREATE → the answer shown p50 / p95 / p99 / max (ms)", "", _lat(r["shown_ms"])),
        ("CPU per command, bot and fake together (ms)", "", fmt(r["cpu_ms_per_command"])),
        ("Seconds for the measured commands", "", fmt(r["seconds"])),
    ]


def render_table(runs: list[dict[str, Any]]) -> str:
    per_run = [rows_for(r) for r in runs]
    heads = ["No stall" if r["label"] == "no stall" else f"Every commit stalled {r['label']}" for r in runs]
    lines = ["| Metric | Goal | " + " | ".join(heads) + " |", "|" + "---|" * (2 + len(runs))]
    for i, (metric, goal, _) in enumerate(per_run[0]):
        lines.append(f"| {metric} | {goal} | " + " | ".join(run[i][2] for run in per_run) + " |")
    return "\n".join(lines)


def verdict_line(result: dict[str, Any]) -> str:
    runs = result["runs"]
    ok = all(r["late"] == 0 for r in runs) and result["late_anywhere"] == 0
    worst = ", ".join(f"{r['label']}: {fmt(r['callback_ms']['max'])} ms" for r in runs)
    return (
        f"Goal: every command's first answer inside Discord's {DEADLINE:g} s — "
        + ("**met**" if ok else "**missed**")
        + f" (slowest callback, {worst}; late callbacks in the whole run, set-up included: "
        f"{result['late_anywhere']})."
    )


def render_section(result: dict[str, Any]) -> str:
    m = result["machine"]
    stalled = result["runs"][1]
    out = [
        SECTION_BEGIN,
        "",
        "Generated by `bench/discord_latency.py` (a run replaces everything between the markers).",
        "",
        f"- **Code at `{result['commit']}`** — {result['date']}: `{result['command']}`  ",
        f"  {m['nproc']} × {m['cpu']}, {m['ram']} RAM, {m['os']}; Python {m['python']}, "
        f"discord.py {m['discord_py']}; the loopback Discord (`tests/discord_fake`) and the bot in one "
        f"process, SQLite file database; {result['warmup']} commands of warm-up first; "
        f"{fmt(result['run_seconds'], 0)} s in all.",
        f"- The adapter answers at once when the answer is ready within `DEFER_AFTER` = {DEFER_AFTER:g} s "
        "and defers otherwise. With the stall every command is deferred, and its answer is shown once its "
        "commit is done; the bench then also waits for the second stalled commit each command makes (the "
        "outbox clean-up after its line is sent), so a stalled command costs about "
        f"{fmt(stalled['seconds'] / max(1, stalled['commands']))} s and that part runs "
        f"{stalled['commands']} commands, not 1,000.",
        "",
        render_table(result["runs"]),
        "",
        verdict_line(result),
        "",
        SECTION_END,
    ]
    return "\n".join(out)


def write_report(path: Path, result: dict[str, Any]) -> None:
    """Replace the generated part of this benchmark's section in ``path`` (added at the end if new)."""
    write_section(path, HEADING, SECTION_BEGIN, SECTION_END, render_section(result))


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.discord_latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=1000, help="measured commands without a stall (default 1000)")
    parser.add_argument(
        "--stalled-commands", type=int, default=50, help="measured commands with the stall (default 50)"
    )
    parser.add_argument("--stall", type=float, default=2.0, help="seconds each commit stalls (default 2.0)")
    parser.add_argument("--warmup", type=int, default=20, help="commands first, not counted (default 20)")
    parser.add_argument("--out", type=Path, default=None, help="Markdown file to write the figures into")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results (every sample) here")
    args = parser.parse_args(argv)
    if args.commands < 1 or args.stalled_commands < 1 or args.warmup < 0 or args.stall < 0:
        parser.error("--commands and --stalled-commands must be at least 1, --warmup and --stall at least 0")
    command = "python -m bench.discord_latency " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    return Options(args.commands, args.stalled_commands, args.stall, args.warmup, args.out, args.json, command.strip())


def main(argv: list[str] | None = None) -> None:
    opts = parse_args(argv)
    commit = git_commit()
    logging.getLogger("discord").setLevel(logging.ERROR)  # "PyNaCl is not installed" and the like
    base = Path(tempfile.mkdtemp(prefix="bench-discord-"))
    log(
        f"bench.discord_latency: {opts.commands} commands (+{opts.warmup} warm-up), then {opts.stalled_commands} "
        f"with a {opts.stall:g} s stall per commit"
    )
    try:
        result = asyncio.run(run(opts, base))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    result.update(
        commit=commit,
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        command=opts.command,
        machine=machine(discord_py="discord.py"),
        warmup=opts.warmup,
        stall=opts.stall,
        run_seconds=time.perf_counter() - _T0,
    )
    print()
    print(render_table(result["runs"]))
    print()
    print(verdict_line(result))
    if opts.json_out is not None:
        opts.json_out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    if opts.out is not None:
        write_report(opts.out, result)
        log(f"wrote {opts.out}")


if __name__ == "__main__":
    main()
