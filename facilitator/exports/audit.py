"""The consent ledger as an auditor reads it: every entry, oldest first, nothing left out.

Each line says when (UTC), what (given, withdrawn, erased), to which text (``agreement`` or
``attendance``, its SHA-256 and version), who (name and platform id; ``anonymous`` for an
anonymous attendee; ``(erased)`` once a person was forgotten), where (group, room, circle,
platform) and on which lawful basis.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any, TextIO

from facilitator.exports.cells import neutralised
from facilitator.exports.levels import Column, Table
from facilitator.storage.rights import ERASED_PREFIX, ledger
from facilitator.storage.store import Store

LEDGER_COLUMNS = (
    Column("entry", "number"),
    Column("at_utc"),
    Column("decision"),
    Column("scope"),
    Column("person", typed=True),
    Column("platform_id", typed=True),
    Column("text_sha256"),
    Column("text_version", typed=True),
    Column("group", typed=True),
    Column("room", typed=True),
    Column("circle"),
    Column("via"),
    Column("lawful_basis"),
)


def _who(entry: dict[str, Any]) -> tuple[str, str]:
    key = entry["key"] or ""
    if entry["anonymous"]:
        return "anonymous", ""
    if key.startswith(ERASED_PREFIX):
        return "(erased)", ""
    return entry["display_name"] or "", key


def ledger_table(store: Store, since: float | None = None, until: float | None = None) -> Table:
    """The ledger between two UTC times as an export table (the writers take it as it is)."""
    entries = ledger(store, since, until)

    def rows() -> Iterator[tuple[Any, ...]]:
        for e in entries:
            person, key = _who(e)
            yield (
                e["id"],
                datetime.fromtimestamp(e["at"], UTC).strftime("%Y-%m-%d %H:%M:%S"),
                e["decision"],
                e["scope"],
                person,
                key,
                e["text_hash"],
                e["text_version"],
                e["group"] or "",
                e["room"] or "",
                e["circle_id"] or "",
                e["via"],
                e["lawful_basis"] or "not recorded",
            )

    return Table("attendance", LEDGER_COLUMNS, len(entries), rows())


def write_text(found: Table, out: TextIO, dates: tuple[date | None, date | None] = (None, None)) -> None:
    """One readable line per entry (typed text neutralised: it may be pasted into a spreadsheet)."""
    count = 0
    for row in found.rows:
        (entry, at, decision, scope, person, key, text_hash, version, group, room, circle, via, basis) = (
            neutralised(v) for v in row
        )
        who = f"{person} ({key})" if key else person
        where = f"group {group or room}" + (f", circle {circle}" if circle else "")
        short = f"text {str(text_hash)[:12]} v{version}" if text_hash else "all records"
        out.write(f"#{entry} {at}Z {decision} {scope}: {who}; {short}; {where}; via {via}; basis {basis}\n")
        count += 1
    if not count and dates != (None, None):
        first, last = dates
        out.write(
            f"No entries from {first or 'the start'} to {last or 'today'}: "
            "leave out --since and --until to see the whole ledger.\n"
        )
    elif not count:
        out.write("The consent ledger is empty.\n")
