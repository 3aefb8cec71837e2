"""The three shapes of an attendance export, each a header and a stream of rows.

- ``attendance``: one row per time someone was in a circle.
- ``circle``: one row per circle: date, length, size, facilitator, passes.
- ``person``: one row per named person: circles attended, minutes, first and last date;
  anonymous attendance is one last row that counts it (never a person).

Rows come from the database in chunks (``yield_per``): an export of millions of rows holds a
few thousand at a time. Times are written in the group's own time zone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, case, func, literal, select
from sqlalchemy.engine import Connection

from facilitator.exports.cells import CsvCells
from facilitator.exports.filters import CIRCLE_TIME, ExportFilter, GroupRow, circle_clause, matching_groups
from facilitator.storage.tables import attendance_table as attendance
from facilitator.storage.tables import circles_table as circles
from facilitator.storage.tables import members_table as members

Level = Literal["attendance", "circle", "person"]
LEVELS: tuple[Level, ...] = ("attendance", "circle", "person")
CHUNK = 2000
IdRange = tuple[int, int]
"""The first and last attendance id of a range, both included."""

Kind = Literal["text", "number", "date", "datetime"]


@dataclass(frozen=True, slots=True)
class Column:
    """A column: its heading, what kind of value it holds, and whether people typed it."""

    name: str
    kind: Kind = "text"
    typed: bool = False
    """Text someone typed (a display name, a group's name): neutralised in spreadsheets."""


@dataclass(frozen=True, slots=True)
class Table:
    """An export: its columns, how many rows to expect (for a progress bar) and the rows."""

    level: Level
    columns: tuple[Column, ...]
    total: int
    rows: Iterator[tuple[Any, ...]]
    lines: Iterator[str] | None = None
    """The same rows as finished CSV lines, where a level writes them faster itself (the
    attendance level: millions of rows); exactly what the CSV writer makes of ``rows``. Only
    one of ``rows`` and ``lines`` is read."""


_PLACE = (
    Column("group", typed=True),
    Column("region", typed=True),
    Column("sector", typed=True),
    Column("platform"),
    Column("script", typed=True),
)

ATTENDANCE_COLUMNS = (
    Column("circle"),
    Column("date", "date"),
    *_PLACE,
    Column("person", typed=True),
    Column("person_ref", "number"),
    Column("anonymous"),
    Column("joined", "datetime"),
    Column("left", "datetime"),
    Column("minutes", "number"),
    Column("turns_spoken", "number"),
    Column("turns_passed", "number"),
    Column("timezone"),
)
CIRCLE_COLUMNS = (
    Column("circle"),
    Column("date", "date"),
    Column("started", "datetime"),
    *_PLACE,
    Column("title", typed=True),
    Column("minutes", "number"),
    Column("size", "number"),
    Column("named", "number"),
    Column("anonymous", "number"),
    Column("facilitator", typed=True),
    Column("turns_spoken", "number"),
    Column("passes", "number"),
    Column("timezone"),
)
PERSON_COLUMNS = (
    Column("person", typed=True),
    Column("person_ref", "number"),
    Column("platform"),
    Column("circles", "number"),
    Column("minutes", "number"),
    Column("first", "date"),
    Column("last", "date"),
)
ANONYMOUS_LABEL = "Anonymous attendance (counted, not named)"


CACHE_LIMIT = 4096
"""Entries a :class:`LocalTimes` cache holds before it starts again (memory stays flat)."""
_MINUTES = tuple(f"{m:02d}" for m in range(60))


class LocalTimes:
    """Timestamps as local text in a zone, fast enough for millions of rows.

    The zone's offset is looked up once per quarter hour (every real zone changes its
    offset on a quarter-hour boundary of UTC), each local hour's text once and each day's
    date text once. Each cache is emptied when it reaches :data:`CACHE_LIMIT` entries (rows
    come in time order, so what is dropped is rarely needed again)."""

    def __init__(self) -> None:
        self._offsets: dict[str, dict[int, int]] = {}
        self._days: dict[int, str] = {}
        self._hours: dict[int, tuple[str, str]] = {}

    def offsets(self, tz: ZoneInfo) -> dict[int, int]:
        """The zone's offsets in seconds by UTC quarter hour (``int(at) // 900``), as far as
        looked up; :meth:`offset` fills it in."""
        found = self._offsets.get(tz.key)
        if found is None:
            found = self._offsets[tz.key] = {}
        return found

    def offset(self, tz: ZoneInfo, bucket: int) -> int:
        """The zone's offset in seconds during the UTC quarter hour ``bucket``, now kept."""
        offsets = self.offsets(tz)
        if len(offsets) >= CACHE_LIMIT:
            offsets.clear()
        delta = datetime.fromtimestamp(bucket * 900, tz).utcoffset()  # as .astimezone(tz) of the UTC time
        offset = offsets[bucket] = int(delta.total_seconds()) if delta is not None else 0
        return offset

    def _local(self, tz: ZoneInfo, at: float) -> int:
        seconds = int(at)
        offset = self.offsets(tz).get(seconds // 900)
        if offset is None:
            offset = self.offset(tz, seconds // 900)
        return seconds + offset

    def _day(self, local: int) -> str:
        number = local // 86400
        text = self._days.get(number)
        if text is None:
            if len(self._days) >= CACHE_LIMIT:
                self._days.clear()
            text = self._days[number] = datetime.fromtimestamp(number * 86400, UTC).strftime("%Y-%m-%d")
        return text

    def hour(self, number: int) -> tuple[str, str]:
        """The local hour ``number`` (local seconds // 3600): its date and ``YYYY-MM-DD HH:``."""
        found = self._hours.get(number)
        if found is None:
            if len(self._hours) >= CACHE_LIMIT:
                self._hours.clear()
            day = self._day(number * 3600)
            found = self._hours[number] = (day, f"{day} {number % 24:02d}:")
        return found

    def day(self, tz: ZoneInfo, at: float | None) -> str:
        """``YYYY-MM-DD`` in ``tz`` ('' for no time)."""
        if at is None:
            return ""
        return self._day(self._local(tz, at))

    def minute(self, tz: ZoneInfo, at: float | None) -> str:
        """``YYYY-MM-DD HH:MM`` in ``tz`` ('' for no time)."""
        if at is None:
            return ""
        local = self._local(tz, at)
        return self.hour(local // 3600)[1] + _MINUTES[local % 3600 // 60]


_TENTHS = tuple(f"{k // 10}.{k % 10}" for k in range(10000))
"""``str(k / 10)`` for k from 0 to 9999: the text of minutes to one decimal place."""
_CLEAR = 1e-6
"""How far from halfway between two tenths a stay's minutes must be for the quick text."""


def minutes_text(start: float, end: float) -> str:
    """``str(round((end - start) / 60.0, 1))``, the same text, quicker (the attendance CSV's
    hot loop inlines it). ``round(x, 1)`` rounds the float's exact value to the nearest tenth,
    and ``str`` of the result is that tenth's shortest text, ``K.k``. Ten times the minutes,
    (end - start) / 6, is within a few units in the last place of ten times the float
    ``round`` sees, so when it lies clearly between two halves (not within 10^-6 of
    one) both round it to the same whole number of tenths. Otherwise (a near tie, zero, a negative
    or an enormous stay) ``round`` decides."""
    tens = (end - start) / 6.0
    whole = int(tens + 0.5)
    part = tens + 0.5 - whole
    if tens > _CLEAR and whole < 10000 and _CLEAR < part < 1.0 - _CLEAR:
        return _TENTHS[whole]
    return str(round((end - start) / 60.0, 1))


def minutes(start: float | None, end: float | None) -> float | None:
    """Minutes between two times, to one decimal place (None while one is missing)."""
    if start is None or end is None:
        return None
    return round((end - start) / 60.0, 1)


def table(
    conn: Connection, level: Level, wanted: ExportFilter, *, count: bool = True, ids: IdRange | None = None
) -> Table:
    """The export ``level`` of what ``wanted`` covers, ready to stream.

    ``count=False``: no progress bar will be drawn, so the rows are not counted first (a query
    of its own, seconds on millions of rows) and ``total`` is 0. ``ids``: only the attendance
    rows whose id is in this range, both ends included (the attendance level only: an export
    shared between processes gives each a range)."""
    found = matching_groups(conn, wanted)
    if level == "attendance":
        return _attendance(conn, found, wanted, count, ids)
    if ids is not None:
        raise ValueError(f"only the attendance level is split by id, not the {level} level")
    if level == "circle":
        return _circles(conn, found, wanted, count)
    return _people(conn, found, wanted, count)


def _count(conn: Connection, query: Select[Any]) -> int:
    return int(conn.execute(select(func.count()).select_from(query.order_by(None).subquery())).scalar() or 0)


def _stream(conn: Connection, query: Select[Any]) -> Iterator[Any]:
    result = conn.execution_options(stream_results=True, yield_per=CHUNK).execute(query)
    for chunk in result.partitions():
        yield from chunk


def attendance_ids(conn: Connection) -> IdRange | None:
    """The lowest and highest attendance id there is (None for no attendance): read from the key's
    index, at once however many rows there are."""
    # Two queries in one: SQLite reads min() and max() from the index only when each is alone.
    low, high = conn.execute(
        select(select(func.min(attendance.c.id)).scalar_subquery(), select(func.max(attendance.c.id)).scalar_subquery())
    ).one()
    return None if low is None or high is None else (int(low), int(high))


def matching_ids(conn: Connection, wanted: ExportFilter, at_least: int) -> IdRange | None:
    """The lowest and highest id of the attendance rows ``wanted`` matches, if it matches at least
    ``at_least`` of them (one pass over them in the database)."""
    found = matching_groups(conn, wanted)
    low, high, count = conn.execute(
        select(func.min(attendance.c.id), func.max(attendance.c.id), func.count())
        .select_from(attendance.join(circles, circles.c.id == attendance.c.circle_id))
        .where(_attendance_clause(found, wanted, None))
    ).one()
    if low is None or high is None or count < at_least:
        return None
    return int(low), int(high)


def _attendance_clause(found: dict[int, GroupRow], wanted: ExportFilter, ids: IdRange | None) -> ColumnElement[bool]:
    where = circle_clause(found, wanted)
    return where if ids is None else where & attendance.c.id.between(*ids)


def attendance_query(found: dict[int, GroupRow], wanted: ExportFilter, ids: IdRange | None = None) -> Select[Any]:
    """One row per attendance, in the order of their ids; only ids in ``ids`` if given (the
    benchmark runs the same query, without ``ids``, through the sqlite3 tool)."""
    return (
        select(
            circles.c.id,
            circles.c.group_id,
            circles.c.script_name,
            members.c.display_name,
            attendance.c.member_id,
            attendance.c.anonymous,
            attendance.c.joined_at,
            attendance.c.left_at,
            attendance.c.turns_spoken,
            attendance.c.turns_passed,
            CIRCLE_TIME,
        )
        .select_from(
            attendance.join(circles, circles.c.id == attendance.c.circle_id).outerjoin(
                members, members.c.id == attendance.c.member_id
            )
        )
        .where(_attendance_clause(found, wanted, ids))
        .order_by(attendance.c.id)
    )


def _chunks(conn: Connection, query: Select[Any]) -> Iterator[Sequence[Any]]:
    """The rows of ``query``, :data:`CHUNK` at a time. On SQLite, as the driver gives them: plain
    tuples, no ``Row`` objects or result processing (reading is half as long again with them; the
    attendance level's columns need none, being text, numbers and a flag read for its truth),
    and the driver steps through the result as it is fetched, so memory stays flat. Streaming
    options are turned off for the statement (they may be on for ``conn``: :func:`_stream` sets
    them): with them SQLAlchemy would take rows from the cursor ahead of it. Elsewhere, as
    :func:`_stream` gives them."""
    if conn.dialect.name != "sqlite":
        result = conn.execution_options(stream_results=True, yield_per=CHUNK).execute(query)
        yield from result.partitions()
        return
    result = conn.execute(query, execution_options={"stream_results": False, "yield_per": None})
    try:
        cursor = result.cursor
        while chunk := cursor.fetchmany(CHUNK):
            yield chunk
    finally:
        result.close()


def _attendance(
    conn: Connection, found: dict[int, GroupRow], wanted: ExportFilter, counting: bool, ids: IdRange | None
) -> Table:
    query = attendance_query(found, wanted, ids)
    times = LocalTimes()

    def rows() -> Iterator[tuple[Any, ...]]:
        # For XLSX and JSON (typed values); CSV is written by lines(), the hot loop.
        places = {g.id: (g.name, g.region, g.sector, g.platform, g.timezone, g.timezone.key) for g in found.values()}
        last_circle: Any = None
        day = ""
        for chunk in _chunks(conn, query):
            for circle_id, group_id, script, name, member_id, anonymous, joined, left, spoken, passed, held in chunk:
                group, region, sector, platform, tz, key = places[group_id]
                if circle_id != last_circle:
                    # The date is the circle's (the one the date filter chose it by), not the join's:
                    # someone who joined at 23:55 a circle that began at 00:05 is in that day's circle.
                    last_circle = circle_id
                    day = times.day(tz, held)
                named = not anonymous and member_id is not None
                yield (
                    circle_id,
                    day,
                    group,
                    region,
                    sector,
                    platform,
                    script,
                    (name or "") if named else "",
                    member_id if named else None,
                    "no" if named else "yes",
                    times.minute(tz, joined),
                    times.minute(tz, left),
                    minutes(joined, left),
                    spoken,
                    passed,
                    key,
                )

    def lines() -> Iterator[str]:
        # The same rows as CSV lines, exactly as csv.writer writes rows() with the typed cells
        # neutralised, for millions of rows: what is the same for a whole circle (its id, date,
        # group, script and zone) is found once per circle, each typed cell once per text
        # (CsvCells), and LocalTimes.minute and minutes_text are written out here, not called.
        cells = CsvCells()
        zones = {g.id: (g.timezone, times.offsets(g.timezone)) for g in found.values()}
        places = {
            g.id: (
                f"{cells.text(g.name)},{cells.text(g.region)},{cells.text(g.sector)},{cells.plain(g.platform)},",
                cells.plain(g.timezone.key),
            )
            for g in found.values()
        }
        hours = times._hours
        names = cells.typed
        tenths = _TENTHS
        last_circle: Any = None
        before = key = ""
        tz, offsets = ZoneInfo("UTC"), times.offsets(ZoneInfo("UTC"))
        for chunk in _chunks(conn, query):
            for circle_id, group_id, script, name, member_id, anonymous, joined, left, spoken, passed, held in chunk:
                if circle_id != last_circle:
                    last_circle = circle_id
                    tz, offsets = zones[group_id]
                    place, key = places[group_id]
                    before = f"{cells.plain(circle_id)},{times.day(tz, held)},{place}{cells.text(script)},"
                if joined is None:
                    start = ""
                else:
                    seconds = int(joined)
                    offset = offsets.get(seconds // 900)
                    if offset is None:
                        offset = times.offset(tz, seconds // 900)
                    local = seconds + offset
                    start = (hours.get(local // 3600) or times.hour(local // 3600))[1] + _MINUTES[local % 3600 // 60]
                if left is None:
                    end = ""
                else:
                    seconds = int(left)
                    offset = offsets.get(seconds // 900)
                    if offset is None:
                        offset = times.offset(tz, seconds // 900)
                    local = seconds + offset
                    end = (hours.get(local // 3600) or times.hour(local // 3600))[1] + _MINUTES[local % 3600 // 60]
                if joined is None or left is None:
                    span = ""
                else:
                    # str(round(minutes, 1)), as the csv module writes the rows' value, without
                    # round()'s cost (a decimal conversion): see minutes_text.
                    tens = (left - joined) / 6.0
                    whole = int(tens + 0.5)
                    part = tens + 0.5 - whole
                    if tens > _CLEAR and whole < 10000 and _CLEAR < part < 1.0 - _CLEAR:
                        span = tenths[whole]
                    else:
                        span = str(round((left - joined) / 60.0, 1))
                if anonymous or member_id is None:
                    yield f"{before},,yes,{start},{end},{span},{spoken},{passed},{key}\r\n"
                else:
                    person = names.get(name) or cells.text(name or "")
                    yield f"{before}{person},{member_id},no,{start},{end},{span},{spoken},{passed},{key}\r\n"

    # Counted without the join to member (it never adds or drops a row: member.id is its key).
    counted = select(func.count()).select_from(attendance.join(circles, circles.c.id == attendance.c.circle_id))
    total = int(conn.execute(counted.where(_attendance_clause(found, wanted, ids))).scalar() or 0) if counting else 0
    return Table("attendance", ATTENDANCE_COLUMNS, total, rows(), lines())


def _circles(conn: Connection, found: dict[int, GroupRow], wanted: ExportFilter, counting: bool) -> Table:
    facilitator = members.alias("facilitator")
    seat = func.coalesce(attendance.c.seat, func.cast(attendance.c.id, circles.c.id.type))
    query = (
        select(
            circles.c.id,
            circles.c.group_id,
            circles.c.script_name,
            circles.c.title,
            CIRCLE_TIME.label("at"),
            circles.c.started_at,
            circles.c.ended_at,
            facilitator.c.display_name,
            func.count(func.distinct(seat)),
            func.count(func.distinct(case((attendance.c.anonymous, seat), else_=literal(None)))),
            func.coalesce(func.sum(attendance.c.turns_spoken), 0),
            func.coalesce(func.sum(attendance.c.turns_passed), 0),
        )
        .select_from(
            circles.outerjoin(attendance, attendance.c.circle_id == circles.c.id).outerjoin(
                facilitator, facilitator.c.id == circles.c.facilitator_id
            )
        )
        .where(circle_clause(found, wanted))
        .group_by(
            circles.c.id,
            circles.c.group_id,
            circles.c.script_name,
            circles.c.title,
            circles.c.started_at,
            circles.c.opened_at,
            circles.c.ended_at,
            facilitator.c.display_name,
        )
        .order_by(CIRCLE_TIME, circles.c.id)
    )
    times = LocalTimes()

    def rows() -> Iterator[tuple[Any, ...]]:
        for circle_id, group_id, script, title, at, started, ended, fac, size, anonymous, spoken, passed in _stream(
            conn, query
        ):
            g = found[group_id]
            yield (
                circle_id,
                times.day(g.timezone, at),
                times.minute(g.timezone, started),
                g.name,
                g.region,
                g.sector,
                g.platform,
                script,
                title,
                minutes(started, ended),
                size,
                size - anonymous,
                anonymous,
                fac or "",
                spoken,
                passed,
                g.timezone.key,
            )

    counted = select(circles.c.id).where(circle_clause(found, wanted))
    return Table("circle", CIRCLE_COLUMNS, _count(conn, counted) if counting else 0, rows())


def _people(conn: Connection, found: dict[int, GroupRow], wanted: ExportFilter, counting: bool) -> Table:
    named = (attendance.c.anonymous.is_(False)) & attendance.c.member_id.is_not(None)
    span = attendance.c.left_at - attendance.c.joined_at
    base = (
        select(
            attendance.c.member_id,
            members.c.display_name,
            members.c.platform,
            circles.c.group_id,
            func.count(func.distinct(attendance.c.circle_id)),
            func.sum(span),
            func.min(attendance.c.joined_at),
            func.max(attendance.c.joined_at),
        )
        .select_from(
            attendance.join(circles, circles.c.id == attendance.c.circle_id).outerjoin(
                members, members.c.id == attendance.c.member_id
            )
        )
        .where(circle_clause(found, wanted))
    )
    people = (
        base.where(named)
        .group_by(attendance.c.member_id, members.c.display_name, members.c.platform, circles.c.group_id)
        .order_by(attendance.c.member_id, circles.c.group_id)
    )
    anonymous = (
        select(
            circles.c.group_id,
            # circles, as for a named person: someone who stepped out and back in is one seat
            func.count(func.distinct(attendance.c.circle_id.concat(func.coalesce(attendance.c.seat, "")))),
            func.sum(span),
            func.min(attendance.c.joined_at),
            func.max(attendance.c.joined_at),
        )
        .select_from(attendance.join(circles, circles.c.id == attendance.c.circle_id))
        .where(circle_clause(found, wanted), ~named)
        .group_by(circles.c.group_id)
    )
    times = LocalTimes()

    def rows() -> Iterator[tuple[Any, ...]]:
        current: _Tally | None = None
        for member_id, name, platform, group_id, count, seconds, first, last in _stream(conn, people):
            if current is None or current.ref != member_id:
                if current is not None:
                    yield current.row(times)
                current = _Tally(member_id, name or "", platform)
            current.add(found[group_id].timezone, count, seconds, first, last)
        if current is not None:
            yield current.row(times)
        total = _Tally(None, ANONYMOUS_LABEL, "")
        for group_id, count, seconds, first, last in conn.execute(anonymous):
            total.add(found[group_id].timezone, count, seconds, first, last)
        if total.count:
            yield total.row(times)

    counted = select(attendance.c.member_id).select_from(
        attendance.join(circles, circles.c.id == attendance.c.circle_id)
    )
    distinct = counted.where(circle_clause(found, wanted), named).distinct()
    return Table("person", PERSON_COLUMNS, _count(conn, distinct) + 1 if counting else 0, rows())


@dataclass(slots=True)
class _Tally:
    """One person's attendance summed over the groups they attended (or all anonymous attendance)."""

    ref: int | None
    name: str
    platform: str
    count: int = 0
    seconds: float = 0.0
    first: tuple[float, ZoneInfo] | None = None
    last: tuple[float, ZoneInfo] | None = None

    def add(self, tz: ZoneInfo, count: int, seconds: float | None, first: float | None, last: float | None) -> None:
        self.count += count
        self.seconds += seconds or 0.0
        if first is not None and (self.first is None or first < self.first[0]):
            self.first = (first, tz)
        if last is not None and (self.last is None or last > self.last[0]):
            self.last = (last, tz)

    def row(self, times: LocalTimes) -> tuple[Any, ...]:
        first = times.day(self.first[1], self.first[0]) if self.first else ""
        last = times.day(self.last[1], self.last[0]) if self.last else ""
        return (self.name, self.ref, self.platform, self.count, round(self.seconds / 60.0, 1), first, last)
