"""Writing an export as CSV, XLSX or JSON, one row at a time (memory stays flat).

Every cell a person typed (display names, group names) goes through
:func:`~facilitator.exports.cells.neutralised` in CSV and XLSX, so a name like ``=HYPERLINK(...)``
is shown as text and never runs. XLSX also drops the control characters the format cannot hold
(openpyxl refuses them). JSON is data, not a spreadsheet: values are written as they are.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from typing import IO, Any, Literal

import orjson

from facilitator.exports.cells import FORMULA_STARTS, neutralised
from facilitator.exports.levels import Column, Table

Format = Literal["csv", "xlsx", "json"]
FORMATS: tuple[Format, ...] = ("csv", "xlsx", "json")


def format_of(path: str) -> Format | None:
    """The format a file name asks for by its extension, if it is one we write."""
    ending = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    for name in FORMATS:
        if ending == name:
            return name
    return None


def _typed_positions(columns: tuple[Column, ...]) -> tuple[int, ...]:
    return tuple(i for i, c in enumerate(columns) if c.typed)


def _safe_rows(columns: tuple[Column, ...], rows: Iterable[tuple[Any, ...]]) -> Iterator[list[Any]]:
    """Rows with every typed cell neutralised (the other columns are ours: numbers, dates, ids)."""
    typed = _typed_positions(columns)
    for row in rows:
        cells = list(row)
        for i in typed:
            cells[i] = neutralised(cells[i])
        yield cells


class _Lines:
    """Where the csv module writes: the lines waiting to be encoded and written out."""

    def __init__(self, parts: list[str]) -> None:
        self.write = parts.append


def write_csv(
    table: Table, out: IO[bytes], rows: Iterable[tuple[Any, ...]] | None = None, *, header: bool = True
) -> int:
    """CSV (UTF-8 with a byte order mark, so spreadsheets read accents right). Returns rows written.
    ``header=False``: the rows only, no byte order mark or header (what follows another part).
    A table that writes its own lines (``Table.lines``) is written from them when ``rows`` is not
    given (the same bytes, quicker).

    The bytes are those of ``csv.writer`` (excel dialect) on the rows with their typed cells
    neutralised. But the csv module takes microseconds a row (millions of rows), so each row is
    first joined by ``%s`` formatting, which gives what the csv module writes when no value needs
    quoting or neutralising (None is written empty): when the line has no commas but those joining
    the values, no quote or line break, and no ``=``, ``+``, ``@``, tab or ``,-`` (so no value
    begins like a formula; the first value is checked on its own). Such a line is written
    as it is; any other row goes through the csv module. (A table's values are text, numbers and
    None: ``%s`` and the csv module turn each into the same text.)"""
    columns = table.columns
    typed = _typed_positions(columns)
    parts: list[str] = []
    careful = csv.writer(_Lines(parts))
    if header:
        parts.append("\ufeff")  # the byte order mark
        careful.writerow([c.name for c in columns])
    if rows is None and table.lines is not None:
        return _write_lines(parts, table.lines, out)
    joined = ",".join(["%s"] * len(columns))
    commas = len(columns) - 1
    starts = FORMULA_STARTS
    count = 0
    for row in table.rows if rows is None else rows:
        count += 1
        try:
            line = joined % row
            if "None" in line:  # a missing value (or a value that says None)
                line = joined % tuple(["" if value is None else value for value in row])
        except TypeError:  # not a tuple of one value per column: the csv module's way
            line = ""
        if (
            line.count(",") == commas
            and commas
            and line.isascii()  # nothing invisible that could hide a formula's start (see cells.py)
            and line.isprintable()
            and " -" not in line
            and not line.startswith(starts)
            and '"' not in line
            and "\r" not in line
            and "\n" not in line
            and "=" not in line
            and "+" not in line
            and "@" not in line
            and "\t" not in line
            and ",-" not in line
        ):
            parts.append(line)
            parts.append("\r\n")
        else:
            cells = list(row)
            for i in typed:
                cells[i] = neutralised(cells[i])
            careful.writerow(cells)
        if len(parts) >= 16384:
            out.write("".join(parts).encode("utf-8"))
            parts.clear()
    out.write("".join(parts).encode("utf-8"))
    return count


def _write_lines(parts: list[str], lines: Iterable[str], out: IO[bytes]) -> int:
    """Finished lines, after what ``parts`` holds, written out in batches; returns the lines."""
    count = 0
    for line in lines:
        count += 1
        parts.append(line)
        if len(parts) >= 2048:
            out.write("".join(parts).encode("utf-8"))
            parts.clear()
    out.write("".join(parts).encode("utf-8"))
    return count


def _xlsx_value(column: Column, value: Any, illegal: re.Pattern[str]) -> Any:
    if value is None or value == "":
        return None
    if column.kind == "date":
        return date.fromisoformat(value)
    if column.kind == "datetime":
        return datetime.fromisoformat(value)
    if isinstance(value, str):
        return illegal.sub("", value)
    return value


SHEET_ROWS = 1_048_575
"""Rows of data in one worksheet: Excel's limit of 1,048,576 rows, less the heading. More rows
go on in a second sheet (``attendance 2``), with the heading again."""


def write_xlsx(table: Table, out: IO[bytes], rows: Iterable[tuple[Any, ...]] | None = None) -> int:
    """An Excel workbook written in openpyxl's write-only mode (rows go straight to a temporary file)."""
    # openpyxl is imported here, not with the module: a CSV export has no use for its 0.3 s and 24 MB.
    from openpyxl import Workbook
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    book = Workbook(write_only=True)
    heading = [c.name for c in table.columns]
    sheet = book.create_sheet(title=table.level)
    sheet.append(heading)
    columns = table.columns
    count = 0
    illegal = ILLEGAL_CHARACTERS_RE
    # Characters a workbook cannot hold go first, then the neutralising: "\x01=cmd" must not
    # become a formula once its \x01 is dropped.
    given = table.rows if rows is None else rows
    legal = (tuple(illegal.sub("", v) if isinstance(v, str) else v for v in row) for row in given)
    for cells in _safe_rows(columns, legal):
        if count and count % SHEET_ROWS == 0:  # Excel opens no more rows than that in a sheet: go on in the next
            sheet = book.create_sheet(title=f"{table.level} {count // SHEET_ROWS + 1}")
            sheet.append(heading)
        sheet.append([_xlsx_value(col, value, illegal) for col, value in zip(columns, cells, strict=True)])
        count += 1
    book.save(out)
    return count


def write_json(table: Table, out: IO[bytes], rows: Iterable[tuple[Any, ...]] | None = None) -> int:
    """A JSON array of objects, one per row, written as it goes."""
    names = [c.name for c in table.columns]
    out.write(b"[")
    count = 0
    for row in table.rows if rows is None else rows:
        out.write(b",\n" if count else b"\n")
        out.write(orjson.dumps(dict(zip(names, row, strict=True))))
        count += 1
    out.write(b"\n]\n" if count else b"]\n")
    return count


WRITERS: dict[Format, Callable[[Table, IO[bytes], Iterable[tuple[Any, ...]] | None], int]] = {
    "csv": write_csv,
    "xlsx": write_xlsx,
    "json": write_json,
}
