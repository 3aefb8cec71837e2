"""Snapshots: a circle restored from stored JSON carries on exactly as the original would."""

from __future__ import annotations

import json

import pytest

from facilitator.engine import actions as A
from facilitator.engine import events as E
from facilitator.engine.circle import IDLE_CLOSE_AFTER, Circle, diagram
from facilitator.engine.state import CircleState, CircleStatus
from tests.engine_helpers import ANA, BEN, CAM, CONSENT_HASH, DAN, EVE, FAC, Run, make_script, round_phase

SCRIPT = make_script(
    {"kind": "announce", "name": "Welcome", "text": "Welcome.", "duration": "30s", "show_agreement": True},
    round_phase("60s", name="Check-in", order="random", rounds=2, remind_before=["20s"], silent=["presenter"]),
    round_phase("2m", name="Case", speakers=["presenter"]),
    round_phase("45s", name="Popcorn", order="popcorn"),
    {"kind": "silence", "name": "Quiet", "duration": "1m"},
    {"kind": "open", "name": "Reflection", "duration": "5m", "remind_before": ["1m"], "prompt": {"bank": "reflection"}},
    {"kind": "close", "name": "Close", "text": "Thank you.", "duration": "30s"},
    allow_anonymous=True,
)
PROMPTS = (E.PhasePrompt(5, "What stays with you?", "r3", "reflection"),)

# A whole circle, step by step: (event, now). Random order is fixed by the seed, so turns are
# ended with Tick (time) or by whoever holds the piece, looked up as the script runs.
HOLDER = object()
STEPS: list[tuple[object, float]] = [
    (E.Open(FAC, "Fran", 1234, PROMPTS), 0.0),
    (E.Join(ANA, "Ana"), 1.0),
    (E.Consent(ANA, CONSENT_HASH), 2.0),
    (E.Join(BEN, "Ben"), 3.0),
    (E.Join(CAM, "Cam", anonymous=True), 4.0),
    (E.Consent(BEN, CONSENT_HASH), 5.0),
    (E.Consent(CAM, CONSENT_HASH), 6.0),
    (E.Join(DAN, "Dan"), 7.0),
    (E.Consent(DAN, CONSENT_HASH), 8.0),
    (E.AssignRole(FAC, DAN, "presenter"), 9.0),
    (E.AddFacilitator(FAC, ANA), 10.0),
    (E.Begin(ANA), 20.0),
    (E.Tick(), 50.0),  # the welcome ends; round 1 of the check-in
    (E.Done, 60.0),
    (E.Pause(FAC), 70.0),
    (E.Tick(), 500.0),
    (E.Extend(FAC, 1), 600.0),
    (E.Resume(FAC), 700.0),
    (E.Join(EVE, "Eve"), 701.0),
    (E.Consent(EVE, CONSENT_HASH), 702.0),
    (E.Tick(), 790.0),
    (E.Pass, 800.0),
    (E.Leave(BEN), 805.0),
    (E.Tick(), 900.0),  # round 2 of the check-in, by time
    (E.Done, 910.0),
    (E.Tick(), 1_160.0),  # round 2 and the case round end by time; popcorn from 1150
    (E.AskPiece(ANA), 1_161.0),
    (E.AskPiece(CAM), 1_162.0),
    (E.Pass(EVE), 1_163.0),
    (E.Done(ANA), 1_164.0),
    (E.Recover(30.0), 1_250.0),  # Cam's turn ended by time during the gap
    (E.Next(FAC), 1_260.0),  # skip the rest of popcorn
    (E.Tick(), 1_320.0),  # the silence ends
    (E.Tick(), 1_560.0),  # the reflection's reminder
    (E.Join(BEN, "Ben"), 1_570.0),
    (E.Status(BEN), 1_571.0),
    (E.Tick(), 1_620.0),
    (E.Tick(), 1_650.0),
]


def _event(step: object, circle: Circle) -> E.Event:
    """A step's event; a bare Done/Pass class means "from whoever holds the piece"."""
    if isinstance(step, type):
        holder = circle.holder
        assert holder is not None
        return step(holder)  # type: ignore[no-any-return]
    return step  # type: ignore[return-value]


def _play(circle: Circle, steps: list[tuple[object, float]]) -> list[object]:
    return [circle.handle(_event(step, circle), now) for step, now in steps]


def test_the_scenario_runs_a_whole_circle_accepted_at_every_step():
    circle = Circle(SCRIPT)
    outcomes = _play(circle, STEPS)
    assert all(o.accepted for o in outcomes), [o for o in outcomes if not o.accepted]  # type: ignore[attr-defined]
    assert circle.status is CircleStatus.ENDED


@pytest.mark.parametrize("cut", range(len(STEPS) + 1))
def test_restored_circle_continues_identically(cut):
    original = Circle(SCRIPT)
    _play(original, STEPS[:cut])
    stored = json.loads(json.dumps(original.snapshot()))
    copy = Circle.restore(SCRIPT, stored)
    assert copy.snapshot() == original.snapshot()
    assert (copy.status, copy.holder, copy.next_deadline) == (original.status, original.holder, original.next_deadline)
    rest = STEPS[cut:]
    assert _play(copy, rest) == _play(original, rest)
    assert copy.snapshot() == original.snapshot()


def test_state_round_trips_through_json():
    run = Run(SCRIPT)
    _play(run.circle, STEPS[:24])
    data = run.circle.snapshot()
    text = json.dumps(data)
    assert CircleState.from_dict(json.loads(text)) == run.circle.state
    assert json.loads(text)["status"] == "running"


def test_snapshot_is_a_copy_not_a_view():
    circle = Circle(SCRIPT)
    _play(circle, STEPS[:12])
    snap = circle.snapshot()
    circle.handle(E.Tick(), 50.0)
    assert snap != circle.snapshot()


# ---------------------------------------------------------------- diagram


def test_diagram_is_a_mermaid_state_diagram_of_every_status():
    text = diagram()
    lines = text.splitlines()
    assert lines[0] == "stateDiagram-v2"
    assert "[*] --> new" in text
    for status in CircleStatus:
        assert f" {status.value} -->" in text or f"--> {status.value}" in text, status
    assert "new --> gathering: Open" in text
    assert "gathering --> running: Begin" in text
    assert "running --> paused: Pause" in text
    assert "paused --> running: Resume" in text
    assert any(line.strip().startswith("running --> ended:") and "End" in line for line in lines)
    assert "ended --> [*]" in text


def test_the_snapshot_has_every_field_of_the_state():
    """to_dict is written out by hand for speed: it must not forget a field added later."""
    import dataclasses

    from facilitator.engine.events import PhasePrompt
    from facilitator.engine.state import CircleState, Participant, RoundState

    state = CircleState(
        participants={"a": Participant("a", "A", False)},
        round=RoundState(1, ["a"]),
        prompts={2: PhasePrompt(2, "How are you?", "p1", "check-in")},
    )
    data = state.to_dict()
    assert set(data) == {f.name for f in dataclasses.fields(CircleState)}
    assert set(data["participants"]["a"]) == {f.name for f in dataclasses.fields(Participant)}
    assert set(data["round"]) == {f.name for f in dataclasses.fields(RoundState)}
    assert set(data["prompts"]["2"]) == {f.name for f in dataclasses.fields(PhasePrompt)}
    assert data == dataclasses.asdict(state) | {"status": "new", "prompts": {"2": dataclasses.asdict(state.prompts[2])}}


# ---------------------------------------------------------------- the idle close across a restore


def test_a_snapshot_taken_while_gathering_restores_with_its_close():
    original = Circle(SCRIPT)
    _play(original, STEPS[:9])  # opened at 0, four people joined
    copy = Circle.restore(SCRIPT, json.loads(json.dumps(original.snapshot())))
    assert copy.snapshot()["status"] == "gathering"  # (not narrowed: it changes below)
    assert copy.next_deadline == original.next_deadline == IDLE_CLOSE_AFTER
    assert copy.handle(E.Tick(), IDLE_CLOSE_AFTER) == original.handle(E.Tick(), IDLE_CLOSE_AFTER)
    assert copy.status is CircleStatus.ENDED


def test_an_older_snapshot_without_the_opening_time_loads_and_gets_its_close_on_recover():
    """Stored before ``opened_at`` was kept: no close until the host's Recover, which counts from
    the circle's last change (when it was stored: never earlier than its opening)."""
    original = Circle(SCRIPT)
    _play(original, STEPS[:9])
    older = json.loads(json.dumps(original.snapshot()))
    del older["opened_at"]
    restored = Circle.restore(SCRIPT, older)
    assert restored.state.opened_at is None and restored.next_deadline is None
    assert restored.handle(E.Recover(downtime=600.0), 10_000.0).actions == ()  # still nothing to say
    assert restored.next_deadline == 9_400.0 + IDLE_CLOSE_AFTER
    assert restored.snapshot()["opened_at"] == 9_400.0  # kept from now on

    # Stored more than 12 hours before the restart: closed at once, with one message.
    stale = Circle.restore(SCRIPT, older)
    out = stale.handle(E.Recover(downtime=IDLE_CLOSE_AFTER + 50.0), IDLE_CLOSE_AFTER + 100.0)
    assert [type(a) for a in out.actions] == [A.CircleEnded]
    assert stale.status is CircleStatus.ENDED


def test_an_older_paused_snapshot_closes_twelve_hours_after_its_pause():
    original = Circle(SCRIPT)
    _play(original, STEPS[:15])  # paused at 70
    older = json.loads(json.dumps(original.snapshot()))
    del older["opened_at"]
    restored = Circle.restore(SCRIPT, older)
    assert restored.status is CircleStatus.PAUSED
    assert restored.next_deadline == 70.0 + IDLE_CLOSE_AFTER
