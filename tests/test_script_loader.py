"""Loading scripts: a valid one loads; a broken one says where and how to fix it, in one line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from facilitator.script.loader import MAX_BYTES, ScriptError, load_script, load_script_text

FIXTURES = Path(__file__).parent / "fixtures" / "scripts"

# Line numbers below refer to this script; keep it in sync with the tests.
VALID = """\
title: Thursday check-in
agreement: What is said here stays here.
consent:
  version: "1"
  text: I agree that my name and attendance are recorded.
phases:
  - kind: round
    name: Check-in
    turn: 90s
  - kind: open
    duration: 10m
  - kind: close
    text: Thank you for being here.
"""


def error_for(text: str, path: str = "s.yaml") -> ScriptError:
    with pytest.raises(ScriptError) as caught:
        load_script_text(text, path)
    return caught.value


def edited(old: str, new: str) -> str:
    assert old in VALID
    return VALID.replace(old, new, 1)


def assert_error(err: ScriptError, line: int, column: int, *fragments: str) -> None:
    assert (err.line, err.column) == (line, column), str(err)
    assert str(err) == f"{err.path}:{line}:{column}: {err.message}"
    assert "\n" not in str(err)
    for fragment in fragments:
        assert fragment in err.message, str(err)


def test_valid_script_loads() -> None:
    script = load_script_text(VALID)
    assert script.title == "Thursday check-in"
    assert [p.kind for p in script.phases] == ["round", "open", "close"]
    assert script.phases[0].turn == 90  # type: ignore[union-attr]


def test_fixture_file_loads() -> None:
    script = load_script(FIXTURES / "check-in.yaml")
    assert script.required_roles == ["presenter"]
    assert len(script.phases) == 7


def test_unknown_key_suggests_the_right_one() -> None:
    err = error_for(edited("    duration: 10m", "    durration: 10m"))
    assert_error(err, 11, 5, "unknown key 'durration' in phase 2 (open); did you mean 'duration'?")
    assert str(err).startswith("s.yaml:11:5: ")


def test_unknown_key_without_close_match_lists_allowed_keys() -> None:
    err = error_for(edited("title: Thursday check-in\n", "title: Thursday check-in\nzebra: 1\n"))
    assert_error(err, 2, 1, "unknown key 'zebra' at the top level", "allowed keys: title, summary")


def test_wrong_type_points_at_the_value() -> None:
    err = error_for(edited("    turn: 90s\n", '    turn: 90s\n    rounds: "two"\n'))
    assert_error(err, 10, 13, "'rounds' in phase 1 (round) should be a whole number", '"two"', "rounds: 2")


def test_number_where_text_is_expected_suggests_quotes() -> None:
    err = error_for(edited('version: "1"', "version: 1"))
    assert_error(err, 4, 12, "'version' in 'consent' should be text", 'version: "1" (in quotes)')


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("5 mins", "'5 mins' is not a duration"), ("5", "5 has no unit"), ("1:30", "'1:30' is not a duration")],
)
def test_bad_duration_says_how_to_write_one(value: str, fragment: str) -> None:
    err = error_for(edited("turn: 90s", f"turn: {value}"))
    assert_error(err, 9, 11, "'turn' in phase 1 (round)", fragment, '"90s", "5m" or "1h30m"')


def test_round_without_turn_says_what_turn_is() -> None:
    err = error_for(edited("    turn: 90s\n", ""))
    assert_error(err, 7, 5)
    assert err.message == (
        "round phase 'Check-in' needs 'turn' (how long each person holds the piece), e.g. turn: \"90s\""
    )


def test_missing_top_level_field() -> None:
    err = error_for(edited("title: Thursday check-in\n", ""))
    assert_error(err, 1, 1, "the script needs 'title'", 'title: "')


@pytest.mark.parametrize(("indent", "column"), [("\t", 1), ("  \t", 3)])
def test_tab_in_indentation(indent: str, column: int) -> None:
    err = error_for(edited("    name: Check-in", f"{indent}name: Check-in"))
    assert_error(err, 8, column)
    assert err.message == "a tab is used for indentation; indent with spaces instead"


def test_tab_inside_block_text_is_fine() -> None:
    script = load_script_text(edited("    name: Check-in", "    text: |\n      A poem:\n      \tindented"))
    assert script.phases[0].text == "A poem:\n\tindented\n"


def test_anchor_bomb_is_refused_fast() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    started = time.perf_counter()
    err = error_for("\n".join(lines) + "\n")
    assert time.perf_counter() - started < 1.0
    assert_error(err, 5, 8, "alias *d expands", "10,000 YAML nodes")


def test_alias_inside_itself_is_refused() -> None:
    err = error_for("title: &x [*x]\n")
    assert_error(err, 1, 12, "alias *x is inside its own anchor &x")


def test_python_object_tag_is_refused_at_the_tag(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    err = error_for(edited("title: Thursday check-in", f'title: !!python/object/apply:os.system ["touch {marker}"]'))
    assert_error(err, 1, 8, "'!!python/object/apply:os.system' is not allowed", "remove the tag")
    assert not marker.exists()


def test_unknown_local_tag_is_refused() -> None:
    err = error_for(edited("turn: 90s", "turn: !secs 90"))
    assert_error(err, 9, 11, "the tag '!secs' is not allowed")


def test_file_over_size_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text(VALID + "# " + "x" * MAX_BYTES + "\n", encoding="utf-8")
    err = load_error(big)
    assert_error(err, 1, 1, "256 KiB")
    assert_error(error_for(VALID + "#" * MAX_BYTES), 1, 1, "at most 256 KiB")


def test_duplicate_key_points_at_the_second() -> None:
    err = error_for(edited("    turn: 90s\n", "    turn: 90s\n    turn: 2m\n"))
    assert_error(err, 10, 5, "duplicate key 'turn' (first at line 9, column 5)")


def test_keys_must_be_text() -> None:
    err = error_for(edited("title: Thursday check-in", "title: Thursday check-in\n1: one"))
    assert_error(err, 2, 1, "keys must be text")


def test_last_phase_must_be_close() -> None:
    err = error_for(edited("  - kind: close\n    text: Thank you for being here.\n", ""))
    assert_error(err, 10, 11, "the last phase must be a close phase", "- kind: close")


def test_undeclared_role_points_at_the_role() -> None:
    err = error_for(edited("    turn: 90s\n", "    turn: 90s\n    speakers: [presenter]\n"))
    assert_error(err, 10, 16, "names role 'presenter'", "'roles'")


def test_misspelt_role_suggests_the_declared_one() -> None:
    roles = "roles:\n  - name: presenter\n    description: Brings a case.\nphases:"
    text = edited("phases:", roles).replace("    turn: 90s\n", "    turn: 90s\n    silent: [presentr]\n")
    err = error_for(text)
    assert_error(err, 13, 14, "names role 'presentr'", "did you mean 'presenter'?")


def test_unknown_kind_lists_the_kinds() -> None:
    err = error_for(edited("kind: open", "kind: opne"))
    assert_error(err, 10, 11, "phase 2 has unknown kind 'opne'", "announce, round, open, silence, close")


def test_reminder_outside_the_phase() -> None:
    err = error_for(edited("    duration: 10m\n", "    duration: 10m\n    remind_before: [1m, 20m]\n"))
    assert_error(err, 12, 25, "a reminder 1200s before the end must fall inside its 600s")


def test_yaml_syntax_error_has_position_and_hint() -> None:
    err = error_for(edited("title: Thursday check-in", "title: Thursday: check-in"))
    assert_error(err, 1, 16, "YAML syntax", "put the whole value in quotes")


def test_empty_and_non_mapping_scripts() -> None:
    assert_error(error_for(""), 1, 1, "the script is empty")
    assert_error(error_for("# just a comment\n"), 1, 1, "the script is empty")
    assert_error(error_for("- title: x\n"), 1, 1, "the top level must be a mapping")


def test_all_errors_are_kept_in_file_order() -> None:
    text = edited("turn: 90s", "turn: 5").replace("duration: 10m", "duration: ten")
    err = error_for(text)
    assert [(e.line, e.column) for e in err.errors] == [(9, 11), (11, 15)]
    assert (err.line, err.column) == (9, 11)


def load_error(path: Path | str) -> ScriptError:
    with pytest.raises(ScriptError) as caught:
        load_script(path)
    return caught.value


def test_not_utf8(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(VALID.replace("Thursday", "Caf\xe9").encode("latin-1"))
    err = load_error(bad)
    assert_error(err, 1, 11, "not UTF-8", "the byte 0xE9 here", "save it as UTF-8")  # title: Caf|é
    assert err.path == str(bad)


def test_missing_file(tmp_path: Path) -> None:
    err = load_error(tmp_path / "nope.yaml")
    assert_error(err, 1, 1, "no such file")
    assert str(err) == f"{tmp_path / 'nope.yaml'}:1:1: no such file; check the path"


def test_load_script_reports_the_file_path(tmp_path: Path) -> None:
    script_file = tmp_path / "circle.yaml"
    script_file.write_text(edited("turn: 90s", "turn: 5 mins"), encoding="utf-8")
    assert str(load_error(script_file)).startswith(f"{script_file}:9:11: ")


def test_open_without_duration_names_the_phase_by_number() -> None:
    err = error_for(edited("    duration: 10m\n", ""))
    assert_error(err, 10, 5)
    assert err.message == "open phase 2 needs 'duration' (how long it lasts), e.g. duration: \"10m\""


def test_duration_in_a_round_points_to_turn() -> None:
    err = error_for(edited("    turn: 90s", "    duration: 90s"))
    assert_error(err, 9, 5, "unknown key 'duration' in phase 1 (round)", "'turn'", 'turn: "90s"')


def test_error_in_an_aliased_value_points_at_the_alias() -> None:
    text = edited("    name: Check-in", "    name: &n Check-in\n    order: *n")
    assert_error(error_for(text), 9, 12, "'order' in phase 1 (round) should be 'join', 'random' or 'popcorn'")
