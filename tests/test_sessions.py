"""Tests for the ready session scripts in sessions/: they validate and keep their promises."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from facilitator.prompts import load_banks
from facilitator.script.models import OpenPhase, PromptRef, RoundPhase, Script

PROJECT = Path(__file__).resolve().parent.parent
SESSIONS = sorted((PROJECT / "sessions").glob("*.yaml"))
BANKS_DIR = PROJECT / "prompts" / "banks"

REQUIRED = {
    "check-in-30",
    "reflective-practice-75",
    "restorative-circle",
    "case-reflection-balint",
    "action-learning-set",
}


def load(path: Path) -> Script:
    """Validate with the models and, once it is importable, with the line-and-column loader too."""
    script = Script.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    try:
        from facilitator.script.loader import load_script
    except ImportError:
        return script
    assert load_script(path) == script
    return script


def ids(paths: list[Path]) -> list[str]:
    return [path.stem for path in paths]


def prompt_refs(script: Script) -> list[PromptRef]:
    return [
        phase.prompt
        for phase in script.phases
        if isinstance(phase, RoundPhase | OpenPhase) and isinstance(phase.prompt, PromptRef)
    ]


def test_the_ready_formats_are_all_there() -> None:
    assert {path.stem for path in SESSIONS} >= REQUIRED


@pytest.mark.parametrize("path", SESSIONS, ids=ids(SESSIONS))
def test_script_validates_and_is_described(path: Path) -> None:
    script = load(path)
    assert script.summary and script.format
    assert script.consent.version
    assert script.phases[0].kind == "announce"
    assert any(phase.kind == "announce" and phase.show_agreement for phase in script.phases)


@pytest.mark.parametrize("path", SESSIONS, ids=ids(SESSIONS))
def test_every_bank_and_pinned_prompt_exists(path: Path) -> None:
    banks = load_banks(BANKS_DIR)
    for ref in prompt_refs(load(path)):
        assert ref.bank in banks, f"{path.name} names bank {ref.bank!r}, which is not in prompts/banks"
        if ref.id is not None:
            assert ref.id in banks[ref.bank].ids, f"{path.name}: bank {ref.bank!r} has no prompt {ref.id!r}"


@pytest.mark.parametrize("path", SESSIONS, ids=ids(SESSIONS))
def test_consent_says_exactly_what_is_recorded(path: Path) -> None:
    script = load(path)
    text = " ".join(script.consent.text.split()).lower()
    assert re.search(r"never records what anyone (says|said)", text), "must say what is said is never recorded"
    assert "attendance only" in text
    for recorded in ("when you joined and left", "how long", "spoke or passed"):
        assert recorded in text, f"consent text should say it records {recorded!r}"
    assert "withdraw" in text and "one command" in text and "at any time" in text
    assert "your data" in text
    if script.allow_anonymous:
        assert "anonymous" in text and "counted, not named" in text
    else:
        assert "not offered" in text, "say plainly when anonymous attendance is not available"


@pytest.mark.parametrize("path", SESSIONS, ids=ids(SESSIONS))
def test_agreement_honours_passing_and_the_relational_qualities(path: Path) -> None:
    agreement = load(path).agreement.lower()
    assert "pass" in agreement
    for quality in ("reliability", "curiosity", "flexibility", "authenticity", "responsibility"):
        assert quality in agreement, f"{path.name}: the agreement does not name {quality}"


@pytest.mark.parametrize("path", SESSIONS, ids=ids(SESSIONS))
def test_open_phases_have_gentle_reminders(path: Path) -> None:
    for phase in load(path).phases:
        if isinstance(phase, OpenPhase) and phase.duration >= 5 * 60:
            assert phase.remind_before, f"{path.name}: {phase.name} has no reminder before its end"
        if isinstance(phase, RoundPhase) and phase.turn >= 3 * 60:
            assert phase.remind_before, f"{path.name}: {phase.name}'s long turns have no reminder"


def test_reflective_practice_walks_the_three_rs() -> None:
    script = load(PROJECT / "sessions" / "reflective-practice-75.yaml")
    assert {"reflect", "revitalise", "rebuild"} <= {ref.bank for ref in prompt_refs(script)}


def test_restorative_circle_has_story_rounds() -> None:
    script = load(PROJECT / "sessions" / "restorative-circle.yaml")
    names = [phase.name.lower() for phase in script.phases]
    assert any("guideline" in name for name in names)
    assert any(isinstance(phase, RoundPhase) and phase.rounds >= 2 for phase in script.phases)
    assert any("closing" in name for name in names[:-1]), "a closing round before the close"


def test_balint_presenter_speaks_sits_back_and_returns() -> None:
    script = load(PROJECT / "sessions" / "case-reflection-balint.yaml")
    assert [role.name for role in script.roles] == ["presenter"]
    presenter_turns = [
        i for i, phase in enumerate(script.phases) if isinstance(phase, RoundPhase) and phase.speakers == ["presenter"]
    ]
    reflection = [
        i for i, phase in enumerate(script.phases) if isinstance(phase, OpenPhase) and phase.silent == ["presenter"]
    ]
    assert len(presenter_turns) == 2 and len(reflection) == 1
    assert presenter_turns[0] < reflection[0] < presenter_turns[1]
    first = script.phases[presenter_turns[0]]
    assert isinstance(first, RoundPhase) and 5 * 60 <= first.turn <= 10 * 60
    group = script.phases[reflection[0]]
    assert isinstance(group, OpenPhase) and 30 * 60 <= group.duration <= 40 * 60


def test_action_learning_set_gives_the_issue_and_actions_to_the_presenter() -> None:
    script = load(PROJECT / "sessions" / "action-learning-set.yaml")
    presenter_rounds = [
        phase.name.lower()
        for phase in script.phases
        if isinstance(phase, RoundPhase) and phase.speakers == ["presenter"]
    ]
    assert presenter_rounds == ["the issue", "actions"]
