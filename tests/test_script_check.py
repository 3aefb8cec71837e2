"""``check`` prints a timeline or a one-line error per script; ``schema`` is valid JSON Schema."""

from __future__ import annotations

import io
import json
from pathlib import Path

from facilitator.script.check import check_paths, schema_json
from facilitator.script.loader import load_script_text
from facilitator.script.timeline import format_timeline, timeline

FIXTURES = Path(__file__).parent / "fixtures" / "scripts"

SMALL = """\
title: Small circle
expected_participants: 4
agreement: What is said here stays here.
consent:
  version: "1"
  text: I agree.
roles:
  - name: presenter
    description: Brings a case.
phases:
  - kind: announce
    name: Welcome
    text: Welcome.
    duration: 1m
  - kind: round
    name: Check-in
    turn: 90s
    rounds: 2
  - kind: silence
    duration: 30s
  - kind: round
    name: Case
    turn: 5m
    speakers: [presenter]
  - kind: close
    text: Thank you.
"""


def run(*paths: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = check_paths(list(paths), out, err)
    return code, out.getvalue(), err.getvalue()


def test_timeline_offsets_lengths_and_estimates() -> None:
    rows = timeline(load_script_text(SMALL))
    assert [(r.index, r.kind, r.start, r.length) for r in rows] == [
        (1, "announce", 0, 60),
        (2, "round", 60, 90 * 4 * 2),
        (3, "silence", 780, 30),
        (4, "round", 810, 300),
        (5, "close", 1110, 0),
    ]
    assert rows[1].note == "4 × 1m 30s × 2 rounds (estimate)"
    assert rows[3].note == "1 × 5m, presenter only (estimate)"
    assert rows[0].note == ""
    assert sum(r.length for r in rows) == 1110


def test_format_timeline_shows_clock_offsets_and_total() -> None:
    table = format_timeline(load_script_text(SMALL), "small.yaml")
    lines = table.splitlines()
    assert lines[0] == "Small circle (small.yaml)"
    assert lines[1].split() == ["#", "kind", "name", "start", "length"]
    assert lines[3].split()[:5] == ["2", "round", "Check-in", "1:00", "12m"]
    assert "4 × 1m 30s × 2 rounds (estimate)" in lines[3]
    assert lines[-1].split()[:3] == ["total", "18:30", "18m"]
    assert "estimated" in lines[-1]


def test_check_good_scripts(tmp_path: Path) -> None:
    (tmp_path / "small.yaml").write_text(SMALL, encoding="utf-8")
    code, out, err = run(str(tmp_path), str(FIXTURES / "check-in.yaml"))
    assert (code, err) == (0, "")
    assert f"ok  {tmp_path / 'small.yaml'}  (Small circle, 5 phases, about 18m 30s total)" in out
    assert "ok  " + str(FIXTURES / "check-in.yaml") in out
    assert "18:30" in out


def test_check_broken_script_prints_the_error_line(tmp_path: Path) -> None:
    good, bad = tmp_path / "a-good.yaml", tmp_path / "b-bad.yaml"
    good.write_text(SMALL, encoding="utf-8")
    bad.write_text(SMALL.replace("turn: 90s", "turn: 5 mins"), encoding="utf-8")
    code, out, err = run(str(tmp_path))
    assert code == 1
    assert err.splitlines() == [
        f"{bad}:17:11: 'turn' in phase 2 (round): '5 mins' is not a duration; "
        'write a duration with a unit, like "90s", "5m" or "1h30m"'
    ]
    assert f"ok  {good}" in out and str(bad) not in out


def test_check_missing_file_and_empty_directory(tmp_path: Path) -> None:
    code, _, err = run(str(tmp_path / "nope.yaml"))
    assert code == 1 and err.startswith(f"{tmp_path / 'nope.yaml'}:1:1: no such file")
    code, _, err = run(str(tmp_path))
    assert code == 1 and "no *.yaml scripts" in err


def test_check_without_paths() -> None:
    code, out, err = run()
    assert (code, out) == (1, "")
    assert "no scripts to check" in err


def test_schema_is_json_schema_with_the_phase_kinds() -> None:
    schema = json.loads(schema_json())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"]
    mapping = schema["properties"]["phases"]["items"]["discriminator"]["mapping"]
    assert set(mapping) == {"announce", "round", "open", "silence", "close"}
    assert schema["$defs"]["RoundPhase"]["properties"]["turn"]["type"] == "string"
    assert set(schema["required"]) >= {"title", "agreement", "consent", "phases"}
