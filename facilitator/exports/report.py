"""``facilitator report``: attendance per month by group or region, as a chart and as a table.

Per local month (in each group's own time zone, as exports count dates) and per group or
region, for the circles the filters cover:

- ``circles``: circles held (every circle the circle-level export lists).
- ``attendances``: attendance rows, anonymous ones included (the rows of the attendance-level
  export: someone who leaves and comes back to the same circle is two attendances).
- ``unique``: different people. Named people are counted once each however often they came;
  an anonymous attendee cannot be linked across circles (their seat is a per-circle hash), so
  **each circle an anonymous person attended counts as one more person**. With anonymous
  attendance, ``unique`` is an upper bound.
- ``returning``: named people who had attended a circle the same filters cover, in the same
  group or region, in an earlier month (before ``--since`` too). Anonymous attendees are never
  returning, since nobody can tell that they came before.
- ``average size``: the mean over the circles of how many different people (seats) each had.

When there is more than one group or region, each month also has a row for all of them
together (a person in two groups is one person there).

Rows are streamed from the database and summed as they come: what is held is a few counters
and the set of named member ids per month and group (to tell unique from returning).
"""

from __future__ import annotations

import csv
import io
import re
import textwrap
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, Literal, TextIO

from matplotlib import colormaps, rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib.typing import RcKeyType
from sqlalchemy import Engine, Select, and_, case, func, literal, select
from sqlalchemy.engine import Connection

from facilitator.exports.cells import neutralised
from facilitator.exports.filters import CIRCLE_TIME, ExportFilter, GroupRow, circle_clause, matching_groups
from facilitator.exports.levels import CHUNK, LocalTimes
from facilitator.exports.outputs import destination
from facilitator.storage.tables import attendance_table as attendance
from facilitator.storage.tables import circles_table as circles

Scope = Literal["group", "region"]
ChartFormat = Literal["png", "svg"]
CHART_FORMATS: tuple[ChartFormat, ...] = ("png", "svg")

NO_REGION = "(no region)"
ALL = {"group": "(all groups)", "region": "(all regions)"}
NOTE = (
    "Unique counts each circle an anonymous person attended as one person (anonymous attendees "
    "cannot be linked across circles); anonymous attendees are never counted as returning."
)
HEADINGS = ("month", "{by}", "circles", "attendances", "unique", "returning", "average_size")
LABEL_LENGTH = 40
LEGEND_ROWS = 22
HATCHES = ("", "//", "..", "xx", "\\\\", "++")
HEADROOM = 1.6
"""The lower panel's axes reach this many times its highest value: the lines stay clear of its legend."""
_PIECES = re.compile(r"(\D*)(\d*)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_NAMED = and_(attendance.c.anonymous.is_(False), attendance.c.member_id.is_not(None))


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One month of one group or region (or of all of them: ``total``)."""

    month: str
    """``YYYY-MM``, local to each group."""
    scope: str
    circles: int
    attendances: int
    unique: int
    returning: int
    average_size: float
    total: bool = False

    def cells(self) -> tuple[Any, ...]:
        return (
            self.month,
            self.scope,
            self.circles,
            self.attendances,
            self.unique,
            self.returning,
            round(self.average_size, 1),
        )


@dataclass(frozen=True, slots=True)
class Report:
    """The figures of a report, in month order, each month's groups (or regions) by name then the total."""

    by: Scope
    wanted: ExportFilter
    rows: tuple[ReportRow, ...]

    def headings(self) -> tuple[str, ...]:
        return tuple(h.format(by=self.by) for h in HEADINGS)

    def scopes(self) -> list[str]:
        """The groups (or regions) that held circles, by name."""
        return sorted({r.scope for r in self.rows if not r.total}, key=by_name)

    def months(self) -> list[str]:
        """Every month from the first to the last with a circle (quiet months included)."""
        held = sorted({r.month for r in self.rows})
        if not held:
            return []
        out = []
        year, month = (int(p) for p in held[0].split("-"))
        while (text := f"{year:04d}-{month:02d}") <= held[-1]:
            out.append(text)
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return out

    def totals(self) -> dict[str, ReportRow]:
        """Each month's row for everything reported (the only group's row when there is one)."""
        single = len(self.scopes()) == 1
        return {r.month: r for r in self.rows if r.total or single}


@dataclass(slots=True)
class _Cell:
    circles: int = 0
    attendances: int = 0
    seats: int = 0
    anonymous: int = 0
    members: set[int] = field(default_factory=set)


def _stream(conn: Connection, query: Select[Any]) -> Iterator[Any]:
    result = conn.execution_options(stream_results=True, yield_per=CHUNK).execute(query)
    for chunk in result.partitions():
        yield from chunk


def by_name(text: str) -> tuple[tuple[tuple[str, int], ...], str]:
    """A sort key that puts Group 2 before Group 10 and ignores case (then breaks ties by case)."""
    return tuple((part.casefold(), int(number or 0)) for part, number in _PIECES.findall(text)), text


def scope_of(group: GroupRow, by: Scope) -> str:
    """The group's name, or its region's (groups without one share ``(no region)``)."""
    if by == "group":
        return group.name
    return group.region or NO_REGION


def build(conn: Connection, by: Scope, wanted: ExportFilter) -> Report:
    """The report of what ``wanted`` covers, by group or by region."""
    found = matching_groups(conn, wanted)
    where = circle_clause(found, wanted)
    times = LocalTimes()
    cells: dict[tuple[str, str | None], _Cell] = {}

    def cell(group_id: int, at: float) -> tuple[_Cell, _Cell]:
        """The counters a circle at ``at`` adds to: its group's (or region's) month, and everything's."""
        group = found[group_id]
        month = times.day(group.timezone, at)[:7]
        return _get(cells, (month, scope_of(group, by))), _get(cells, (month, None))

    seat = func.coalesce(attendance.c.seat, func.cast(attendance.c.id, circles.c.id.type))
    per_circle = (
        select(
            circles.c.group_id,
            CIRCLE_TIME.label("at"),
            func.count(attendance.c.id),
            func.count(func.distinct(seat)),
            func.count(func.distinct(case((_NAMED, literal(None)), else_=seat))),
        )
        .select_from(circles.outerjoin(attendance, attendance.c.circle_id == circles.c.id))
        .where(where)
        .group_by(circles.c.id, circles.c.group_id, circles.c.started_at, circles.c.opened_at)
    )
    for group_id, at, rows, seats, anonymous in _stream(conn, per_circle):
        for target in cell(group_id, at):
            target.circles += 1
            target.attendances += rows
            target.seats += seats
            target.anonymous += anonymous

    joined = attendance.join(circles, circles.c.id == attendance.c.circle_id)
    named = (
        select(circles.c.group_id, CIRCLE_TIME.label("at"), attendance.c.member_id)
        .select_from(joined)
        .where(where, _NAMED)
        .distinct()
    )
    for group_id, at, member_id in _stream(conn, named):
        for target in cell(group_id, at):
            target.members.add(member_id)

    seen: dict[str | None, set[int]] = {}
    if wanted.since is not None:
        earlier = replace(wanted, since=None, until=wanted.since - timedelta(days=1))
        before = (
            select(circles.c.group_id, attendance.c.member_id)
            .select_from(joined)
            .where(circle_clause(found, earlier), _NAMED)
            .distinct()
        )
        for group_id, member_id in _stream(conn, before):
            for key in (scope_of(found[group_id], by), None):
                seen.setdefault(key, set()).add(member_id)

    return Report(by, wanted, tuple(_rows(by, cells, seen)))


def _get(cells: dict[tuple[str, str | None], _Cell], key: tuple[str, str | None]) -> _Cell:
    found = cells.get(key)
    if found is None:
        found = cells[key] = _Cell()
    return found


def _rows(
    by: Scope, cells: dict[tuple[str, str | None], _Cell], seen: dict[str | None, set[int]]
) -> Iterator[ReportRow]:
    scopes = sorted({s for _, s in cells if s is not None}, key=by_name)
    for month in sorted({m for m, _ in cells}):
        for scope in [*scopes, None]:
            found = cells.pop((month, scope), None)
            if found is None:
                continue
            earlier = seen.setdefault(scope, set())
            returning = len(found.members & earlier)
            earlier |= found.members
            if scope is None and len(scopes) < 2:
                continue
            yield ReportRow(
                month,
                ALL[by] if scope is None else scope,
                found.circles,
                found.attendances,
                len(found.members) + found.anonymous,
                returning,
                found.seats / found.circles if found.circles else 0.0,
                scope is None,
            )


# ---------------------------------------------------------------------------------- the table


def plain(text: str, limit: int | None = None) -> str:
    """Typed text fit for one line of a terminal or a chart label: no control characters, shortened."""
    flat = _CONTROL.sub(" ", text).strip()
    if limit is not None and len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return flat


def text_table(report: Report) -> str:
    """The figures as aligned columns, with the note on anonymous attendance under them."""
    lines = [report.headings()]
    lines += [(*(plain(str(c)) for c in r.cells()[:-1]), f"{r.average_size:.1f}") for r in report.rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    text = []
    for line in lines:
        cells = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        text.append("  ".join(cells).rstrip())
    if not report.rows:
        text.append(f"No circles match ({report.wanted.describe()}).")
    text += ["", f"Note: {NOTE}"]
    return "\n".join(text) + "\n"


def write_table_csv(report: Report, out: IO[bytes]) -> None:
    """The figures as CSV (UTF-8 with a byte order mark, like exports); typed names neutralised; the note last."""
    text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="", write_through=False)
    writer = csv.writer(text)
    writer.writerow(report.headings())
    for row in report.rows:
        cells = list(row.cells())
        cells[1] = neutralised(cells[1])
        writer.writerow(cells)
    writer.writerow([])
    writer.writerow(["note", NOTE])
    text.flush()
    text.detach()


# ---------------------------------------------------------------------------------- the chart

RC: dict[RcKeyType, Any] = {
    "text.usetex": False,
    "text.parse_math": False,  # group names are typed by people: "$x^2$" is shown as it is
    "svg.fonttype": "none",
    "svg.hashsalt": "facilitator-report",
    "font.size": 10,
}


def chart_format(path: str) -> ChartFormat | None:
    """The chart format a file name asks for by its ending, if it is one we draw."""
    ending = Path(path).suffix.lower().lstrip(".")
    for name in CHART_FORMATS:
        if ending == name:
            return name
    return None


def default_table_path(chart: str) -> str:
    """Where the table goes unless told: beside the chart, ``NAME-table.csv`` (not ``NAME.csv``,
    which may well be an attendance export of the same name)."""
    path = Path(chart)
    return str(path.with_name(f"{path.stem}-table.csv"))


def draw(report: Report, out: IO[bytes] | str | Path, fmt: ChartFormat) -> None:
    """The chart: attendances per month stacked by group (or region) above; unique, returning and
    average circle size per month (everything reported together) below."""
    months = report.months()
    with rc_context(RC):
        columns = _legend_columns(report)
        width = max(8.0, 3.5 + 0.55 * len(months)) + 2.4 * (columns - 1)
        fig = Figure(figsize=(width, 7.5), layout="constrained")
        heading = f"Attendance per month by {report.by}: {_covered(report.wanted)}"
        fig.suptitle(textwrap.fill(plain(heading, 300), int(width * 9)), fontweight="bold")
        fig.supxlabel(textwrap.fill(NOTE, int(width * 16)), fontsize=7.5, color="0.35")
        if not months:
            fig.text(
                0.5, 0.5, textwrap.fill(f"No circles match ({plain(report.wanted.describe(), 300)}).", 80), ha="center"
            )
        else:
            top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
            _attendance_bars(top, report, months)
            _people_lines(bottom, report, months)
        metadata: dict[str, Any] = {"Date": None} if fmt == "svg" else {}
        with warnings.catch_warnings():
            # A name with a character no installed font has (some emoji) is drawn with a box for it.
            warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
            fig.savefig(out, format=fmt, dpi=150, metadata=metadata)


def _legend_columns(report: Report) -> int:
    return max(1, -(-len(report.scopes()) // LEGEND_ROWS))


def _covered(wanted: ExportFilter) -> str:
    said = wanted.describe()
    return "every circle" if said == "everything" else said


def _attendance_bars(ax: Axes, report: Report, months: list[str]) -> None:
    positions = range(len(months))
    scopes = report.scopes()
    colours = colormaps["tab20" if len(scopes) > 10 else "tab10"]
    base = [0] * len(months)
    by_key = {(r.month, r.scope): r.attendances for r in report.rows if not r.total}
    for i, scope in enumerate(scopes):
        heights = [by_key.get((m, scope), 0) for m in months]
        turn, colour = divmod(i, colours.N)  # past 20, colours come round again with a hatching
        ax.bar(
            positions,
            heights,
            bottom=base,
            label=plain(scope, LABEL_LENGTH),
            color=colours(colour),
            hatch=HATCHES[turn % len(HATCHES)],
            edgecolor="white" if turn else None,
            linewidth=0,
        )
        base = [b + h for b, h in zip(base, heights, strict=True)]
    for x, height in zip(positions, base, strict=True):
        if height:
            ax.annotate(f"{height:,}", (x, height), xytext=(0, 2), textcoords="offset points", ha="center", va="bottom")
    ax.set_ylabel("attendances")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, max(base) * 1.12 + 1)
    ax.set_title(f"Attendances per month, by {report.by}", loc="left", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    columns = _legend_columns(report)
    ax.legend(
        title=report.by,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        title_fontsize=8,
        frameon=False,
        ncols=columns,
        reverse=columns == 1,  # the same order as the stack
    )


def _people_lines(ax: Axes, report: Report, months: list[str]) -> None:
    positions = list(range(len(months)))
    totals = report.totals()

    quiet = float("nan")  # a month without circles has nobody in it, and no circle size
    unique = [float(totals[m].unique) if m in totals else 0.0 for m in months]
    returning = [float(totals[m].returning) if m in totals else 0.0 for m in months]
    size = [totals[m].average_size if m in totals else quiet for m in months]
    ax.plot(positions, unique, marker="o", label="unique participants", color="tab:blue")
    ax.plot(positions, returning, marker="s", label="returning participants", color="tab:green")
    ax.set_ylabel("people")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(bottom=0, top=max([v for v in unique if v == v] + [1.0]) * HEADROOM)
    ax.grid(axis="y", alpha=0.3)
    right = ax.twinx()
    right.plot(positions, size, marker="^", linestyle="--", label="average circle size", color="tab:orange")
    right.set_ylabel("average circle size")
    right.set_ylim(bottom=0, top=max([v for v in size if v == v] + [1.0]) * HEADROOM)
    everything = ALL[report.by] if len(report.scopes()) > 1 else plain(report.scopes()[0], LABEL_LENGTH)
    ax.set_title(f"People per month: {everything}", loc="left", fontsize=10)
    handles = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], loc="upper left", fontsize=8, framealpha=0.9)
    ax.set_xticks(
        positions, months, rotation=45 if len(months) > 12 else 0, ha="right" if len(months) > 12 else "center"
    )
    ax.set_xlim(-0.6, len(months) - 0.4)


# ---------------------------------------------------------------------------------- start to finish


@dataclass(frozen=True, slots=True)
class Written:
    """What ``run`` wrote."""

    report: Report
    chart: str
    table: str


def run(
    engine: Engine,
    by: Scope,
    wanted: ExportFilter,
    chart: str,
    fmt: ChartFormat,
    table: str,
    stdout: TextIO,
) -> Written:
    """Build the report, write the chart and the CSV table (an ordinary file whole or not at all,
    a device or a link as it is: see :mod:`facilitator.exports.outputs`), then print the table
    to ``stdout``."""
    with engine.connect() as conn:
        found = build(conn, by, wanted)
    with destination(chart) as chart_out, destination(table) as table_out:
        draw(found, chart_out, fmt)
        write_table_csv(found, table_out)
    stdout.write(text_table(found))
    return Written(found, chart, table)
