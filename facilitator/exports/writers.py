"""Writing an export as CSV, XLSX or JSON, one row at a time (memory stays flat).

Every cell a person typed (display names, group names) goes through
:func:`~facilitator.exports.cells.neutralised` in CSV and XLSX, so a name like ``=HYPERLINK(...)``
is shown as text and never runs. XLSX also drops the control characters the format cannot hold
(openpyxl refuses them). JSON is data, not a spreadsheet: values are written as they are.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from typing import IO, Any, Literal

import orjson
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from facilitator.exports.cells import neutralised
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


def write_csv(table: Table, out: IO[bytes], rows: Iterable[tuple[Any, ...]] | None = None) -> int:
    """CSV (UTF-8 with a byte order mark, so spreadsheets read accents right). Returns rows written."""
    text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="", write_through=False)
    writer = csv.writer(text)
    writer.writerow([c.name for c in table.columns])
    count = 0
    for cells in _safe_rows(table.columns, table.rows if rows is None else rows):
        writer.writerow(cells)
        count += 1
    text.flush()
    text.detach()
    return count


def _xlsx_value(column: Column, value: Any) -> Any:
    if value is None or value == "":
        return None
    if column.kind == "date":
        return date.fromisoformat(value)
    if column.kind == "datetime":
        return datetime.fromisoformat(value)
    if isinstance(value, str):
        return ILLEGAL_CHARACTERS_RE.sub("", value)
    return value


def write_xlsx(table: Table, out: IO[bytes], rows: Iterable[tuple[Any, ...]] | None = None) -> int:
    """An Excel workbook written in openpyxl's write-only mode (rows go straight to a temporary file)."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=table.level)
    sheet.append([c.name for c in table.columns])
    columns = table.columns
    count = 0
    for cells in _safe_rows(columns, table.rows if rows is None else rows):
        sheet.append([_xlsx_value(col, value) for col, value in zip(columns, cells, strict=True)])
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
