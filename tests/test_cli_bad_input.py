"""The command-line tools given the wrong thing, as a coordinator or an administrator would by
mistake: each says what was wrong and what to do, exits 2, and loses nothing.

The database is a real one: ``facilitator demo`` runs a whole circle into it first.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from facilitator.cli import main

SERVE = """\
matrix:
  homeserver: https://matrix.example.org
  user_id: '@bot:example.org'
groups:
  - name: Renamed
    matrix_rooms: ['!r:example.org']
    coordinators: ['@ana:example.org']
"""


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "circles.db"
    made = CliRunner().invoke(main, ["demo", "--speed", "0", "--db", f"sqlite:///{path}"])
    assert made.exit_code == 0, made.output
    return path


@pytest.fixture
def db(demo_db: Path, tmp_path: Path) -> Path:
    """A copy of the demo's database for one test (nothing a test does reaches the next)."""
    copy = tmp_path / "circles.db"
    shutil.copy(demo_db, copy)
    return copy


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def refused(result: Result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for said in words:
        assert said in result.stderr, result.stderr


def test_an_export_over_the_database_itself_is_refused_and_the_database_kept(db: Path) -> None:
    before = db.read_bytes()
    for target in (db, Path(f"{db}-wal"), Path(f"{db}.lock")):
        result = run("export", "--db", f"sqlite:///{db}", "--format", "csv", "--out", str(target))
        refused(result, f"--out {target} is the database itself", "choose another file")
    assert db.read_bytes() == before
    config = db.parent / "serve.yaml"
    config.write_text(SERVE)
    result = run(
        "report",
        "--db",
        f"sqlite:///{db}",
        "--config",
        str(config),
        "--as",
        "@ana:example.org",
        "--out",
        "c.png",
        "--table",
        str(config),
    )
    refused(result, "is the configuration itself")
    assert config.read_text() == SERVE


def test_an_export_replaces_an_earlier_file_only_when_whole_and_keeps_it_owner_only(db: Path) -> None:
    out = db.parent / "attendance.csv"
    out.write_text("an earlier export")
    out.chmod(0o644)
    result = run("export", "--db", f"sqlite:///{db}", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "Exported 5 attendance rows (everything)" in result.stderr
    assert out.read_text(encoding="utf-8-sig").startswith("circle,date,group,")
    assert out.stat().st_mode & 0o777 == 0o600  # it names people
    assert sorted(os.listdir(db.parent)) == ["attendance.csv", "circles.db"]  # no half file left


def test_a_missing_empty_or_foreign_database_is_named_never_made_or_changed(db: Path, tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    for command in (["export"], ["report", "--out", str(tmp_path / "c.png")], ["consent-log"]):
        refused(run(*command, "--db", f"sqlite:///{missing}"), f"there is no database at {missing}")
    assert not missing.exists()
    empty = tmp_path / "empty.db"
    empty.touch()
    refused(run("export", "--db", f"sqlite:///{empty}"), "is empty")
    foreign = tmp_path / "other.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    before = foreign.read_bytes()
    refused(run("export", "--db", f"sqlite:///{foreign}"), "holds no facilitator records")
    assert foreign.read_bytes() == before  # none of our tables added, not even WAL mode
    text = tmp_path / "notes.db"
    text.write_text("not a database at all\n" * 100)
    refused(run("consent-log", "--db", f"sqlite:///{text}"), "is not a database facilitator can read")
    refused(run("export", "--db", f"sqlite:///{tmp_path}"), "is not a database file")


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("circles.db", "'circles.db' is not a database URL; for a SQLite file write sqlite:///circles.db"),
        ("", "'' is not a database URL"),
        ("http://example.com/x", "http:// is not a database facilitator can use"),
        ("postgresql://ana:secret@host:notaport/db", "this database URL cannot be read"),
        ("sqlite://circles.db", "a SQLite URL has three slashes before its file: write sqlite:///circles.db"),
        ("sqlite:///no/such/folder/x.db", "there is no database at"),
    ],
)
def test_a_database_url_that_cannot_be_used_is_explained(url: str, said: str) -> None:
    for command in (["export"], ["consent-log"], ["report", "--out", "c.png"]):
        refused(run(*command, "--db", url), said)
        assert "secret" not in run(*command, "--db", url).output  # a password is never repeated
    if "no database" not in said:
        refused(run("demo", "--speed", "0", "--db", url), said)


def test_outputs_that_cannot_be_written_are_explained(db: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{db}"
    refused(run("export", "--db", url, "--out", str(tmp_path / "missing" / "x.csv")), "does not exist")
    folder = tmp_path / "exports.csv"
    folder.mkdir()
    refused(run("export", "--db", url, "--out", str(folder)), "it is a folder; name a file in it")
    chart, table = tmp_path / "c.png", tmp_path / "missing" / "t.csv"
    refused(run("report", "--db", url, "--out", str(chart), "--table", str(table)), "nothing was written")
    assert not chart.exists()  # no chart without its table
    full = subprocess.run(
        [sys.executable, "-m", "facilitator.cli", "export", "--db", url],
        stdout=open(os.devnull if not os.path.exists("/dev/full") else "/dev/full", "wb"),  # noqa: SIM115
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    assert full.returncode == 2 and "cannot write to standard output" in full.stderr, full.stderr


def test_format_and_file_ending_must_agree(db: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{db}"
    refused(run("export", "--db", url, "--out", str(tmp_path / "x.xls")), "end the name in .csv, .xlsx or .json")
    refused(run("export", "--db", url, "--format", "json", "--out", str(tmp_path / "y.csv")), "make them agree")
    assert not (tmp_path / "x.xls").exists() and not (tmp_path / "y.csv").exists()
    dashed = run("export", "--db", url, "--out", "-", "--level", "circle")
    assert dashed.exit_code == 0 and dashed.stdout.startswith("\ufeffcircle,")  # "-" is standard output
    assert "Exported 1 circle row (everything)." in dashed.stderr  # one row, not "1 circle rows"
    nowhere = run("export", "--db", url, "--out", os.devnull)  # a device needs no ending
    assert nowhere.exit_code == 0, nowhere.output


def test_a_filter_that_matches_nothing_here_says_so_instead_of_an_empty_export(db: Path) -> None:
    url = f"sqlite:///{db}"
    group = run("export", "--db", url, "--level", "circle").stdout.splitlines()[1].split(",")[3]
    refused(run("export", "--db", url, "--group", "nope"), "--group nope: no group of that name here", group)
    refused(run("export", "--db", url, "--script", "check-in-3"), "did you mean 'check-in-30'?")
    refused(run("report", "--db", url, "--out", "c.png", "--region", "North"), "no circle here has a region at all")
    refused(run("export", "--db", url, "--group", ""), "--group is empty")
    refused(run("export", "--db", url, "--since", ""), "--since is empty")
    platform = run("export", "--db", url, "--platform", "Console", "--level", "circle")
    assert platform.exit_code == 0 and len(platform.stdout.splitlines()) == 2  # case does not matter


def test_a_group_name_with_a_comma_is_one_group(tmp_path: Path) -> None:
    from facilitator.storage.store import Store

    url = f"sqlite:///{tmp_path / 'c.db'}"
    store = Store(url)
    store.ensure_group("matrix", "!a:example.org", "Leeds, Bradford and Wakefield")
    store.ensure_group("matrix", "!b:example.org", "York")
    store.close()
    result = run("export", "--db", url, "--group", "Leeds, Bradford and Wakefield", "--group", "York")
    assert result.exit_code == 0, result.output
    assert "group Leeds, Bradford and Wakefield, York" in result.stderr
    refused(run("export", "--db", url, "--group", "Leeds, York"), "--group Leeds: no group of that name here")


def test_the_consent_log_says_when_a_range_is_empty_or_backwards(db: Path) -> None:
    url = f"sqlite:///{db}"
    refused(run("consent-log", "--db", url, "--since", "2027-02-01", "--until", "2027-01-01"), "swap them")
    empty = run("consent-log", "--db", url, "--since", "2030-01-01")
    assert empty.exit_code == 0
    assert empty.stdout.startswith("No entries from 2030-01-01 to today: leave out --since and --until")
    whole = run("consent-log", "--db", url)
    assert whole.stdout.count(" given ") == 10  # five people, two entries each


def test_exporting_as_a_coordinator_never_writes_the_configuration_into_the_database(db: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{db}"
    with sqlite3.connect(db) as conn:
        room, before = conn.execute('SELECT room, name FROM "group"').fetchone()
    config = tmp_path / "serve.yaml"
    config.write_text(SERVE)
    result = run("export", "--db", url, "--config", str(config), "--as", "@ana:example.org")
    assert result.exit_code == 0, result.output
    assert "Exported 0 attendance rows (your groups: Renamed)" in result.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute('SELECT room, name FROM "group"').fetchall() == [(room, before)]


@pytest.mark.parametrize("name", [" ", "", "../x", "9lives"])
def test_the_console_needs_a_plain_name_to_type_as(tmp_path: Path, name: str) -> None:
    result = run("console", "--db", f"sqlite:///{tmp_path / 'c.db'}", "--as", name)
    refused(result, "a name starts with a letter")


KILLED = """
import sys
from facilitator.exports.outputs import replacing
with replacing(sys.argv[1]) as out:
    out.write(b"Ada,Bea,Cy\\r\\n" * 1000)
    out.flush()
    print("writing", flush=True)
    sys.stdin.read()  # until it is killed
"""


@pytest.mark.skipif(not hasattr(os, "O_TMPFILE"), reason="unnamed files are Linux's (elsewhere a .part file may stay)")
def test_an_export_killed_half_way_leaves_nothing_behind_that_names_people(tmp_path: Path) -> None:
    """SIGKILL (or a power cut) while the file is being written: the earlier file is as it was, and
    no half-written file is left with people's names in it (on Linux it had no name yet)."""
    out = tmp_path / "attendance.csv"
    out.write_text("last month's export")
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline() == "writing\n"
    child.kill()
    child.wait(timeout=30)
    assert out.read_text() == "last month's export"
    assert os.listdir(tmp_path) == ["attendance.csv"]


def test_a_report_writes_a_link_or_a_pipe_as_it_is_and_never_replaces_it(db: Path, tmp_path: Path) -> None:
    """Like export: --table through a link writes the link's file; a named pipe is written into,
    not replaced by a file (as root, replacing /dev/null would have broken the machine)."""
    url = f"sqlite:///{db}"
    target = tmp_path / "figures.csv"
    target.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    result = run("report", "--db", url, "--out", str(tmp_path / "c.png"), "--table", str(link))
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and target.read_text(encoding="utf-8-sig").startswith("month,group")
    pipe = tmp_path / "pipe.csv"
    os.mkfifo(pipe)
    reader = subprocess.Popen(["cat", str(pipe)], stdout=subprocess.PIPE)
    result = run("report", "--db", url, "--out", str(tmp_path / "d.png"), "--table", str(pipe))
    out, _ = reader.communicate(timeout=30)
    assert result.exit_code == 0, result.output
    assert out.decode("utf-8-sig").startswith("month,group") and stat.S_ISFIFO(os.lstat(pipe).st_mode)
    refused(run("report", "--db", url, "--out", os.devnull, "--format", "png"), "say where the table goes")


def test_an_existing_file_that_cannot_be_replaced_is_written_in_place(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replacing needs the folder; writing an existing file needs only the file: a coordinator's
    file in a shared folder they may not write to, or a file with a second name (a hard link),
    is written into, keeping its owner and its other names."""

    url = f"sqlite:///{db}"
    shared = tmp_path / "shared"
    shared.mkdir()
    out = shared / "attendance.csv"
    out.write_text("old")
    before = out.stat().st_ino
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: p != str(shared) and real_access(p, mode))
    result = run("export", "--db", url, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.stat().st_ino == before and out.read_text(encoding="utf-8-sig").startswith("circle,date,group,")
    monkeypatch.undo()
    other = tmp_path / "other-name.csv"
    os.link(out, other)
    assert run("report", "--db", url, "--out", str(tmp_path / "c.png"), "--table", str(other)).exit_code == 0
    assert out.read_text(encoding="utf-8-sig").startswith("month,group")  # both names: one file, written


@pytest.mark.parametrize("name", ["Łukasz", "علی", "Zoë"])
def test_the_console_takes_a_name_in_any_alphabet(tmp_path: Path, name: str) -> None:
    result = run("console", "--db", f"sqlite:///{tmp_path / 'c.db'}", "--as", name)
    assert result.exit_code == 0, result.output


def test_serve_stops_rather_than_start_an_empty_database_beside_the_one_it_used(
    demo_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """serve.yaml's relative SQLite file used to be found from the folder serve started in; it is
    next to serve.yaml now. Upgrading, serve must not quietly open an empty database there."""
    started_in = tmp_path / "srv"
    started_in.mkdir()
    shutil.copy(demo_db, started_in / "facilitator.db")
    config = tmp_path / "etc" / "serve.yaml"
    config.parent.mkdir()
    config.write_text(SERVE.replace("matrix:", "database: sqlite:///facilitator.db\nmatrix:", 1))
    monkeypatch.chdir(started_in)
    refused(run("serve", "--config", str(config)), f"but there is one at {started_in / 'facilitator.db'}")
    assert not (config.parent / "facilitator.db").exists()
