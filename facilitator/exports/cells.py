"""Spreadsheet safety: text that a spreadsheet would run as a formula is made plain text.

A display name like ``=HYPERLINK("http://evil", "Ada")`` or ``+cmd|' /C calc'!A0`` becomes a
live formula when a coordinator opens a CSV in Excel or LibreOffice, and openpyxl writes any
string that starts with ``=`` as a formula too. OWASP's advice, followed here: a cell that
begins with ``=``, ``+``, ``-``, ``@``, a tab, a carriage return or a line feed gets a leading
apostrophe, which spreadsheets show as text and never evaluate. Numbers are left alone.
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
"""What makes a spreadsheet read a cell as a formula (or hide the start of one)."""


def neutralised(value: object) -> object:
    """``value`` as it is safe to put in a spreadsheet cell (only text is ever changed)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
