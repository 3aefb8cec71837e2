"""A large attendance export to CSV shared between processes (the command line's, never the bot's).

Most of a large export's time is spent reading rows and turning each into a line, one core's
work. With two cores, the attendance ids are split into four ranges of equal span (two a core:
a core slowed by other work then holds up less of the export) and each is written by a forked
child process (it starts with this process's imports: no second start-up)
to an unnamed temporary file; this process follows their progress and then copies the files
into the output in order. The file is byte for byte what one process writes: the same lines in
the same order, one header. (This process waits rather than writing a range itself: measured on
the benchmark's two cores, the same work in the forking process took a fifth longer than in a
fresh child; see docs/benchmarks.md.)

Only the command line shares an export this way: the bot (threads, an event loop, open sockets)
never forks. Each process reads in its own transaction, a moment apart: a row written while the
export starts may be in the second range's snapshot and not the first's, as with any two reads.
The temporary files are made in the output's folder when there is one (the size of the export,
on the disk the export goes to, not in a memory-backed /tmp), readable by this user only, and
have no name: nothing is left behind if the export is stopped.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import selectors
import shutil
import signal
import tempfile
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import IO, Any, NoReturn, TypeVar

from sqlalchemy import Engine

from facilitator.exports.filters import EVERYTHING, ExportFilter
from facilitator.exports.levels import IdRange, attendance_ids, matching_ids, table
from facilitator.exports.writers import write_csv

SPLIT_FROM = 100_000
"""The fewest attendance ids worth sharing between processes (fewer take under a second)."""
MOST_WORKERS = 4
"""Helper processes at most: each holds its own connection and buffers (about 12 MB of its own),
and the database's pages are read by all of them."""
RANGES_A_CORE = 2
"""Ranges (and helpers) for each core: with two a core, a core slowed by other work (a shared
virtual machine's, say) is left less of the export instead of holding it up to the end."""


class ExportFailed(Exception):
    """A process sharing the export failed; the output is incomplete."""

    def __init__(self, message: str, *, reader_gone: bool = False) -> None:
        super().__init__(message)
        self.reader_gone = reader_gone
        """The output was a pipe whose reader stopped reading (``export | head``): not a failure."""


def workers_available() -> int:
    """How many helper processes an export from the command line may use: :data:`RANGES_A_CORE`
    for each core this process may run on, at most :data:`MOST_WORKERS`; 1 (no helpers) with one
    core, or where processes cannot be forked."""
    if not hasattr(os, "fork") or not hasattr(os, "sched_getaffinity"):
        return 1
    cores = len(os.sched_getaffinity(0))
    return 1 if cores < 2 else min(MOST_WORKERS, RANGES_A_CORE * cores)


def ranges(low: int, high: int, parts: int) -> list[IdRange]:
    """``low`` to ``high`` cut into ``parts`` ranges of (nearly) equal span, in order, each id in one."""
    span = high - low + 1
    parts = max(1, min(parts, span))
    cuts = [low + span * i // parts for i in range(parts + 1)]
    return [(cuts[i], cuts[i + 1] - 1) for i in range(parts)]


def split_for(engine: Engine, workers: int, wanted: ExportFilter = EVERYTHING) -> list[IdRange] | None:
    """The id ranges an attendance export should be shared in, or None to write it in one process.

    Everything: the table's lowest to highest id (from the index, at once). A filter: the lowest to
    highest id of the rows it matches, and only if they are :data:`SPLIT_FROM` or more (one pass
    over them in SQL, no Python a row): a date range's rows are a narrow band of ids, which the
    table's whole span would leave in one range."""
    if workers < 2:
        return None
    with engine.connect() as conn:
        found = attendance_ids(conn) if wanted == EVERYTHING else matching_ids(conn, wanted, SPLIT_FROM)
    if found is None or found[1] - found[0] + 1 < SPLIT_FROM:
        return None
    return ranges(found[0], found[1], workers)


@dataclass
class _Helper:
    """A child process writing one range: what it has said so far, and its temporary file."""

    ids: IdRange
    pid: int
    spill: IO[bytes] | None
    """Its temporary file (None: it writes straight to the output)."""
    report: int
    heard: bytes = b""
    count: int | None = None
    error: str | None = None
    ended: bool = False


class _Told:
    """A progress bar in a child: each ``update(n)`` goes to the parent as a ``+n`` line."""

    def __init__(self, report: int) -> None:
        self._report = report

    def update(self, n: int) -> None:
        if n:
            os.write(self._report, f"+{n}\n".encode())


def _child(
    engine: Engine,
    wanted: ExportFilter,
    ids: IdRange,
    first: bool,
    target: IO[bytes] | int,
    report: int,
    progress: bool,
    parent: int,
) -> NoReturn:
    """In a forked child: write ``ids``'s lines to ``target`` (a temporary file, or the output's file
    descriptor; with the header if ``first``), telling the parent on ``report`` how far it is
    (``+n``) and how it ended (``=count`` or ``!why``); exit."""
    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C: the parent stops, and stops us
        _end_with_parent(parent)
        engine.dispose(close=False)  # the parent's connections are the parent's: open new ones
        with engine.connect() as conn:
            found = table(conn, "attendance", wanted, count=False, ids=ids)
            if progress and found.lines is not None:
                found = replace(found, lines=counted(found.lines, _Told(report)))
            with open(target, "wb", closefd=False) if isinstance(target, int) else target as into:
                count = write_csv(found, into, header=first)
                into.flush()
        os.write(report, f"={count}\n".encode())
        code = 0
    except BaseException as error:  # the parent says what went wrong
        message = "".join(traceback.format_exception_only(error)).strip().replace("\n", " ")
        with contextlib.suppress(OSError):
            os.write(report, f"!{message or type(error).__name__}"[:4000].encode() + b"\n")
    finally:
        os._exit(code)  # never back into the parent's code, never flushing the parent's buffers


def _start(
    engine: Engine,
    wanted: ExportFilter,
    ids: IdRange,
    first: bool,
    scratch: str | None,
    progress: bool,
    direct: int | None = None,
) -> _Helper:
    """A child writing ``ids``: to ``direct`` (a file descriptor) if given, else to a temporary file."""
    spill: IO[bytes] | None = None if direct is not None else tempfile.TemporaryFile(dir=scratch)  # noqa: SIM115
    read, write = os.pipe()
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError:
        os.close(read)
        os.close(write)
        if spill is not None:
            spill.close()
        raise
    if pid == 0:
        os.close(read)
        _child(engine, wanted, ids, first, spill if spill is not None else direct or 0, write, progress, parent)
    os.close(write)
    return _Helper(ids, pid, spill, read)


def _hear(helper: _Helper, data: bytes, bar: Any) -> None:
    helper.heard += data
    *lines, helper.heard = helper.heard.split(b"\n")
    for line in lines:
        text = line.decode(errors="replace")
        if text.startswith("+") and bar is not None:
            bar.update(int(text[1:]))
        elif text.startswith("="):
            helper.count = int(text[1:])
        elif text.startswith("!"):
            helper.error = text[1:]


def _follow(helpers: list[_Helper], bar: Any) -> None:
    """Read what every helper says until each has ended; ExportFailed as soon as one fails."""
    with selectors.DefaultSelector() as waiting:
        for each in helpers:
            waiting.register(each.report, selectors.EVENT_READ, each)
        while waiting.get_map():
            for key, _ in waiting.select():
                helper: _Helper = key.data
                data = os.read(helper.report, 65536)
                if data:
                    _hear(helper, data, bar)
                    continue
                waiting.unregister(helper.report)
                _, status = os.waitpid(helper.pid, 0)
                helper.ended = True
                code = os.waitstatus_to_exitcode(status)
                if code != 0 or helper.count is None:
                    low, high = helper.ids
                    why = helper.error or f"it ended with status {code}"
                    gone = why.startswith("BrokenPipeError")
                    raise ExportFailed(
                        f"the process writing attendance ids {low:,} to {high:,} failed: {why}", reader_gone=gone
                    )


def _stop(helper: _Helper) -> None:
    """Stop ``helper`` if it still runs, and let go of its pipe and file."""
    if not helper.ended:
        with contextlib.suppress(OSError):
            os.kill(helper.pid, signal.SIGTERM)
            os.waitpid(helper.pid, 0)
        helper.ended = True
    with contextlib.suppress(OSError):
        os.close(helper.report)
    if helper.spill is not None:
        helper.spill.close()


PROGRESS_EVERY = 1000
T = TypeVar("T")


def counted(rows: Iterator[T], bar: Any) -> Iterator[T]:
    """``rows``, telling a progress ``bar`` (its ``update(n)``) every :data:`PROGRESS_EVERY` rows."""
    done = 0
    for row in rows:
        yield row
        done += 1
        if done == PROGRESS_EVERY:
            bar.update(done)
            done = 0
    bar.update(done)


def _fileno(out: IO[bytes]) -> int | None:
    """The file descriptor under ``out`` if its bytes go there as they are (a plain file or stream
    opened in binary: not an in-memory buffer, not a compressing file that has a descriptor too)."""
    if not isinstance(out, (io.BufferedWriter, io.BufferedRandom, io.FileIO)):
        return None
    try:
        return out.fileno()
    except (OSError, ValueError):  # io.UnsupportedOperation is an OSError and a ValueError
        return None


def _end_with_parent(parent: int) -> None:
    """Ask Linux to stop this child if its parent dies, however it dies (``PR_SET_PDEATHSIG``);
    where that cannot be asked, the child finishes its range on its own."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before we asked
        os._exit(1)


class _Stopped(Exception):
    """This process was asked to stop (SIGTERM) while its helpers worked."""


@contextlib.contextmanager
def _stoppable() -> Iterator[None]:
    """SIGTERM raises :class:`_Stopped` meanwhile (so the helpers are stopped too), in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise _Stopped

    before = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _append(spill: IO[bytes], out: IO[bytes]) -> None:
    """All of ``spill`` after what ``out`` holds: copied by the kernel where both are files or
    pipes (no trip through this process's memory), else read and written a megabyte at a time."""
    spill.flush()
    size = os.fstat(spill.fileno()).st_size
    target = _fileno(out)
    if target is not None:
        out.flush()
        offset = 0
        try:
            while offset < size:
                sent = os.sendfile(target, spill.fileno(), offset, size - offset)
                if sent == 0:
                    raise OSError(f"the copy stopped after {offset:,} of {size:,} bytes")
                offset += sent
            return
        except OSError:
            if offset:
                raise  # part of it went: never write that part twice
    spill.seek(0)
    shutil.copyfileobj(spill, out, 1 << 20)


def write_shared_csv(
    engine: Engine,
    wanted: ExportFilter,
    out: IO[bytes],
    split: list[IdRange],
    *,
    scratch: str | None = None,
    bar: Any = None,
) -> int:
    """The attendance export of ``wanted`` as CSV to ``out``, each range of ``split`` written by a
    forked child; returns the rows written.

    The first child writes straight to ``out``'s file descriptor when it has one (a file, a pipe:
    nothing of it is written here until that child has ended), the others to temporary files
    that are copied after it in order.

    ``scratch``: the folder for the children's temporary files (default: the system's).
    ``bar``: a progress bar, told of the rows as the children write them (its ``update(n)``)."""
    out.flush()
    direct = _fileno(out)
    engine.dispose()  # no open database connection crosses fork(): each child opens its own
    helpers: list[_Helper] = []
    try:
        with _stoppable():
            for index, ids in enumerate(split):
                first = index == 0
                helpers.append(_start(engine, wanted, ids, first, scratch, bar is not None, direct if first else None))
            _follow(helpers, bar)
            total = 0
            for helper in helpers:
                if helper.spill is not None:
                    _append(helper.spill, out)
                total += helper.count or 0
            return total
    except _Stopped:
        raise ExportFailed("it was stopped (SIGTERM)") from None
    except BrokenPipeError:
        raise ExportFailed("the output was closed", reader_gone=True) from None
    except OSError as error:  # making a temporary file, starting a process, copying a part
        raise ExportFailed(f"{error.strerror or error}") from error
    finally:
        for helper in helpers:  # ended, or stopped early (an error, Ctrl-C, SIGTERM): stop them too
            _stop(helper)
