"""``facilitator report``: the figures a coordinator pastes into a report, as a chart and a table.

The database is a real store; rows are written straight into its tables, so every figure here
can be counted by hand:

- London check-ins (Europe/London, region South): 10 Jan Ada, Bea and an anonymous person who
  left and came back (four rows, three seats); 5 Feb Ada, Cy and another anonymous person.
- Tokyo circle (Asia/Tokyo, region East): 20 Jan Dee and Bea; 31 Jan 23:30 UTC, which is
  1 Feb in Tokyo, Dee and an anonymous person.
- Osaka circle (Asia/Tokyo, region East): 10 Feb Bea.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, insert

from facilitator.cli import main
from facilitator.exports.cells import neutralised
from facilitator.exports.filters import ExportFilter
from facilitator.exports.report import ALL, NOTE, Report, ReportRow, build, draw, text_table, write_table_csv
from facilitator.storage.store import Store
from facilitator.storage.tables import attendance_table, circles_table, groups_table, members_table

LONDON = "London check-ins"
TOKYO = "Tokyo circle"
OSAKA = "Osaka circle"
ODD = '$\\frac{1}{2}$ =HYPERLINK("x")'
FORMULA = '=HYPERLINK("http://x")\\ $\\bogus{$'
"""Not even valid mathtext: drawn as mathtext, it would stop the chart."""
ADA, BEA, CY, DEE = 1, 2, 3, 4


def at(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()


def add_group(engine: Engine, name: str, room: str, region: str | None, timezone: str) -> int:
    with engine.begin() as conn:
        result = conn.execute(
            insert(groups_table).values(platform="matrix", room=room, name=name, region=region, timezone=timezone)
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]


def add_circle(
    engine: Engine, circle_id: str, group_id: int, started: float, seats: list[tuple[int | None, str]]
) -> None:
    """A circle that ran for an hour; ``seats``: one attendance row each (member id, or None for anonymous)."""
    with engine.begin() as conn:
        conn.execute(
            insert(circles_table).values(
                id=circle_id,
                group_id=group_id,
                script_name="check-in-30",
                title="Check-in",
                script_hash="0" * 64,
                status="ended",
                opened_at=started - 300,
                started_at=started,
                ended_at=started + 3600,
                updated_at=started + 3600,
                seat_salt=None,
                state_json="{}",
            )
        )
        for n, (member, seat) in enumerate(seats):
            conn.execute(
                insert(attendance_table).values(
                    circle_id=circle_id,
                    member_id=member,
                    anonymous=member is None,
                    seat=seat,
                    joined_at=started + 60 * n,
                    left_at=started + 3000,
                )
            )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store("sqlite:///" + str(tmp_path / "report.db"))
    engine = store.engine
    with engine.begin() as conn:
        for member, name in ((ADA, "Ada"), (BEA, "Bea"), (CY, "Cy"), (DEE, "Dee")):
            conn.execute(
                insert(members_table).values(
                    id=member, key=f"console:{name.lower()}", platform="console", display_name=name, created_at=0.0
                )
            )
    london = add_group(engine, LONDON, "!london:example.org", "South", "Europe/London")
    tokyo = add_group(engine, TOKYO, "!tokyo:example.org", "East", "Asia/Tokyo")
    osaka = add_group(engine, OSAKA, "!osaka:example.org", "East", "Asia/Tokyo")
    add_circle(engine, "l1", london, at(2026, 1, 10), [(ADA, "a"), (BEA, "b"), (None, "x"), (None, "x")])
    add_circle(engine, "l2", london, at(2026, 2, 5), [(ADA, "a"), (CY, "c"), (None, "y")])
    add_circle(engine, "t1", tokyo, at(2026, 1, 20, 3), [(DEE, "d"), (BEA, "b")])
    add_circle(engine, "t2", tokyo, at(2026, 1, 31, 23, 30), [(DEE, "d"), (None, "z")])  # 1 Feb in Tokyo
    add_circle(engine, "o1", osaka, at(2026, 2, 10), [(BEA, "b")])
    yield store
    store.close()


def report(store: Store, by: Any = "group", **filters: Any) -> Report:
    with store.engine.connect() as conn:
        return build(conn, by, ExportFilter(**filters))


def figures(found: Report) -> dict[tuple[str, str], tuple[int, int, int, int, float]]:
    """(month, group) -> circles, attendances, unique, returning, average size."""
    return {
        (r.month, r.scope): (r.circles, r.attendances, r.unique, r.returning, round(r.average_size, 2))
        for r in found.rows
    }


def test_each_month_by_group_in_the_groups_own_time_zone(store: Store) -> None:
    found = report(store)
    assert figures(found) == {
        # Ada, Bea and one anonymous person (who left and came back: two rows, one seat).
        ("2026-01", LONDON): (1, 4, 3, 0, 3.0),
        ("2026-01", TOKYO): (1, 2, 2, 0, 2.0),
        # Bea came to London and to Tokyo: one person in the total.
        ("2026-01", ALL["group"]): (2, 6, 4, 0, 2.5),
        # Ada came in January too: returning in February, not in January. Cy is new.
        ("2026-02", LONDON): (1, 3, 3, 1, 3.0),
        # 31 Jan 23:30 UTC is 1 Feb in Tokyo. Dee is returning; the anonymous person never is.
        ("2026-02", TOKYO): (1, 2, 2, 1, 2.0),
        # Bea's first time in Osaka (she had been to other groups).
        ("2026-02", OSAKA): (1, 1, 1, 0, 1.0),
        ("2026-02", ALL["group"]): (3, 6, 6, 3, 2.0),
    }
    assert [(r.month, r.scope) for r in found.rows][:3] == [
        ("2026-01", LONDON),
        ("2026-01", TOKYO),
        ("2026-01", ALL["group"]),
    ]
    assert found.rows[2].total and not found.rows[0].total


def test_by_region_a_person_returns_to_the_region_not_only_the_group(store: Store) -> None:
    assert figures(report(store, "region")) == {
        ("2026-01", "East"): (1, 2, 2, 0, 2.0),
        ("2026-01", "South"): (1, 4, 3, 0, 3.0),
        ("2026-01", ALL["region"]): (2, 6, 4, 0, 2.5),
        # Bea was in Tokyo in January and in Osaka in February: returning to the East.
        ("2026-02", "East"): (2, 3, 3, 2, 1.5),
        ("2026-02", "South"): (1, 3, 3, 1, 3.0),
        ("2026-02", ALL["region"]): (3, 6, 6, 3, 2.0),
    }


def test_people_before_since_still_make_someone_returning(store: Store) -> None:
    found = report(store, since=date(2026, 2, 1))
    assert figures(found) == {
        ("2026-02", LONDON): (1, 3, 3, 1, 3.0),
        ("2026-02", TOKYO): (1, 2, 2, 1, 2.0),  # the 31 Jan UTC circle is on 1 Feb in Tokyo
        ("2026-02", OSAKA): (1, 1, 1, 0, 1.0),
        ("2026-02", ALL["group"]): (3, 6, 6, 3, 2.0),
    }


def test_one_group_has_no_total_row_and_its_own_row_feeds_the_lower_panel(store: Store) -> None:
    found = report(store, groups=(LONDON,))
    assert [(r.month, r.scope, r.total) for r in found.rows] == [("2026-01", LONDON, False), ("2026-02", LONDON, False)]
    assert set(found.totals()) == {"2026-01", "2026-02"}


def test_the_text_table_is_aligned_and_carries_the_note(store: Store) -> None:
    text = text_table(report(store))
    lines = text.splitlines()
    assert lines[0].split() == ["month", "group", "circles", "attendances", "unique", "returning", "average_size"]
    assert lines[1].split() == ["2026-01", "London", "check-ins", "1", "4", "3", "0", "3.0"]
    assert len({len(line) for line in lines[:8]}) == 1  # numbers right-aligned to the same edge
    assert all(line.endswith(("3.0", "2.0", "2.5", "1.0")) for line in lines[1:8])
    assert "Note: " + NOTE in text and "anonymous" in NOTE


def test_nothing_to_report_still_writes_a_chart_and_says_so(store: Store, tmp_path: Path) -> None:
    found = report(store, since=date(2030, 1, 1))
    assert found.rows == () and found.months() == []
    assert "No circles match (from 2030-01-01 to today)." in text_table(found)
    draw(found, tmp_path / "empty.png", "png")
    assert (tmp_path / "empty.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_a_png_chart(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "report.png"
    draw(report(store), out, "png")
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 20_000


def test_an_svg_chart_names_the_groups_and_is_the_same_each_time(store: Store) -> None:
    first, second = io.BytesIO(), io.BytesIO()
    found = report(store)
    draw(found, first, "svg")
    draw(found, second, "svg")
    svg = first.getvalue().decode()
    assert first.getvalue() == second.getvalue()
    for text in (LONDON, TOKYO, OSAKA, "2026-01", "2026-02", "attendances", "unique participants", "every circle"):
        assert text in svg
    assert "<dc:date>" not in svg


def test_typed_names_are_drawn_as_they_are_and_neutralised_in_the_csv(store: Store, tmp_path: Path) -> None:
    odd = add_group(store.engine, ODD, "!odd:example.org", "South", "UTC")
    formula = add_group(store.engine, FORMULA, "!formula:example.org", "$\\", "UTC")
    add_circle(store.engine, "odd1", odd, at(2026, 1, 15), [(ADA, "a")])
    add_circle(store.engine, "f1", formula, at(2026, 2, 15), [(None, "q")])
    for by in ("group", "region"):
        found = report(store, by)
        svg = io.BytesIO()
        draw(found, svg, "svg")  # no mathtext: "$\frac{1}{2}$" is text, not a fraction
        draw(found, tmp_path / f"{by}.png", "png")
        drawn = svg.getvalue().decode()
        assert ("$\\frac{1}{2}$" in drawn and "$\\bogus{$" in drawn) is (by == "group")
    found = report(store)
    out = io.BytesIO()
    write_table_csv(found, out)
    rows = list(csv.reader(io.StringIO(out.getvalue().decode("utf-8-sig"))))
    names = {row[1] for row in rows[1:] if len(row) == 7}
    assert ODD in names and neutralised(ODD) == ODD  # nothing in it starts a formula
    assert "'" + FORMULA in names and FORMULA not in names
    assert rows[-1] == ["note", NOTE]
    assert "$\\" in {r.scope for r in report(store, "region").rows}


def test_a_control_character_in_a_name_does_not_break_the_table_or_the_svg(store: Store) -> None:
    odd = add_group(store.engine, "Bad\x00name\nhere", "!bad:example.org", None, "UTC")
    add_circle(store.engine, "bad1", odd, at(2026, 1, 15), [(ADA, "a")])
    emoji = add_group(store.engine, "Café ☕ 🌱", "!emoji:example.org", None, "UTC")
    add_circle(store.engine, "e1", emoji, at(2026, 1, 16), [(CY, "c")])
    found = report(store)
    assert "Bad name here" in text_table(found) and "Café ☕ 🌱" in text_table(found)
    svg = io.BytesIO()
    draw(found, svg, "svg")
    assert "Bad name here" in svg.getvalue().decode()
    assert "\x00" not in svg.getvalue().decode()
    assert "(no region)" in {r.scope for r in report(store, "region").rows}


def test_the_command_prints_the_table_and_writes_the_chart_and_csv(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "monthly.svg"
    result = CliRunner().invoke(main, ["report", "--db", store.url, "--out", str(out), "--by", "region"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].split()[:2] == ["month", "region"]
    assert "2026-02  East" in result.stdout
    assert out.read_text(encoding="utf-8").lstrip().startswith("<?xml")
    with open(tmp_path / "monthly-table.csv", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["month", "region", "circles", "attendances", "unique", "returning", "average_size"]
    assert ["2026-02", "East", "2", "3", "3", "2", "1.5"] in rows
    assert "monthly.svg" in result.stderr and "monthly-table.csv" in result.stderr


def test_the_command_takes_format_and_table_paths_and_filters(store: Store, tmp_path: Path) -> None:
    out, table = tmp_path / "chart.img", tmp_path / "figures" / "t.csv"
    table.parent.mkdir()
    args = ["report", "--db", store.url, "--out", str(out), "--format", "png", "--table", str(table)]
    result = CliRunner().invoke(main, [*args, "--group", TOKYO, "--since", "2026-02-01"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"\x89PNG")
    rows = list(csv.reader(io.StringIO(table.read_text(encoding="utf-8-sig"))))
    assert rows[1] == ["2026-02", TOKYO, "1", "2", "2", "1", "2.0"]
    assert rows[2] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "chart.pdf"], "--out chart.pdf: end the name in .png or .svg, or say which with --format"),
        (["--out", "chart.svg", "--format", "png"], "--format png but --out chart.svg ends in .svg"),
        (["--out", "figures.csv", "--format", "png", "--table", "figures.csv"], "the table would overwrite the chart"),
        (["--out", "c.png", "--since", "2026-13-01"], "is not a date"),
        (["--out", "no/such/folder/c.png"], "cannot write no/such/folder/c.png"),
    ],
)
def test_the_command_says_what_is_wrong(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["report", "--db", store.url, *args])
    assert result.exit_code == 2
    assert message in result.stderr


COORDINATED = """\
matrix:
  homeserver: https://matrix.example.org
  user_id: "@facilitator:example.org"
groups:
  - name: London check-ins
    region: South
    timezone: Europe/London
    matrix_rooms: ["!london:example.org"]
    coordinators: ["@ana:example.org"]
  - name: Tokyo circle
    region: East
    timezone: Asia/Tokyo
    matrix_rooms: ["!tokyo:example.org"]
    coordinators: ["@ken:example.org"]
"""


def test_a_coordinator_reports_on_their_group_and_not_on_another(store: Store, tmp_path: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(COORDINATED, encoding="utf-8")
    base = ["report", "--db", store.url, "--config", str(config), "--as", "@ana:example.org"]
    out = tmp_path / "ana.png"
    result = CliRunner().invoke(main, [*base, "--out", str(out), "--group", TOKYO])
    assert result.exit_code == 2
    assert "you may export London check-ins; not Tokyo circle" in result.stderr
    assert not out.exists()

    result = CliRunner().invoke(main, [*base, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert LONDON in result.stdout and TOKYO not in result.stdout and OSAKA not in result.stdout
    assert ALL["group"] not in result.stdout

    result = CliRunner().invoke(main, [*base, "--out", str(out), "--region", "East"])
    assert result.exit_code == 2 and "not region East" in result.stderr

    result = CliRunner().invoke(
        main, ["report", "--db", store.url, "--config", str(config), "--out", str(out)]
    )  # who is asking?
    assert result.exit_code == 2 and "--as" in result.stderr


def test_report_rows_read_as_cells() -> None:
    row = ReportRow("2026-03", "A", 3, 10, 7, 2, 10 / 3)
    assert row.cells() == ("2026-03", "A", 3, 10, 7, 2, 3.3)
