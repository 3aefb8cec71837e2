"""A large attendance export to CSV shared between processes (the command line's, never the bot's).

Most of a large export's time is spent reading rows and turning each into a line, one core's
work. With two cores, the attendance ids are split into two ranges of equal span: a forked child
process (it starts with this process's imports, so no second start-up) writes the second range's
lines to an unnamed temporary file while this process writes the first range straight to the
output, then copies the child's lines after its own. The file is byte for byte what one process
writes: the same lines in the same order, one header.

Only the command line shares an export this way: the bot (threads, an event loop, open sockets)
never forks. Each process reads in its own transaction, a moment apart: a row written while the
export starts may be in the second range's snapshot and not the first's, as with any two reads.
The temporary file is made in the output's folder when there is one (the size of the export, on
the disk the export goes to, not in a memory-backed /tmp), readable by this user only, and has
no name: nothing is left behind if the export is stopped.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import signal
import tempfile
import traceback
from collections.abc import Iterator
from typing import IO, Any, NoReturn, TypeVar

from sqlalchemy import Engine

from facilitator.exports.filters import ExportFilter
from facilitator.exports.levels import IdRange, attendance_ids, table
from facilitator.exports.writers import write_csv

SPLIT_FROM = 100_000
"""The fewest attendance ids worth sharing between processes (fewer take under a second)."""
MOST_WORKERS = 2
"""Processes at most: each holds its own connection and buffers (the benchmark's peak memory is
for two), and the database's pages are read by all of them."""


class ExportFailed(Exception):
    """A process sharing the export failed; the output is incomplete."""


def workers_available() -> int:
    """How many processes an export from the command line may use: the cores this process may run
    on, at most :data:`MOST_WORKERS`; 1 where processes cannot be forked."""
    if not hasattr(os, "fork") or not hasattr(os, "sched_getaffinity"):
        return 1
    return max(1, min(MOST_WORKERS, len(os.sched_getaffinity(0))))


def ranges(low: int, high: int, parts: int) -> list[IdRange]:
    """``low`` to ``high`` cut into ``parts`` ranges of (nearly) equal span, in order, each id in one."""
    span = high - low + 1
    parts = max(1, min(parts, span))
    cuts = [low + span * i // parts for i in range(parts + 1)]
    return [(cuts[i], cuts[i + 1] - 1) for i in range(parts)]


def split_for(engine: Engine, workers: int) -> list[IdRange] | None:
    """The id ranges an attendance export should be shared in, or None to write it in one process."""
    if workers < 2:
        return None
    with engine.connect() as conn:
        found = attendance_ids(conn)
    if found is None or found[1] - found[0] + 1 < SPLIT_FROM:
        return None
    return ranges(found[0], found[1], workers)


def _child(engine: Engine, wanted: ExportFilter, ids: IdRange, spill: IO[bytes], report: int) -> NoReturn:
    """In the forked child: write ``ids``'s lines to ``spill``, say how many (or why not) on ``report``, exit."""
    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        engine.dispose(close=False)  # the parent's connections are the parent's: open new ones
        with engine.connect() as conn:
            count = write_csv(table(conn, "attendance", wanted, count=False, ids=ids), spill, header=False)
        spill.flush()
        os.write(report, f"{count}".encode())
        code = 0
    except BaseException as error:
        message = "".join(traceback.format_exception_only(error)).strip() or type(error).__name__
        with contextlib.suppress(OSError):
            os.write(report, f"error: {message}"[:4000].encode())
    finally:
        os._exit(code)  # never back into the parent's code, never flushing the parent's buffers


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


def _append(spill: IO[bytes], out: IO[bytes]) -> None:
    """All of ``spill`` after what ``out`` holds: copied by the kernel where both are files or
    pipes (no trip through this process's memory), else read and written a megabyte at a time."""
    spill.flush()
    size = os.fstat(spill.fileno()).st_size
    try:
        target = out.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError and a ValueError
        target = -1
    if target >= 0:
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


def _reply(report: int) -> str:
    parts = []
    while chunk := os.read(report, 4096):
        parts.append(chunk)
    return b"".join(parts).decode(errors="replace")


def write_shared_csv(
    engine: Engine,
    wanted: ExportFilter,
    out: IO[bytes],
    split: list[IdRange],
    *,
    scratch: str | None = None,
    bar: Any = None,
) -> int:
    """The attendance export of ``wanted`` as CSV to ``out``, the first range of ``split`` written
    here and each other one by a forked child; returns the rows written.

    ``scratch``: the folder for the children's temporary files (default: the system's).
    ``bar``: a progress bar, told of this process's rows as they are written and of each child's
    as they are copied in (its ``update(n)``)."""
    out.flush()
    children: list[tuple[IdRange, int, IO[bytes], int]] = []
    try:
        for ids in split[1:]:
            spill: IO[bytes] = tempfile.TemporaryFile(dir=scratch)  # noqa: SIM115 - closed below
            read, write = os.pipe()
            gc.freeze()  # objects made so far are not tracked: the child copies fewer pages
            try:
                pid = os.fork()
            finally:
                gc.unfreeze()
            if pid == 0:
                os.close(read)
                _child(engine, wanted, ids, spill, write)
            os.close(write)
            children.append((ids, pid, spill, read))
        with engine.connect() as conn:
            found = table(conn, "attendance", wanted, count=False, ids=split[0])
            total = write_csv(found, out, found.rows if bar is None else counted(found.rows, bar))
        while children:
            (low, high), pid, spill, read = children[0]
            reply = _reply(read)  # what the child says as it ends
            _, status = os.waitpid(pid, 0)
            children.pop(0)
            try:
                code = os.waitstatus_to_exitcode(status)
                if code != 0 or not reply.isdigit():
                    why = reply.removeprefix("error: ") or f"it ended with status {code}"
                    raise ExportFailed(f"the process writing attendance ids {low:,} to {high:,} failed: {why}")
                _append(spill, out)
            finally:
                os.close(read)
                spill.close()
            total += int(reply)
            if bar is not None:
                bar.update(int(reply))
        return total
    finally:
        for _, pid, spill, read in children:  # stopped early (an error, or Ctrl-C): stop them too
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
            os.close(read)
            spill.close()
