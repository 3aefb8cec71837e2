"""Small helpers for the engine tests: build scripts from dicts, drive a circle, pick actions."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any, TypeVar

from facilitator.engine import actions as A
from facilitator.engine import events as E
from facilitator.engine.circle import Circle
from facilitator.script.models import Script

T = TypeVar("T")

FAC = "t:fac"
ANA = "t:ana"
BEN = "t:ben"
CAM = "t:cam"
DAN = "t:dan"
EVE = "t:eve"
NAMES = {ANA: "Ana", BEN: "Ben", CAM: "Cam", DAN: "Dan", EVE: "Eve"}

TITLE = "Engine test circle"
AGREEMENT = "What is said here stays here."
CONSENT_TEXT = "I agree that my name and attendance are recorded for this circle."
CONSENT_VERSION = "3"
CONSENT_HASH = hashlib.sha256(CONSENT_TEXT.encode("utf-8")).hexdigest()
AGREEMENT_HASH = hashlib.sha256(AGREEMENT.encode("utf-8")).hexdigest()
CLOSE_TEXT = "Thank you for being here."
CLOSE = {"kind": "close", "name": "Close", "text": CLOSE_TEXT}


def make_script(*phases: dict[str, Any], **extra: Any) -> Script:
    """A script of ``phases`` (a close phase is added unless the last one is a close)."""
    listed = list(phases)
    if not listed or listed[-1]["kind"] != "close":
        listed.append(CLOSE)
    data: dict[str, Any] = {
        "title": TITLE,
        "agreement": AGREEMENT,
        "consent": {"version": CONSENT_VERSION, "text": CONSENT_TEXT},
        "roles": [{"name": "presenter", "description": "Brings a case."}],
        "phases": listed,
    }
    data.update(extra)
    return Script.model_validate(data)


def round_phase(turn: str = "60s", **extra: Any) -> dict[str, Any]:
    return {"kind": "round", "name": "Round", "turn": turn, **extra}


def of(outcome: A.Outcome, kind: type[T]) -> list[T]:
    """The actions of ``kind`` in ``outcome``."""
    return [a for a in outcome.actions if isinstance(a, kind)]


def kept(outcome: A.Outcome, kind: type[T]) -> list[T]:
    """The records of ``kind`` in ``outcome``."""
    return [r for r in outcome.records if isinstance(r, kind)]


def kinds(items: Iterable[object]) -> list[str]:
    """Type names, to compare sequences of actions at a glance."""
    return [type(item).__name__ for item in items]


def given(outcome: A.Outcome) -> list[tuple[str, float]]:
    """(member, ends_at) for every GivePiece in ``outcome``."""
    return [(g.member, g.ends_at) for g in of(outcome, A.GivePiece)]


class Run:
    """A circle driven by a test, with checks for accepted and refused events."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.circle = Circle(script)

    def send(self, event: E.Event, now: float) -> A.Outcome:
        return self.circle.handle(event, now)

    def ok(self, event: E.Event, now: float) -> A.Outcome:
        outcome = self.circle.handle(event, now)
        assert outcome.accepted, f"{event!r} was refused: {outcome.actions!r}"
        assert not of(outcome, A.Refused)
        return outcome

    def refused(self, event: E.Event, now: float, code: str, **params: str) -> A.Refused:
        """Send ``event``; it must be refused with ``code``, privately, changing nothing."""
        before = self.circle.snapshot()
        outcome = self.circle.handle(event, now)
        assert not outcome.accepted, f"{event!r} was accepted: {outcome.actions!r}"
        assert outcome.records == ()
        assert len(outcome.actions) == 1
        refusal = outcome.actions[0]
        assert isinstance(refusal, A.Refused)
        assert refusal.to == getattr(event, "by", "")
        assert refusal.code == code, f"expected {code}, got {refusal.code}"
        for key, value in params.items():
            assert refusal.detail.get(key) == value, refusal.detail
        assert self.circle.snapshot() == before
        return refusal

    def join(self, member: str, now: float, anonymous: bool = False) -> A.Outcome:
        self.ok(E.Join(member, NAMES.get(member, member), anonymous), now)
        return self.ok(E.Consent(member, CONSENT_HASH), now)

    def tick(self, now: float) -> A.Outcome:
        return self.ok(E.Tick(), now)

    @property
    def holder(self) -> str | None:
        return self.circle.holder

    def restored(self) -> Circle:
        """A copy of the circle through a JSON round-trip of its snapshot."""
        return Circle.restore(self.script, json.loads(json.dumps(self.circle.snapshot())))


def gathered(
    script: Script, people: Iterable[str] = (ANA, BEN, CAM), now: float = 0.0, seed: int = 0, **open_kw: Any
) -> Run:
    """A circle opened by FAC with ``people`` joined and consented, in that order."""
    run = Run(script)
    run.ok(E.Open(FAC, "Fran", seed, **open_kw), now)
    for person in people:
        run.join(person, now)
    return run


def begun(
    script: Script, people: Iterable[str] = (ANA, BEN, CAM), at: float = 100.0, seed: int = 0
) -> tuple[Run, A.Outcome]:
    """A circle gathered at 0 and begun at ``at``; returns the run and the Begin outcome."""
    run = gathered(script, people, seed=seed)
    return run, run.ok(E.Begin(FAC), at)
