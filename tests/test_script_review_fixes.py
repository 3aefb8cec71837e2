"""Scripts that cannot be used are refused with a sentence, at check time and at start, never a crash.

A prompt bank or pinned prompt that does not exist, an absurd duration, a file that is not
UTF-8, a named pipe where a script should be: ``check`` names file, line and column, ``start``
refuses privately with the same sentence, and ``demo`` prints it and exits 2.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from facilitator.cli import main
from facilitator.paths import PROJECT_ROOT
from facilitator.prompts import clear_cache
from facilitator.runtime.clock import ManualClock
from facilitator.runtime.library import ScriptLibrary
from facilitator.script.check import check_paths
from facilitator.script.loader import ScriptError, load_script, load_script_text
from tests.conftest import Host, make_host

# Line numbers and columns below refer to this script; keep them in sync with the tests.
SCRIPT = """\
title: Small circle
agreement: One voice at a time.
consent:
  version: "1"
  text: Attendance only.
phases:
  - kind: round
    name: Check-in
    prompt: {bank: check-in}
    turn: 90s
  - kind: open
    duration: 10m
  - kind: close
    text: Thank you.
"""
BANKS = "check-in, check-out, criminal-justice, education, health, rebuild, reflect, revitalise, social-care"


def edited(old: str, new: str) -> str:
    assert old in SCRIPT
    return SCRIPT.replace(old, new, 1)


def check(*paths: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = check_paths([str(p) for p in paths], out, err)
    return code, out.getvalue(), err.getvalue()


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


async def host_over(sessions: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Host:
    """A runtime whose library is ``sessions`` (as FACILITATOR_SESSIONS_DIR makes it)."""
    monkeypatch.setenv("FACILITATOR_SESSIONS_DIR", str(sessions))
    return await make_host(f"sqlite:///{tmp_path / 'circles.db'}", ManualClock(1_800_000_000.0), tmp_path / "files")


async def started(host: Host, name: str) -> tuple[bool, str]:
    """Fran types ``start NAME``: whether a circle opened, and the last thing said to her privately."""
    outcome = await host.console.say("Fran", f"start {name}")
    private = [line.plain() for line in host.console.transcript if line.to == "console:fran"]
    return outcome.accepted, private[-1] if private else ""


async def stop(host: Host) -> None:
    await host.runtime.stop()
    host.store.close()


# ------------------------------------------------------------------ A: prompt banks and ids


def test_check_names_a_prompt_bank_that_does_not_exist(tmp_path: Path) -> None:
    bad = write(tmp_path, "badbank.yaml", edited("{bank: check-in}", "{bank: nope}"))
    code, out, err = check(bad)
    assert code == 1 and out == ""
    assert err.splitlines() == [f"{bad}:9:20: no prompt bank 'nope'; banks here: {BANKS}"]


def test_check_suggests_the_bank_that_was_meant(tmp_path: Path) -> None:
    bad = write(tmp_path, "typo.yaml", edited("{bank: check-in}", "{bank: chek-in}"))
    code, _, err = check(bad)
    assert code == 1
    assert err.startswith(f"{bad}:9:20: no prompt bank 'chek-in' (did you mean 'check-in'?); banks here: ")


def test_check_names_a_pinned_prompt_id_the_bank_lacks(tmp_path: Path) -> None:
    bad = write(tmp_path, "badid.yaml", edited("{bank: check-in}", "{bank: check-in, id: no-such-id}"))
    code, _, err = check(bad)
    assert code == 1
    assert err.startswith(f"{bad}:9:34: bank 'check-in' has no prompt 'no-such-id'; its prompts: arrive-weather, ")


def test_a_good_pinned_prompt_passes_check(tmp_path: Path) -> None:
    good = write(tmp_path, "pinned.yaml", edited("{bank: check-in}", "{bank: check-in, id: arrive-word}"))
    assert check(good)[0] == 0


def test_check_names_a_bank_file_that_cannot_be_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    banks = tmp_path / "prompts" / "banks"
    banks.mkdir(parents=True)
    (banks / "check-in.yaml").write_text("bank: check-in\ntitle: [unclosed\n", encoding="utf-8")
    monkeypatch.setenv("FACILITATOR_PROMPTS_DIR", str(tmp_path / "prompts"))
    clear_cache()
    script = write(tmp_path, "s.yaml", SCRIPT)
    code, _, err = check(script)
    assert code == 1
    assert err.startswith(f"{script}:9:20: prompt bank 'check-in' cannot be used: {banks / 'check-in.yaml'}: ")
    assert len(err.splitlines()) == 1


async def test_start_with_an_unknown_bank_or_id_is_refused_with_the_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    badbank = write(sessions, "badbank.yaml", edited("{bank: check-in}", "{bank: nope}"))
    badid = write(sessions, "badid.yaml", edited("{bank: check-in}", "{bank: check-in, id: no-such-id}"))
    write(sessions, "good.yaml", SCRIPT)
    host = await host_over(sessions, tmp_path, monkeypatch)
    try:
        opened, said = await started(host, "badbank")
        assert not opened
        assert said == f"That script cannot be used: {badbank}:9:20: no prompt bank 'nope'; banks here: {BANKS}"
        opened, said = await started(host, "badid")
        assert not opened
        assert said.startswith(f"That script cannot be used: {badid}:9:34: bank 'check-in' has no prompt 'no-such-id'")
        assert host.runtime.circle_in("console", "room-1") is None
        # nothing is said in the room, and the room is free for a script that works
        assert not [line for line in host.console.transcript if line.to is None]
        assert (await started(host, "good"))[0]
    finally:
        await stop(host)


async def test_a_bank_removed_after_the_script_was_read_is_refused_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts = tmp_path / "prompts"
    shutil.copytree(PROJECT_ROOT / "prompts", prompts)
    monkeypatch.setenv("FACILITATOR_PROMPTS_DIR", str(prompts))
    clear_cache()
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    write(sessions, "s.yaml", SCRIPT)
    host = await host_over(sessions, tmp_path, monkeypatch)
    try:
        loaded = host.runtime.library.get("s")  # checked while the bank was there
        (prompts / "banks" / "check-in.yaml").unlink()
        monkeypatch.setattr(host.runtime.library, "get", lambda name: loaded)
        opened, said = await started(host, "s")
        assert not opened
        assert said.startswith("That script cannot be used: ") and "no prompt bank 'check-in'" in said
        assert host.runtime.circle_in("console", "room-1") is None
    finally:
        await stop(host)


def test_demo_with_an_unknown_bank_prints_the_sentence_and_exits_2(tmp_path: Path) -> None:
    bad = write(tmp_path, "badbank.yaml", edited("{bank: check-in}", "{bank: nope}"))
    db = tmp_path / "demo.db"
    result = CliRunner().invoke(main, ["demo", "--speed", "0", "--script", str(bad), "--db", f"sqlite:///{db}"])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert f"{bad}:9:20: no prompt bank 'nope'; banks here: " in result.output
    assert "Traceback" not in result.output
    assert not db.exists()  # refused before anything was stored


# ------------------------------------------------------------------ B: durations within a day


@pytest.mark.parametrize(
    ("old", "new", "line", "column", "where", "shown"),
    [
        (
            "turn: 90s",
            "turn: 99999999999999999999999h",
            10,
            11,
            "'turn' in phase 1 (round)",
            "'99999999999999999999999h'",
        ),
        ("duration: 10m", "duration: 100000000000h", 12, 15, "'duration' in phase 2 (open)", "'100000000000h'"),
        ("duration: 10m", "duration: 24h1s", 12, 15, "'duration' in phase 2 (open)", "'24h1s'"),
        ("duration: 10m", "duration: 1441m", 12, 15, "'duration' in phase 2 (open)", "'1441m'"),
        ("turn: 90s", "turn: " + "9" * 5000 + "s", 10, 11, "'turn' in phase 1 (round)", "'999999999999999999999...'"),
    ],
)
def test_a_duration_over_a_day_is_refused_where_it_is_written(
    tmp_path: Path, old: str, new: str, line: int, column: int, where: str, shown: str
) -> None:
    bad = write(tmp_path, "long.yaml", edited(old, new))
    code, out, err = check(bad)
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"{bad}:{line}:{column}: {where}: {shown} is longer than a day; a duration in a script may be at most 24h"
    ]


def with_opens(*durations: str, turn: str = "90s") -> str:
    """SCRIPT with its open phase replaced by one open phase of each duration."""
    opens = "".join(f"  - kind: open\n    duration: {d}\n" for d in durations)
    return edited("  - kind: open\n    duration: 10m\n", opens).replace("turn: 90s", f"turn: {turn}")


def test_a_day_for_a_phase_and_a_week_for_a_script_are_allowed() -> None:
    # a round planned at exactly a day (8 people × 3h) and an open phase of a day
    assert len(load_script_text(with_opens("24h", turn="3h")).phases) == 3
    # a round, then open phases, up to exactly a week: 8 × 90s + 23h48m + 6 × 24h
    assert len(load_script_text(with_opens("23h48m", *["24h"] * 6)).phases) == 9


def test_a_round_planned_past_a_day_is_refused_at_the_round(tmp_path: Path) -> None:
    bad = write(tmp_path, "round.yaml", with_opens("10m", turn="4h"))
    code, _, err = check(bad)
    assert code == 1
    assert err.splitlines() == [
        f"{bad}:7:5: phase 1 (Check-in) is planned at about 32h (8 people × 4h, from expected_participants); "
        "a phase may last at most 24h, so shorten its turn or have fewer rounds"
    ]


def test_a_whole_script_over_a_week_is_refused_at_the_phase_that_passes_it(tmp_path: Path) -> None:
    bad = write(tmp_path, "week.yaml", with_opens(*["24h"] * 7))  # 8 × 90s + 7 × 24h
    code, _, err = check(bad)
    assert code == 1
    assert err.splitlines() == [
        f"{bad}:23:5: phase 8 (Open reflection) brings the circle to about 168h 12m (a round counted as 8 people); "
        "a whole circle may last at most a week (168h), so shorten its phases or turns"
    ]


def test_an_absurd_script_cannot_be_started(tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    write(sessions, "long.yaml", edited("duration: 10m", "duration: 100000000000h"))
    with pytest.raises(ScriptError) as caught:
        ScriptLibrary(sessions).get("long")
    assert str(caught.value).startswith(f"{sessions / 'long.yaml'}:12:15: ")


# ------------------------------------------------------------------ C: not UTF-8


def windows_1252(folder: Path) -> Path:
    """SCRIPT with an en dash and an accent in line 14, saved as Windows-1252."""
    path = folder / "latin.yaml"
    path.write_bytes(edited("text: Thank you.", "text: Thank you – café.").encode("cp1252"))
    return path


def test_check_gives_the_line_and_column_of_the_first_byte_that_is_not_utf8(tmp_path: Path) -> None:
    latin = windows_1252(tmp_path)
    code, _, err = check(latin)
    assert code == 1
    assert err.startswith(f"{latin}:14:21: the file is not UTF-8: the byte 0x96 here ")
    assert "save it as UTF-8" in err


async def test_start_gives_the_true_reason_for_a_file_that_is_not_utf8(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    latin = windows_1252(sessions)
    host = await host_over(sessions, tmp_path, monkeypatch)
    try:
        opened, said = await started(host, "latin")
        assert not opened
        assert said.startswith(f"That script cannot be used: {latin}:14:21: the file is not UTF-8")
        assert "empty" not in said
    finally:
        await stop(host)


def test_a_utf16_file_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "wide.yaml"
    path.write_bytes(SCRIPT.encode("utf-16"))
    with pytest.raises(ScriptError) as caught:
        load_script(path)
    assert str(caught.value) == f"{path}:1:1: the file is saved as UTF-16, not UTF-8; save it as UTF-8"


# ------------------------------------------------------------------ D: never open a pipe

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need a POSIX system")


@needs_fifo
def test_check_refuses_a_named_pipe_instead_of_waiting_on_it(tmp_path: Path) -> None:
    pipe = tmp_path / "p.yaml"
    os.mkfifo(pipe)
    # a real process, as a user runs it: before the fix it waited for a writer forever
    proc = subprocess.run(
        [sys.executable, "-m", "facilitator.cli", "check", str(pipe)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=PROJECT_ROOT,
    )
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"{pipe}:1:1: this is a named pipe (FIFO), not a regular file; give the path of a .yaml file saved on disk"
    ]


@needs_fifo
async def test_start_refuses_a_named_pipe_in_the_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    write(sessions, "good.yaml", SCRIPT)
    os.mkfifo(sessions / "p.yaml")
    host = await host_over(sessions, tmp_path, monkeypatch)
    try:
        assert host.runtime.library.names() == ["good"]  # not offered by `scripts`
        opened, said = await started(host, "p")
        assert not opened
        assert said.startswith(f"That script cannot be used: {sessions / 'p.yaml'}:1:1: this is a named pipe (FIFO)")
    finally:
        await stop(host)


@needs_fifo
def test_a_named_pipe_among_the_banks_does_not_hang_a_start(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    shutil.copytree(PROJECT_ROOT / "prompts", prompts)
    os.mkfifo(prompts / "banks" / "stray.yaml")
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    write(sessions, "s.yaml", SCRIPT)
    env = {
        **os.environ,
        "FACILITATOR_PROMPTS_DIR": str(prompts),
        "FACILITATOR_SESSIONS_DIR": str(sessions),
        "FACILITATOR_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}",
    }
    # a real console: before the fix, reading every bank opened the pipe and waited forever
    proc = subprocess.run(
        [sys.executable, "-m", "facilitator.cli", "console"],
        input="start s\nquit\n",
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Small circle" in proc.stdout  # the circle opened, its prompt drawn from check-in


@pytest.mark.parametrize("kind", ["[]", "{a: 1}"])
def test_a_phase_kind_that_is_a_list_or_a_mapping_is_a_sentence_not_a_crash(tmp_path: Path, kind: str) -> None:
    bad = write(tmp_path, "kind.yaml", edited("  - kind: open\n    duration: 10m", f"  - kind: {kind}\n    turn: 5m"))
    code, out, err = check(bad)
    assert code == 1 and out == "" and "Traceback" not in err
    assert err.startswith(f"{bad}:11:11: phase 2 has unknown kind ") and "use one of: announce, round" in err
