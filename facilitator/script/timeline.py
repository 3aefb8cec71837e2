"""When each phase of a script starts and how long it runs, as a facilitator plans it.

Rounds have no fixed length: each holder of the talking piece may use up to ``turn``.
Their length is estimated as turn × speakers × rounds, where the speakers are the role
holders named in ``speakers`` or else ``expected_participants``, and marked as an estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

from facilitator.script.durations import format_clock, format_duration
from facilitator.script.models import RoundPhase, Script, planned_length

__all__ = ["TimelineRow", "format_timeline", "timeline"]

_NAME_WIDTH = 32


@dataclass(frozen=True)
class TimelineRow:
    """One phase on the timeline; ``start`` and ``length`` are in seconds."""

    index: int
    """1-based phase number, as error messages and people count them."""
    kind: str
    name: str
    start: int
    length: int
    note: str = ""
    estimated: bool = False


def timeline(script: Script) -> list[TimelineRow]:
    """The phases of ``script`` laid end to end from offset 0."""
    rows: list[TimelineRow] = []
    start = 0
    for index, phase in enumerate(script.phases, start=1):
        length = planned_length(phase, script.expected_participants)
        if isinstance(phase, RoundPhase):
            speakers = len(phase.speakers) if phase.speakers else script.expected_participants
            note = f"{speakers} × {format_duration(phase.turn)}"
            if phase.rounds > 1:
                note += f" × {phase.rounds} rounds"
            if phase.speakers:
                note += f", {', '.join(phase.speakers)} only"
            rows.append(TimelineRow(index, phase.kind, phase.name, start, length, f"{note} (estimate)", True))
        else:
            rows.append(TimelineRow(index, phase.kind, phase.name, start, length))
        start += length
    return rows


def format_timeline(script: Script, path: str = "") -> str:
    """A readable table of the phases with start offsets (m:ss), lengths and the total.

    With ``path``, a first line names the script and its file.
    """
    rows = timeline(script)
    total = sum(row.length for row in rows)
    names = [_clip(row.name) for row in rows]
    name_width = max([len("name"), *map(len, names)])
    kind_width = max([len("kind"), *(len(row.kind) for row in rows)])
    start_width = max(len(format_clock(offset)) for offset in [total, *(row.start for row in rows)])
    lengths = [format_duration(row.length) for row in rows]
    length_width = max([len("length"), len(format_duration(total)), *map(len, lengths)])
    number_width = len(str(len(rows)))

    def line(number: str, kind: str, name: str, start: str, length: str, note: str) -> str:
        cells = [
            number.rjust(number_width),
            kind.ljust(kind_width),
            name.ljust(name_width),
            start.rjust(start_width),
            length.ljust(length_width),
            note,
        ]
        return "  ".join(cells).rstrip()

    lines = [f"{script.title} ({path})"] if path else []
    lines.append(line("#", "kind", "name", "start", "length", ""))
    for row, name, length in zip(rows, names, lengths, strict=True):
        lines.append(line(str(row.index), row.kind, name, format_clock(row.start), length, row.note))
    about = "  (about: rounds are estimated)" if any(row.estimated for row in rows) else ""
    lines.append(line("", "", "total", format_clock(total), format_duration(total), "") + about)
    return "\n".join(lines)


def _clip(name: str) -> str:
    return name if len(name) <= _NAME_WIDTH else name[: _NAME_WIDTH - 1] + "…"
