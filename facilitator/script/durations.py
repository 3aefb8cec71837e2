"""Durations as a facilitator writes them: ``"90s"``, ``"5m"``, ``"1h30m"``.

A bare number is refused on purpose: ``5`` could mean seconds or minutes, and a circle
that runs five seconds instead of five minutes is a real harm to the people in it.

No duration in a script may be longer than :data:`MAX_SECONDS` (24 hours): a phase, a turn,
a silence or a reminder longer than a day is a typo (``100000000000h``), and an absurd one
would put the circle's deadlines past any date a computer can hold. A round as planned (its
turns one after another) has the same limit, and a whole script :data:`MAX_SCRIPT_SECONDS`
(see ``Script`` in models.py).
"""

from __future__ import annotations

import re

DURATION_PATTERN = r"^(?=.*\d)\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$"
_DURATION_RE = re.compile(DURATION_PATTERN)
DURATION_HINT = 'write a duration with a unit, like "90s", "5m" or "1h30m"'
MAX_SECONDS = 24 * 3600
"""The longest any duration in a script may be, and any one phase as planned."""
MAX_TEXT = "24h"
MAX_SCRIPT_SECONDS = 7 * 24 * 3600
"""The longest a whole script may be planned to run: a week, far past any real circle, with
room for the long circles load tests hold open (bench/circles.py plans about 117h)."""
MAX_SCRIPT_TEXT = "a week (168h)"
_MAX_DIGITS = 6  # more digits than any duration under a day needs (86400s), checked before int()


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
    if any(g and len(g.lstrip("0")) > _MAX_DIGITS for g in match.groups()):
        raise DurationError(_too_long(value))
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total > MAX_SECONDS:
        raise DurationError(_too_long(value))
    return total


def _too_long(value: str) -> str:
    shown = value.strip() if len(value.strip()) <= 24 else value.strip()[:21] + "..."
    return f"{shown!r} is longer than a day; a duration in a script may be at most {MAX_TEXT}"


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
