"""Spreadsheet safety: text that a spreadsheet would run as a formula is made plain text.

A display name like ``=HYPERLINK("http://evil", "Ada")`` or ``+cmd|' /C calc'!A0`` becomes a
live formula when a coordinator opens a CSV in Excel or LibreOffice, and openpyxl writes any
string that starts with ``=`` as a formula too. OWASP's advice, followed here: a cell that
begins with ``=``, ``+``, ``-``, ``@``, a tab, a carriage return or a line feed gets a leading
apostrophe, which spreadsheets show as text and never evaluate. So does one that begins so after
characters that show as nothing (``\ufeff=...``, a zero-width space, a space): a spreadsheet or a
tool on the way to one may drop those. Numbers are left alone.
"""

from __future__ import annotations

import csv

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
"""What makes a spreadsheet read a cell as a formula (or hide the start of one)."""


def neutralised(value: object) -> object:
    """``value`` as it is safe to put in a spreadsheet cell (only text is ever changed)."""
    if isinstance(value, str) and (value.startswith(FORMULA_STARTS) or _hides_a_formula(value)):
        return "'" + value
    return value


def _hides_a_formula(text: str) -> bool:
    """Whether ``text`` begins like a formula once the characters that show as nothing at its
    start (spaces, controls, invisible format characters) are passed over."""
    for ch in text:
        if ch.isprintable() and not ch.isspace():
            return ch in FORMULA_STARTS
        if ch in FORMULA_STARTS:
            return True
    return False


CACHE_LIMIT = 4096
"""Texts a :class:`CsvCells` keeps before it starts again (memory stays flat)."""


class CsvCells:
    """Single cells written exactly as ``csv.writer`` (the excel dialect) writes them in a row of
    several: quoted when they hold a comma, a quote or a line break, quotes doubled, nothing
    for None or empty text. Typed text (a display name, a group's name) is neutralised first,
    and kept: a million rows name a few thousand people."""

    def __init__(self) -> None:
        self._written: list[str] = []
        self._writer = csv.writer(self)
        self.typed: dict[object, str] = {}
        """Typed text as written, by the text (what :meth:`text` has seen)."""

    def write(self, line: str) -> None:
        """Where the csv module writes (one call a row)."""
        self._written.append(line)

    def plain(self, value: object) -> str:
        """``value`` as a CSV cell (ours: never neutralised)."""
        if value is None or value == "":
            return ""  # the csv module writes a lone empty cell as "" to tell it from no row
        self._written.clear()
        self._writer.writerow([value])
        return self._written[0][:-2]  # without the "\r\n"

    def text(self, value: object) -> str:
        """Typed text as a CSV cell, neutralised."""
        found = self.typed.get(value)
        if found is None:
            if len(self.typed) >= CACHE_LIMIT:
                self.typed.clear()
            found = self.typed[value] = self.plain(neutralised(value))
        return found
