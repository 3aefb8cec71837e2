"""Exports as a coordinator meets them: safe spreadsheets, local dates, anonymous counts, access."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner

from facilitator.cli import main
from facilitator.config import load_config
from facilitator.exports.filters import ExportFilter
from facilitator.exports.run import export
from facilitator.front import handle_command
from facilitator.runtime.clock import ManualClock
from facilitator.runtime.host import GroupInfo, Runtime
from facilitator.storage.store import Store
from facilitator.voice import Line

HOSTILE = [
    '=HYPERLINK("http://evil.example","Ada")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "Bell\x07Name",
]
NORTH, SOUTH = "!north:example.org", "!south:example.org"
CONFIG = f"""\
matrix:
  homeserver: https://matrix.example.org/
  user_id: "@facilitator:example.org"
regions:
  - name: South
    coordinators: ["@sam:example.org"]
groups:
  - name: North check-ins
    region: North
    timezone: Asia/Tokyo
    matrix_rooms: ["{NORTH}"]
    coordinators: ["@nia:example.org"]
  - name: South check-ins
    region: South
    timezone: America/New_York
    matrix_rooms: ["{SOUTH}"]
"""


class Recorder:
    """A stand-in Matrix adapter that keeps what the bot says (private lines included)."""

    platform = "matrix"

    def __init__(self) -> None:
        self.lines: list[tuple[str, Line]] = []

    async def connect(self, runtime: Runtime) -> None:
        return None

    async def send(self, room: str, lines: Sequence[Line]) -> None:
        self.lines += [(room, line) for line in lines]

    async def disconnect(self) -> None:
        return None


async def _circle(runtime: Runtime, room: str, people: Sequence[str], anonymous: Sequence[str] = ()) -> None:
    """A circle in ``room`` that ``people`` (and ``anonymous`` ones) join, begin and end."""

    async def say(who: str, text: str, name: str = "") -> None:
        await handle_command(runtime, "matrix", room, f"matrix:@{who}:example.org", name or who, text)

    await say("fran", "start check-in-30", "Fran")
    for name in people:
        who = "p-" + "".join(ch for ch in name.lower() if ch.isalnum())
        await say(who, "join", name)
        await say(who, "consent", name)
    for index, _ in enumerate(anonymous):
        await say(f"anon{index}", "join anonymous", "Hidden Name")
        await say(f"anon{index}", "consent", "Hidden Name")
    await say("fran", "begin", "Fran")
    await say("fran", "end", "Fran")


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Runtime, Recorder, Path]]:
    config_path = tmp_path / "serve.yaml"
    config_path.write_text(CONFIG, encoding="utf-8")
    config = load_config(config_path)
    store = Store(f"sqlite:///{tmp_path / 'x.db'}")
    store.sync_groups(config)
    recorder = Recorder()
    # 20:00 UTC on 31 January 2027: already 1 February in Tokyo, still 31 January in New York.
    clock = ManualClock(start=datetime(2027, 1, 31, 20, 0, tzinfo=UTC).timestamp())
    runtime = Runtime(store, clock=clock, adapters=[recorder], config=config)
    await runtime.start()
    for room in (NORTH, SOUTH):
        group = config.group_of(room)
        assert group is not None
        await runtime.group_id("matrix", room, group.info())
    yield runtime, recorder, config_path
    await runtime.stop()
    store.close()


def _rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def _export(runtime: Runtime, level: str = "attendance", fmt: str = "csv", **wanted: object) -> bytes:
    out = io.BytesIO()
    export(runtime.store.engine, level, fmt, ExportFilter(**wanted), out)  # type: ignore[arg-type]
    return out.getvalue()


async def test_hostile_names_are_plain_text_in_csv_and_in_a_workbook(served: tuple[Runtime, Recorder, Path]) -> None:
    runtime, _, _ = served
    await _circle(runtime, NORTH, HOSTILE, anonymous=["x"])
    rows = _rows(_export(runtime))
    named = [row["person"] for row in rows if row["anonymous"] == "no"]
    # A control character never gets into a name: the bot drops it as the name comes in.
    assert named == ["'" + name for name in HOSTILE[:4]] + ["BellName"]
    out = io.BytesIO()
    export(runtime.store.engine, "attendance", "xlsx", ExportFilter(), out)
    sheet = openpyxl.load_workbook(out).active
    assert sheet is not None
    cells = [row[7] for row in sheet.iter_rows(min_row=2)]
    assert all(cell.data_type == "s" for cell in cells if cell.value is not None)  # no formulas
    assert [cell.value for cell in cells][:4] == ["'" + name for name in HOSTILE[:4]]
    assert cells[4].value == "BellName"  # a control character a workbook cannot hold is dropped
    assert isinstance(sheet.cell(row=2, column=2).value, datetime)  # dates are dates, for sorting
    data = json.loads(_export(runtime, fmt="json"))
    assert data[0]["person"] == HOSTILE[0]  # JSON is data: kept as typed


async def test_a_workbook_goes_on_in_a_second_sheet_past_excels_row_limit(
    served: tuple[Runtime, Recorder, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Excel opens at most 1,048,576 rows of a sheet: an export with more goes on in the next
    sheet, heading repeated, every row kept (the limit made small here, not a million rows)."""
    from facilitator.exports import writers

    runtime, _, _ = served
    await _circle(runtime, NORTH, ["Ada", "Bea", "Cy", "Dee"], anonymous=["x"])
    monkeypatch.setattr(writers, "SHEET_ROWS", 2)
    book = openpyxl.load_workbook(io.BytesIO(_export(runtime, fmt="xlsx")))
    assert book.sheetnames == ["attendance", "attendance 2", "attendance 3"]
    headings = {tuple(c.value for c in sheet[1]) for sheet in book.worksheets}
    assert headings == {tuple(_rows(_export(runtime))[0])}
    kept = [row[7].value for sheet in book.worksheets for row in sheet.iter_rows(min_row=2)]
    assert [len(list(sheet.iter_rows(min_row=2))) for sheet in book.worksheets] == [2, 2, 1]
    assert kept == [row["person"] or None for row in _rows(_export(runtime))]


async def test_anonymous_attendees_are_counted_and_never_named(served: tuple[Runtime, Recorder, Path]) -> None:
    runtime, _, _ = served
    await _circle(runtime, NORTH, ["Ada", "Bea"], anonymous=["x", "y"])
    every = b"".join(
        _export(runtime, level, fmt) for level in ("attendance", "circle", "person") for fmt in ("csv", "json")
    )
    assert b"Hidden Name" not in every and b"anon0" not in every
    circle = _rows(_export(runtime, "circle"))[0]
    assert (circle["size"], circle["named"], circle["anonymous"], circle["facilitator"]) == ("4", "2", "2", "Fran")
    people = _rows(_export(runtime, "person"))
    assert [(p["person"], p["circles"]) for p in people] == [
        ("Ada", "1"),
        ("Bea", "1"),
        ("Anonymous attendance (counted, not named)", "2"),
    ]


async def test_dates_are_the_groups_own_local_dates(served: tuple[Runtime, Recorder, Path]) -> None:
    runtime, _, _ = served
    await _circle(runtime, NORTH, ["Ada"])  # Tokyo: 1 February
    await _circle(runtime, SOUTH, ["Bea"])  # New York: 31 January
    rows = _rows(_export(runtime))
    assert [(r["group"], r["date"], r["joined"][:13], r["timezone"]) for r in rows] == [
        ("North check-ins", "2027-02-01", "2027-02-01 05", "Asia/Tokyo"),
        ("South check-ins", "2027-01-31", "2027-01-31 15", "America/New_York"),
    ]
    feb = _rows(_export(runtime, since=datetime(2027, 2, 1).date(), until=datetime(2027, 2, 28).date()))
    assert [r["person"] for r in feb] == ["Ada"]
    jan = _rows(_export(runtime, until=datetime(2027, 1, 31).date()))
    assert [r["person"] for r in jan] == ["Bea"]
    assert [r["person"] for r in _rows(_export(runtime, regions=("South",)))] == ["Bea"]
    assert _rows(_export(runtime, scripts=("no-such-script",))) == []


async def test_the_cli_lets_a_coordinator_export_only_what_they_coordinate(
    served: tuple[Runtime, Recorder, Path], tmp_path: Path
) -> None:
    runtime, _, config_path = served
    await _circle(runtime, NORTH, ["Ada"])
    await _circle(runtime, SOUTH, ["Bea"])
    db = ["--db", runtime.store.url, "--config", str(config_path)]
    runner = CliRunner()
    asked = runner.invoke(main, ["export", *db])
    assert asked.exit_code == 2 and "say which one you are with --as" in asked.output
    nia = runner.invoke(main, ["export", *db, "--as", "@nia:example.org"])
    assert nia.exit_code == 0, nia.output
    assert "Ada" in nia.stdout and "Bea" not in nia.stdout
    refused = runner.invoke(main, ["export", *db, "--as", "@nia:example.org", "--group", "South check-ins"])
    assert refused.exit_code == 2
    assert "you may export North check-ins; not South check-ins" in refused.output
    sam = runner.invoke(main, ["export", *db, "--as", "@sam:example.org", "--level", "person"])  # by region
    assert "Bea" in sam.stdout and "Ada" not in sam.stdout
    stranger = runner.invoke(main, ["export", *db, "--as", "@eve:example.org"])
    assert stranger.exit_code == 2 and "not a coordinator of any group" in stranger.output
    out = tmp_path / "all.xlsx"
    admin = runner.invoke(main, ["export", "--db", runtime.store.url, "--out", str(out), "--since", "2027-13-01"])
    assert admin.exit_code == 2 and "write it as YYYY-MM-DD" in admin.output
    admin = runner.invoke(main, ["export", "--db", runtime.store.url, "--out", str(out)])
    assert admin.exit_code == 0 and "Exported 2 attendance rows" in admin.output
    assert openpyxl.load_workbook(out).active.max_row == 3  # type: ignore[union-attr]


async def test_a_coordinator_gets_the_export_privately_in_chat(served: tuple[Runtime, Recorder, Path]) -> None:
    runtime, recorder, _ = served
    await _circle(runtime, NORTH, ["Ada"])
    await _circle(runtime, SOUTH, ["Bea"])
    recorder.lines.clear()
    nia = "matrix:@nia:example.org"
    await handle_command(runtime, "matrix", NORTH, nia, "Nia", "export person xlsx")
    [(_, line)] = recorder.lines
    assert line.to == nia and line.attachment is not None  # to her alone, with the file
    assert line.attachment.name.endswith(".xlsx") and "North check-ins" in line.text
    sheet = openpyxl.load_workbook(io.BytesIO(line.attachment.data)).active
    assert sheet is not None
    assert [row[0].value for row in sheet.iter_rows(min_row=2)] == ["Ada"]
    recorder.lines.clear()
    await handle_command(runtime, "matrix", NORTH, nia, "Nia", "export group South check-ins")
    [(_, refused)] = recorder.lines
    assert refused.to == nia and refused.attachment is None and "not South check-ins" in refused.text
    recorder.lines.clear()
    await handle_command(runtime, "matrix", NORTH, "matrix:@p-ada:example.org", "Ada", "export")
    [(_, refused)] = recorder.lines
    assert refused.attachment is None and "Exports are for the coordinators" in refused.text
    recorder.lines.clear()
    await handle_command(runtime, "matrix", NORTH, nia, "Nia", "export 2027-02-30")
    assert "is not a date" in recorder.lines[-1][1].text
    await handle_command(runtime, "matrix", NORTH, nia, "Nia", "export 31/03/2027")
    assert "'31/03/2027' is not a date: write it as YYYY-MM-DD" in recorder.lines[-1][1].text
    await handle_command(runtime, "matrix", NORTH, nia, "Nia", "export pdf")  # a format we do not write
    assert "export does not know 'pdf': export [attendance|circle|person] [csv|xlsx|json]" in recorder.lines[-1][1].text
    recorder.lines.clear()
    await handle_command(runtime, "matrix", NORTH, nia, "Nia", "help")
    assert "export [attendance|circle|person] [csv|xlsx|json] [FROM [TO]] [group NAME]" in recorder.lines[-1][1].text
    await handle_command(runtime, "matrix", NORTH, "matrix:@p-ada:example.org", "Ada", "help")
    assert "export" not in recorder.lines[-1][1].text.replace("exports", "")


def test_group_info_carries_the_time_zone() -> None:
    assert GroupInfo("g", None, None, "Europe/London").timezone == "Europe/London"


async def test_a_terminal_sees_progress_and_a_pipe_does_not(served: tuple[Runtime, Recorder, Path]) -> None:
    runtime, _, _ = served
    await _circle(runtime, NORTH, ["Ada", "Bea"])
    terminal = io.StringIO()
    out = io.BytesIO()
    assert export(runtime.store.engine, "attendance", "csv", ExportFilter(), out, progress=terminal) == 2
    assert "Exporting 2 attendance rows" in terminal.getvalue()
    assert out.getvalue() == _export(runtime)  # the bar changes nothing in the file
    result = CliRunner().invoke(main, ["export", "--db", runtime.store.url])
    assert "Exporting" not in result.output  # CliRunner is no terminal: no bar


async def test_dates_out_of_range_get_a_sentence_not_a_traceback(served: tuple[Runtime, Recorder, Path]) -> None:
    runtime, recorder, _ = served
    await _circle(runtime, NORTH, ["Ada"])
    result = CliRunner().invoke(main, ["export", "--db", runtime.store.url, "--until", "9999-12-31"])
    assert result.exit_code == 2 and "use a year from 1970 to 9998" in result.output
    result = CliRunner().invoke(main, ["consent-log", "--db", runtime.store.url, "--until", "9999-12-31"])
    assert result.exit_code == 2 and "use a year from 1970 to 9998" in result.output
    recorder.lines.clear()
    await handle_command(runtime, "matrix", NORTH, "matrix:@nia:example.org", "Nia", "export 2020-01-01 9999-12-31")
    assert "out of range" in recorder.lines[-1][1].text


def test_as_without_coordinators_in_the_config_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "plain.yaml"
    config.write_text(CONFIG.replace("coordinators:", "steer_roles:").split("regions:")[0], encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'p.db'}"
    result = CliRunner().invoke(main, ["export", "--db", db, "--config", str(config), "--as", "@mallory:example.org"])
    assert result.exit_code == 2 and "names no coordinators" in result.output


async def test_a_row_is_dated_by_its_circle_and_a_rejoin_is_one_seat(served: tuple[Runtime, Recorder, Path]) -> None:
    """Joined 23:55 New York, the circle began 00:05: the row is the next day's, as the filter says;
    an anonymous attendee who stepped out and back is one circle, not two."""
    runtime, _, _ = served
    clock = runtime.clock
    assert isinstance(clock, ManualClock)
    clock.set(datetime(2027, 3, 1, 4, 50, tzinfo=UTC).timestamp())  # 23:50 on 28 February in New York

    async def say(who: str, text: str) -> None:
        await handle_command(runtime, "matrix", SOUTH, f"matrix:@{who}:example.org", who.title(), text)

    await say("fran", "start check-in-30")
    clock.advance(300)
    for who, how in (("ada", "join"), ("hid", "join anonymous")):
        await say(who, how)
        await say(who, "consent")
    await say("hid", "leave")
    await say("hid", "join anonymous")
    clock.advance(600)  # 00:05 on 1 March
    await say("fran", "begin")
    await say("fran", "end")
    rows = _rows(_export(runtime))
    assert {r["date"] for r in rows} == {"2027-03-01"} and rows[0]["joined"] == "2027-02-28 23:55"
    march = _rows(_export(runtime, since=datetime(2027, 3, 1).date()))
    assert len(march) == len(rows) == 3
    people = _rows(_export(runtime, "person"))
    assert [(p["person"], p["circles"]) for p in people] == [
        ("Ada", "1"),
        ("Anonymous attendance (counted, not named)", "1"),
    ]


def test_a_control_character_cannot_smuggle_a_formula_into_a_workbook() -> None:
    from facilitator.exports.levels import Column, Table
    from facilitator.exports.writers import write_xlsx

    hostile = '\x01=HYPERLINK("http://evil.example","x")'
    out = io.BytesIO()
    write_xlsx(Table("attendance", (Column("group", typed=True),), 1, iter([(hostile,)])), out)
    cell = openpyxl.load_workbook(out).active.cell(row=2, column=1)  # type: ignore[union-attr]
    assert cell.data_type == "s" and cell.value == "'" + hostile[1:]
