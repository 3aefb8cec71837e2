"""Which circles an export or report covers: by group, region, sector, platform, script and date.

Dates are local dates in each group's own time zone (a circle at 23:30 in London on 31 March is
a March circle there, whatever UTC says): :func:`circle_clause` turns a date range into UTC
bounds once per time zone, so the database still filters by an index on the start time.

``group_ids`` narrows everything to the groups a coordinator may see (see
:mod:`facilitator.exports.access`); ``None`` means every group (the database's administrator).
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, and_, false, func, or_, select, true
from sqlalchemy.engine import Connection

from facilitator.storage.tables import circles_table as circles
from facilitator.storage.tables import groups_table as groups

CIRCLE_TIME = func.coalesce(circles.c.started_at, circles.c.opened_at)
"""When a circle counts as having happened: when it began, or was opened if it never began."""


@dataclass(frozen=True, slots=True)
class ExportFilter:
    """What to include; empty tuples mean "any"."""

    groups: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    sectors: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    scripts: tuple[str, ...] = ()
    since: date | None = None
    """First local date included."""
    until: date | None = None
    """Last local date included."""
    group_ids: frozenset[int] | None = None
    """Only these groups (a coordinator's); None: no restriction."""

    def describe(self) -> str:
        """The filter in words, for a file's heading or a progress line."""
        parts = [
            f"{label} {', '.join(values)}"
            for label, values in (
                ("group", self.groups),
                ("region", self.regions),
                ("sector", self.sectors),
                ("platform", self.platforms),
                ("script", self.scripts),
            )
            if values
        ]
        if self.since or self.until:
            parts.append(f"from {self.since or 'the start'} to {self.until or 'today'}")
        return "; ".join(parts) or "everything"


EVERYTHING = ExportFilter()
"""The filter that leaves nothing out."""


@dataclass(frozen=True, slots=True)
class GroupRow:
    """A group as exports show it."""

    id: int
    name: str
    region: str
    sector: str
    platform: str
    timezone: ZoneInfo


def zone(name: str | None) -> ZoneInfo:
    """The time zone called ``name``; UTC if it is unknown (a bad stored value never stops an export)."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def group_name(name: str | None, room: str) -> str:
    """A group's name for people: its configured name, else its room."""
    return name or room


def matching_groups(conn: Connection, wanted: ExportFilter) -> dict[int, GroupRow]:
    """The groups ``wanted`` covers, by id."""
    query = select(groups)
    if wanted.group_ids is not None:
        query = query.where(groups.c.id.in_(sorted(wanted.group_ids)))
    if wanted.groups:
        names = list(wanted.groups)
        query = query.where(or_(groups.c.name.in_(names), and_(groups.c.name.is_(None), groups.c.room.in_(names))))
    for column, values in ((groups.c.region, wanted.regions), (groups.c.sector, wanted.sectors)):
        if values:
            query = query.where(column.in_(list(values)))
    if wanted.platforms:
        query = query.where(groups.c.platform.in_(list(wanted.platforms)))
    return {
        row.id: GroupRow(
            row.id,
            group_name(row.name, row.room),
            row.region or "",
            row.sector or "",
            row.platform,
            zone(row.timezone),
        )
        for row in conn.execute(query)
    }


def local_day_bounds(day_from: date | None, day_to: date | None, tz: ZoneInfo) -> tuple[float | None, float | None]:
    """UTC timestamps [start, end) of the local dates ``day_from`` .. ``day_to`` (inclusive) in ``tz``."""
    start = datetime.combine(day_from, time(0), tz).timestamp() if day_from else None
    end = datetime.combine(day_to + timedelta(days=1), time(0), tz).timestamp() if day_to else None
    return start, end


def circle_clause(found: dict[int, GroupRow], wanted: ExportFilter) -> ColumnElement[bool]:
    """A WHERE clause on ``circle`` for the groups found, the scripts and the local date range."""
    if not found:
        return false()
    highest = max(found)
    if wanted == EVERYTHING and len(found) == highest and min(found) == 1:
        # Every group, ids 1 to the highest with none missing: said as a bound on the ids (a
        # group made since has a higher id, and is left out as a filter would leave it), which
        # lets the database read attendance in the order of its ids instead of circle by circle
        # and then sorting them all. (A range with a lower end too would bring the sort back.)
        bounded: ColumnElement[bool] = circles.c.group_id <= highest
        return bounded
    by_zone: dict[str, list[int]] = defaultdict(list)
    for group in found.values():
        by_zone[group.timezone.key].append(group.id)
    parts = []
    for key, ids in sorted(by_zone.items()):
        clause: list[ColumnElement[bool]] = [circles.c.group_id.in_(sorted(ids))]
        start, end = local_day_bounds(wanted.since, wanted.until, ZoneInfo(key))
        if start is not None:
            clause.append(start <= CIRCLE_TIME)
        if end is not None:
            clause.append(end > CIRCLE_TIME)
        parts.append(and_(*clause))
    where = or_(*parts)
    if wanted.scripts:
        where = and_(where, circles.c.script_name.in_(list(wanted.scripts)))
    return and_(where, true())


def parse_day(text: str, what: str) -> date:
    """A ``YYYY-MM-DD`` date, or a ValueError that says what to type."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{what} {text[:40]!r} is not a date: write it as YYYY-MM-DD, like 2026-03-31") from None
    if not 1970 <= day.year <= 9998:
        raise ValueError(f"{what} {text!r} is out of range: use a year from 1970 to 9998")
    return day


def split_values(values: Sequence[str], known: Collection[str] = ()) -> tuple[str, ...]:
    """Values given as repeated options or comma-separated, trimmed, empty ones dropped. A value
    that is a ``known`` name as a whole stays whole ("Leeds, Bradford and Wakefield")."""
    found: list[str] = []
    for value in values:
        whole = value.strip()
        if whole in known:
            found.append(whole)
        else:
            found.extend(v.strip() for v in value.split(",") if v.strip())
    return tuple(found)


FILTERED = ("group", "region", "sector", "platform", "script")
"""What an export can be filtered by, as the options name it (``--group``...)."""


def known_values(conn: Connection, group_ids: frozenset[int] | None = None) -> dict[str, list[str]]:
    """The names each filter can match in this database (among ``group_ids`` if given), sorted."""
    where = groups.c.id.in_(sorted(group_ids)) if group_ids is not None else true()
    found: dict[str, set[str]] = {kind: set() for kind in FILTERED}
    for row in conn.execute(
        select(groups.c.name, groups.c.room, groups.c.region, groups.c.sector, groups.c.platform).where(where)
    ):
        found["group"].add(group_name(row.name, row.room))
        found["region"].update([row.region] if row.region else [])
        found["sector"].update([row.sector] if row.sector else [])
        found["platform"].add(row.platform)
    used = select(circles.c.script_name).where(circles.c.group_id.in_(select(groups.c.id).where(where))).distinct()
    found["script"].update(name for (name,) in conn.execute(used) if name)
    return {kind: sorted(names) for kind, names in found.items()}


def unknown_value(kind: str, value: str, known: Sequence[str]) -> str:
    """A sentence for a filter value that matches nothing here, naming what would."""
    if not known:
        return f"--{kind} {value}: no circle here has a {kind} at all"
    shown = ", ".join(known[:12]) + (f" and {len(known) - 12} more" if len(known) > 12 else "")
    close = difflib.get_close_matches(value, known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"--{kind} {value}: no {kind} of that name here; {hint}{kind}s here: {shown}"
