"""The fast ways a large attendance CSV is made write exactly the bytes of the plain way.

The attendance level writes its CSV lines itself (levels.py, ``Table.lines``) instead of handing
rows to the csv module, and the command line shares a large export between two processes
(parallel.py). A coordinator must get the same file either way: these tests compare the bytes
on data built to trip them (names that need quoting or neutralising, empty names, people still
in a circle, stays of exactly half a tenth of a minute, a stay that ends before it starts, a
circle that never began).
"""

from __future__ import annotations

import csv
import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.export_csv import build
from facilitator.cli import main
from facilitator.exports import parallel
from facilitator.exports.cells import CsvCells, neutralised
from facilitator.exports.filters import ExportFilter
from facilitator.exports.levels import attendance_ids, minutes_text, table
from facilitator.exports.run import export
from facilitator.exports.writers import write_csv
from facilitator.storage.store import Store

NASTY = (
    "=cmd|' /C calc'!A0",
    "+1",
    "-1",
    "@SUM(1,2)",
    "\tTab",
    "\rReturn",
    "\nFeed",
    'Sam "the Tram"',
    "Comma, Person",
    "Line\nbreak",
    "Carriage\rreturn",
    '"',
    ",",
    " ",
    "None",
    "Łucja Müller",
    "日本語の名前",
    "emoji 🌱",
    "",
)


@pytest.fixture(scope="module")
def awkward(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """A database of 4,000 attendance rows (the benchmark's builder), made awkward."""
    path = tmp_path_factory.mktemp("speed") / "attendance.db"
    build(path, 4000, seed=11)
    db = sqlite3.connect(path)
    with db:
        for index, name in enumerate(NASTY):
            db.execute("UPDATE member SET display_name = ? WHERE id % 23 = ?", (name, index))
        db.execute("UPDATE member SET display_name = NULL WHERE id % 23 = 22")
        db.execute('UPDATE "group" SET name = ?, sector = ? WHERE id = 3', ("-Minus, group", '"quoted"\nsector'))
        db.execute("UPDATE circle SET script_name = ? WHERE rowid % 17 = 0", ("=script, with comma",))
        db.execute("UPDATE circle SET started_at = NULL WHERE rowid % 29 = 0")  # dated by when it opened
        db.execute("UPDATE attendance SET left_at = NULL WHERE id % 31 = 0")  # still in the circle
        db.execute("UPDATE attendance SET left_at = joined_at - 90 WHERE id % 37 = 0")  # ends before it starts
        for index, seconds in enumerate((3.0, 9.0, 15.0, 0.0, 2.9999999, 3.0000001, 59997.0, 600000.0)):
            db.execute("UPDATE attendance SET left_at = joined_at + ? WHERE id % 41 = ?", (seconds, index))
    db.close()
    store = Store(f"sqlite:///{path}")
    yield store
    store.close()


def _plain(store: Store, wanted: ExportFilter) -> bytes:
    """The CSV the csv module alone writes from the export's rows, typed cells neutralised (the
    reference: no quick path of ours in it)."""
    text = io.StringIO()
    writer = csv.writer(text)
    with store.engine.connect() as conn:
        found = table(conn, "attendance", wanted, count=False)
        writer.writerow([c.name for c in found.columns])
        typed = [c.typed for c in found.columns]
        for row in found.rows:
            writer.writerow([neutralised(v) if t else v for v, t in zip(row, typed, strict=True)])
    return ("\ufeff" + text.getvalue()).encode("utf-8")


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


FILTERS = (
    ExportFilter(),
    ExportFilter(regions=("Wales", "London")),
    ExportFilter(platforms=("discord",), scripts=("check-in-30", "=script, with comma")),
    ExportFilter(groups=("-Minus, group",)),
)


@pytest.mark.parametrize("wanted", FILTERS, ids=lambda w: w.describe())
def test_the_quick_lines_are_the_csv_modules_bytes(awkward: Store, wanted: ExportFilter) -> None:
    quick = io.BytesIO()
    assert export(awkward.engine, "attendance", "csv", wanted, quick) > 0
    reference = _plain(awkward, wanted)
    assert quick.getvalue() == reference
    text = reference.decode("utf-8-sig")
    assert "'=cmd|' /C calc'!A0" in text and '"Line\nbreak"' in text  # the data did need care


@pytest.mark.parametrize("wanted", FILTERS, ids=lambda w: w.describe())
def test_two_processes_write_what_one_writes(
    awkward: Store, wanted: ExportFilter, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    forks: list[int] = []
    real_fork = os.fork

    def counted_fork() -> int:
        pid = real_fork()
        if pid:
            forks.append(pid)
        return pid

    monkeypatch.setattr(parallel, "SPLIT_FROM", 50)
    monkeypatch.setattr(os, "fork", counted_fork)
    one = io.BytesIO()
    export(awkward.engine, "attendance", "csv", wanted, one, workers=1)
    assert forks == []
    before = _open_fds()
    with open(tmp_path / "shared.csv", "wb") as out:
        count = export(awkward.engine, "attendance", "csv", wanted, out, workers=2, scratch=str(tmp_path))
    awkward.engine.dispose()
    assert _open_fds() <= before  # no pipe or temporary file left open
    assert len(forks) == 2, "the export was not shared between two helper processes"
    assert (tmp_path / "shared.csv").read_bytes() == one.getvalue() == _plain(awkward, wanted)
    assert count == len(list(csv.reader(io.StringIO(one.getvalue().decode("utf-8-sig"))))) - 1


def test_a_filter_matching_few_rows_stays_in_one_process(awkward: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "SPLIT_FROM", 1000)
    assert parallel.split_for(awkward.engine, 2, ExportFilter(groups=("-Minus, group",))) is None  # ~110 rows
    assert parallel.split_for(awkward.engine, 2) is not None  # 4,000


def test_the_caches_starting_again_changes_nothing(awkward: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from facilitator.exports import cells, levels

    monkeypatch.setattr(cells, "CACHE_LIMIT", 3)
    monkeypatch.setattr(levels, "CACHE_LIMIT", 3)
    quick = io.BytesIO()
    export(awkward.engine, "attendance", "csv", ExportFilter(), quick)
    assert quick.getvalue() == _plain(awkward, ExportFilter())


def test_a_progress_bar_is_told_every_row_of_both_processes(awkward: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    class Bar:
        done = 0

        def update(self, n: int) -> None:
            self.done += n

    monkeypatch.setattr(parallel, "SPLIT_FROM", 100)
    split = parallel.split_for(awkward.engine, 2)
    assert split is not None and len(split) == 2
    bar, out = Bar(), io.BytesIO()
    count = parallel.write_shared_csv(awkward.engine, ExportFilter(), out, split, bar=bar)
    assert count == bar.done == 4000
    assert out.getvalue() == _plain(awkward, ExportFilter())


def _helpers_fail(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    """The CLI shares exports of 100 rows or more between two helpers, whose writing raises ``error``."""
    parent = os.getpid()

    def failing_in_the_child(*args: Any, **kwargs: Any) -> int:
        if os.getpid() != parent:
            raise error
        return write_csv(*args, **kwargs)

    monkeypatch.setattr(parallel, "SPLIT_FROM", 100)
    monkeypatch.setattr(parallel, "workers_available", lambda: 2)
    monkeypatch.setattr(parallel, "write_csv", failing_in_the_child)


def test_a_failed_helper_process_leaves_no_half_file_and_says_why(
    awkward: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _helpers_fail(monkeypatch, OSError(28, "No space left on device"))
    out = tmp_path / "attendance.csv"
    out.write_text("last month's export")
    result = CliRunner().invoke(main, ["export", "--db", awkward.url, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "No space left on device" in result.output
    assert f"{out} is as it was before: run the export again" in result.output
    assert out.read_text() == "last month's export"  # the earlier file of that name is not lost
    assert os.listdir(tmp_path) == ["attendance.csv"]  # and no half-written file is left beside it


def test_a_failure_while_gathering_leaves_no_half_file(
    awkward: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def full(spill: object, out: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(parallel, "SPLIT_FROM", 100)
    monkeypatch.setattr(parallel, "workers_available", lambda: 2)
    monkeypatch.setattr(parallel, "_append", full)
    out = tmp_path / "attendance.csv"
    result = CliRunner().invoke(main, ["export", "--db", awkward.url, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "No space left on device" in result.output and "Nothing was written" in result.output
    assert not out.exists() and os.listdir(tmp_path) == []


def test_a_failed_export_never_removes_what_out_only_points_at(
    awkward: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """--out through a link (or /dev/null, a pipe): the export says it is incomplete, removes nothing."""
    _helpers_fail(monkeypatch, OSError(5, "Input/output error"))
    target = tmp_path / "kept.csv"
    target.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    result = CliRunner().invoke(main, ["export", "--db", awkward.url, "--out", str(link)])
    assert result.exit_code == 2, result.output
    assert f"What was written to {link} is incomplete" in result.output
    assert link.is_symlink() and target.exists()


STOPPED = """
import os, signal, sys
from facilitator.exports import parallel
from facilitator.exports.filters import ExportFilter
from facilitator.storage.store import Store

def stuck(*args, **kwargs):
    os.write(1, f"{os.getpid()}\\n".encode())  # a helper has started (one write: the two never interleave)
    signal.pause()  # and works until stopped

parallel.SPLIT_FROM = 100
parallel.write_csv = stuck
store = Store(sys.argv[1])
try:
    with open(sys.argv[2], "wb") as out:
        parallel.write_shared_csv(store.engine, ExportFilter(), out, parallel.split_for(store.engine, 2))
except parallel.ExportFailed as error:
    print("stopped:", error, flush=True)
    sys.exit(3)
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"  # ended, not yet reaped
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_stopping_an_export_stops_its_helpers(awkward: Store, tmp_path: Path, how: signal.Signals) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", STOPPED, awkward.url, str(tmp_path / "out.csv")], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    helpers = [int(process.stdout.readline()), int(process.stdout.readline())]  # both started
    process.send_signal(how)
    rest, _ = process.communicate(timeout=60)
    if how == signal.SIGTERM:
        assert process.returncode == 3 and "stopped: it was stopped (SIGTERM)" in rest
    deadline = time.monotonic() + 30  # the kernel signals the helpers when their parent dies
    while not all(_gone(pid) for pid in helpers) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(_gone(pid) for pid in helpers), "a helper process outlived the export"


def test_small_exports_and_empty_databases_stay_in_one_process(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        with store.engine.connect() as conn:
            assert attendance_ids(conn) is None
        assert parallel.split_for(store.engine, 2) is None
        out = io.BytesIO()
        assert export(store.engine, "attendance", "csv", ExportFilter(), out, workers=2) == 0
        assert out.getvalue().decode("utf-8-sig").startswith("circle,date,group")
    finally:
        store.close()


def test_the_bot_never_shares_an_export_between_processes() -> None:
    """Forking a process with threads and an event loop is unsafe: only the CLI asks for workers."""
    assert export.__kwdefaults__ is not None and export.__kwdefaults__["workers"] == 1
    source = (Path(__file__).resolve().parent.parent / "facilitator" / "rights.py").read_text(encoding="utf-8")
    assert "workers" not in source


@given(st.integers(min_value=-(10**6), max_value=10**6), st.integers(min_value=1, max_value=10**5), st.data())
def test_ranges_cover_every_id_once_in_order(low: int, span: int, data: st.DataObject) -> None:
    parts = data.draw(st.integers(min_value=1, max_value=8))
    found = parallel.ranges(low, low + span - 1, parts)
    assert found[0][0] == low and found[-1][1] == low + span - 1
    assert all(a[1] + 1 == b[0] for a, b in pairwise(found))
    assert all(first <= last for first, last in found)
    assert len(found) == min(parts, span)


times = st.floats(min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False)


@settings(max_examples=3000)
@given(times, st.one_of(st.floats(min_value=-1e6, max_value=1e6), st.integers(-(10**6), 10**6).map(float)))
def test_minutes_text_is_str_of_round(start: float, seconds: float) -> None:
    end = start + seconds
    assert minutes_text(start, end) == str(round((end - start) / 60.0, 1))


@pytest.mark.parametrize("seconds", [0.0, 3.0, 9.0, 15.0, 2.9999999, 3.0000001, 27.0, 59997.0, 600000.0, -3.0, -0.1])
def test_minutes_text_on_ties_and_edges(seconds: float) -> None:
    for start in (0.0, 1_700_000_000.123, 1_800_000_000.5):
        end = start + seconds
        assert minutes_text(start, end) == str(round((end - start) / 60.0, 1))


@given(st.lists(st.one_of(st.none(), st.text(), st.sampled_from(NASTY), st.integers()), min_size=2, max_size=6))
def test_cells_are_what_the_csv_module_writes(values: list[object]) -> None:
    written = io.StringIO()
    csv.writer(written).writerow([neutralised(v) for v in values])
    cells = CsvCells()
    assert ",".join(cells.text(v) for v in values) + "\r\n" == written.getvalue()
    written = io.StringIO()
    csv.writer(written).writerow(values)
    assert ",".join(cells.plain(v) for v in values) + "\r\n" == written.getvalue()


LOADED = """
import sys
from facilitator.cli import main
try:
    main(sys.argv[1:])
except SystemExit as done:
    heavy = ("alembic", "openpyxl", "matplotlib", "sqlalchemy.orm")
    heavy += ("facilitator.config", "facilitator.engine.circle", "facilitator.runtime")
    print(",".join(sorted({m for m in sys.modules if m.split(".")[0] in heavy or m.startswith(heavy)})))
    print(done.code, file=sys.stderr)
"""


@pytest.mark.parametrize("wanted", [["--since", "9000-01-01"], ["--group", "Carers' circle, ward 7"]])
def test_a_csv_export_loads_nothing_it_does_not_use(awkward: Store, tmp_path: Path, wanted: list[str]) -> None:
    """Every export pays for what the command imports before its first row (docs/benchmarks.md,
    "startup"): the engine, the serve configuration, Alembic, openpyxl and matplotlib are not
    loaded for a CSV export of an up-to-date database (0.3 s and 12 MB each time they crept in)."""
    args = ["export", "--db", awkward.url, *wanted, "--out", str(tmp_path / "x.csv")]
    ran = subprocess.run([sys.executable, "-c", LOADED, *args], capture_output=True, text=True, check=False)
    assert ran.stderr.strip().splitlines()[-1] in ("None", "0"), ran.stderr
    assert ran.stdout.strip() == "", f"loaded: {ran.stdout}"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=12), st.integers(-5, 5), st.text(max_size=12)), max_size=6))
def test_the_quick_csv_lines_are_the_csv_modules_whatever_the_text(rows: list[tuple[str, int, str]]) -> None:
    """write_csv's quick path (a row joined as it is) must write what the csv module writes with
    the typed cells neutralised: a name starting " -" or with an invisible character before a
    formula's first sign goes the careful way."""
    from facilitator.exports.levels import Column, Table

    columns = (Column("person", typed=True), Column("turns", "number"), Column("group", typed=True))
    for extra in ([(" -cmd", 1, "\u200b-x"), ("a", 2, "\u200b=1+1")],):
        out = io.BytesIO()
        write_csv(Table("person", columns, 0, iter(rows + extra)), out)
        expected = io.StringIO()
        reference = csv.writer(expected)
        reference.writerow([c.name for c in columns])
        for row in rows + extra:
            reference.writerow([neutralised(row[0]), row[1], neutralised(row[2])])
        assert out.getvalue().decode("utf-8") == "\ufeff" + expected.getvalue()
