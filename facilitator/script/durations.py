"""Durations as a facilitator writes them: ``"90s"``, ``"5m"``, ``"1h30m"``.

A bare number is refused on purpose: ``5`` could mean seconds or minutes, and a circle
that runs five seconds instead of five minutes is a real harm to the people in it.
"""

from __future__ import annotations

import re

DURATION_PATTERN = r"^(?=.*\d)\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$"
_DURATION_RE = re.compile(DURATION_PATTERN)
DURATION_HINT = 'write a duration with a unit, like "90s", "5m" or "1h30m"'


class DurationError(ValueError):
    """A duration that cannot be read; the message says how to write one."""


def parse_duration(value: object) -> int:
    """Return the number of whole seconds in ``value``, or raise :class:`DurationError`."""
    if isinstance(value, bool):
        raise DurationError(f"{value!r} is not a duration; {DURATION_HINT}")
    if isinstance(value, int):
        raise DurationError(f"{value} has no unit; {DURATION_HINT}")
    if not isinstance(value, str):
        raise DurationError(f"{value!r} is not a duration; {DURATION_HINT}")
    match = _DURATION_RE.match(value)
    if not match or not any(match.groups()):
        raise DurationError(f"{value!r} is not a duration; {DURATION_HINT}")
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def format_duration(seconds: float) -> str:
    """Format seconds the way people say them: ``"1h 5m"``, ``"4m 30s"``, ``"45s"``."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if secs or not parts:
        parts.append(f"{secs}s")
    return " ".join(parts)


def format_clock(seconds: float) -> str:
    """Format seconds left as ``m:ss`` (or ``h:mm:ss``), as a timer shows them."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"
