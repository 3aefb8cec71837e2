"""An export from start to finish: choose the rows, stream them to a writer, show progress."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import IO, Any, TextIO

import click
from sqlalchemy import Engine

from facilitator.exports.filters import ExportFilter
from facilitator.exports.levels import Level, Table, table
from facilitator.exports.writers import WRITERS, Format

PROGRESS_EVERY = 1000


def _counted(rows: Iterator[tuple[Any, ...]], bar: Any) -> Iterator[tuple[Any, ...]]:
    done = 0
    for row in rows:
        yield row
        done += 1
        if done == PROGRESS_EVERY:
            bar.update(done)
            done = 0
    bar.update(done)


def export(
    engine: Engine,
    level: Level,
    fmt: Format,
    wanted: ExportFilter,
    out: IO[bytes],
    *,
    progress: TextIO | None = None,
) -> int:
    """Write the ``level`` export of ``wanted`` to ``out`` as ``fmt``; returns the rows written.

    ``progress``: a terminal to draw a progress bar on (nothing is drawn otherwise)."""
    with engine.connect() as conn:
        found: Table = table(conn, level, wanted, count=progress is not None)
        writer = WRITERS[fmt]
        if progress is None:
            return writer(found, out, None)
        with click.progressbar(
            length=found.total, label=f"Exporting {found.total:,} {level} rows", file=progress
        ) as bar:
            return writer(found, out, _counted(found.rows, bar))


def terminal() -> TextIO | None:
    """Standard error, if it is a terminal a person watches (never in CI or a pipe)."""
    return sys.stderr if sys.stderr.isatty() else None
