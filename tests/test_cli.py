"""The ``facilitator`` command as a user runs it: check, schema, demo, console, diagram."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from adapters.console_session import run_console
from facilitator.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_every_shipped_script_passes_check() -> None:
    scripts = sorted(str(p) for p in (ROOT / "sessions").glob("*.yaml"))
    assert len(scripts) >= 5
    result = CliRunner().invoke(main, ["check", *scripts])
    assert result.exit_code == 0, result.output
    assert result.output.count("ok ") >= 5


def test_check_a_broken_script_gives_one_line_with_file_line_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "title: Broken\nagreement: Be kind\nconsent: {version: '1', text: Attendance only}\n"
        "phases:\n  - kind: open\n    duration: 5 mins\n  - kind: close\n    text: Bye\n",
        encoding="utf-8",
    )
    # a real process, as a user runs it: no traceback, one line on stderr, exit 1
    proc = subprocess.run(
        [sys.executable, "-m", "facilitator.cli", "check", str(bad)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"{bad}:6:15: ")
    assert '"5m"' in lines[0]
    assert "Traceback" not in proc.stderr


def test_schema_is_json_schema_for_scripts() -> None:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert "phases" in schema["properties"]


def test_diagram_shows_the_states() -> None:
    result = CliRunner().invoke(main, ["diagram"])
    assert result.exit_code == 0
    for state in ("new", "gathering", "running", "paused", "ended"):
        assert state in result.output


def test_demo_runs_a_whole_circle_and_exits_0(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    result = CliRunner().invoke(main, ["demo", "--speed", "0", "--participants", "4", "--db", db])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "the talking piece is with you" in out
    assert "Check-out" in out
    assert 'The circle for "Check-in circle (30 minutes)" has ended' in out
    assert "The circle closed." in out


def test_demo_runs_every_shipped_script(tmp_path: Path) -> None:
    for path in sorted((ROOT / "sessions").glob("*.yaml")):
        db = f"sqlite:///{tmp_path / (path.stem + '.db')}"
        result = CliRunner().invoke(main, ["demo", "--speed", "0", "--script", path.stem, "--db", db])
        assert result.exit_code == 0, (path.stem, result.output[-2000:])
        assert "has ended" in result.output


def test_demo_with_an_unknown_script_says_which_exist(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    result = CliRunner().invoke(main, ["demo", "--speed", "0", "--script", "nope", "--db", db])
    assert result.exit_code == 2
    assert "no script called 'nope'" in result.output and "check-in-30" in result.output


async def test_console_lets_a_person_type_as_several_people(tmp_path: Path) -> None:
    typed = "\n".join(
        [
            "start check-in-30",
            "as Sam",
            "join",
            "consent",
            "Facilitator: begin",
            "status",
            "frobnicate",
            "quit",
        ]
    )
    out = io.StringIO()
    await run_console(io.StringIO(typed + "\n"), out, database_url=f"sqlite:///{tmp_path / 'c.db'}")
    text = out.getvalue()
    assert "(privately to sam) Before you join, two things to agree to" in text
    assert "Someone has joined the circle. 1 in the circle now." in text
    assert "Welcome, and thank you for making the time" in text
    assert "(privately to sam) Circle status: running." in text
    assert "(privately to sam) I did not understand that (there is no command 'frobnicate')" in text
