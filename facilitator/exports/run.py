"""An export from start to finish: choose the rows, stream them to a writer, show progress."""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import IO, TextIO

import click
from sqlalchemy import Engine

from facilitator.exports.filters import ExportFilter
from facilitator.exports.levels import Level, Table, table
from facilitator.exports.parallel import counted, split_for, write_shared_csv
from facilitator.exports.writers import WRITERS, Format


def export(
    engine: Engine,
    level: Level,
    fmt: Format,
    wanted: ExportFilter,
    out: IO[bytes],
    *,
    progress: TextIO | None = None,
    workers: int = 1,
    scratch: str | None = None,
) -> int:
    """Write the ``level`` export of ``wanted`` to ``out`` as ``fmt``; returns the rows written.

    ``progress``: a terminal to draw a progress bar on (nothing is drawn otherwise).
    ``workers``: processes a large attendance export to CSV may be shared between (forked: only
    from a process with no threads or event loop of its own, the command line); ``scratch``: the
    folder for their temporary files (see :mod:`facilitator.exports.parallel`)."""
    split = split_for(engine, workers, wanted) if level == "attendance" and fmt == "csv" else None
    if split is not None:
        if progress is None:
            return write_shared_csv(engine, wanted, out, split, scratch=scratch)
        with engine.connect() as conn:
            total = table(conn, level, wanted).total
        with click.progressbar(length=total, label=f"Exporting {total:,} {level} rows", file=progress) as bar:
            return write_shared_csv(engine, wanted, out, split, scratch=scratch, bar=bar)
    with engine.connect() as conn:
        found: Table = table(conn, level, wanted, count=progress is not None)
        writer = WRITERS[fmt]
        if progress is None:
            return writer(found, out, None)
        with click.progressbar(
            length=found.total, label=f"Exporting {found.total:,} {level} rows", file=progress
        ) as bar:
            lines = None if found.lines is None else counted(found.lines, bar)
            return writer(replace(found, rows=counted(found.rows, bar), lines=lines), out, None)


def terminal() -> TextIO | None:
    """Standard error, if it is a terminal a person watches (never in CI or a pipe)."""
    return sys.stderr if sys.stderr.isatty() else None
