"""Every illegal move is refused, privately, with a reason, and changes nothing."""

from __future__ import annotations

import typing
from collections.abc import Callable

import pytest

from facilitator.engine import actions as A
from facilitator.engine import events as E
from facilitator.engine.circle import MAX_EXTEND_MINUTES, REFUSALS, TRANSITIONS
from facilitator.engine.state import CircleStatus
from tests.engine_helpers import ANA, BEN, CAM, CONSENT_HASH, DAN, FAC, Run, begun, gathered, make_script, round_phase

S = CircleStatus
SCRIPT = make_script(
    round_phase("60s", name="Check-in"),
    round_phase("60s", name="Popcorn", order="popcorn"),
    {"kind": "open", "name": "Reflection", "duration": "10m"},
)
EVENT_TYPES: tuple[type, ...] = typing.get_args(E.Event)


def _new() -> Run:
    return Run(SCRIPT)


def _gathering() -> Run:
    return gathered(SCRIPT)


def _running() -> Run:
    return begun(SCRIPT, at=100.0)[0]


def _paused() -> Run:
    run = _running()
    run.ok(E.Pause(FAC), 110.0)
    return run


def _ended() -> Run:
    run = _running()
    run.ok(E.End(FAC), 120.0)
    return run


BUILD: dict[CircleStatus, Callable[[], Run]] = {
    S.NEW: _new,
    S.GATHERING: _gathering,
    S.RUNNING: _running,
    S.PAUSED: _paused,
    S.ENDED: _ended,
}


def _event(kind: type) -> E.Event:
    """An instance of ``kind`` as the most entitled sender would send it."""
    samples: dict[type, E.Event] = {
        E.Open: E.Open(FAC, "Fran"),
        E.Join: E.Join(DAN, "Dan"),
        E.Consent: E.Consent(ANA, CONSENT_HASH),
        E.Leave: E.Leave(ANA),
        E.Erase: E.Erase(ANA),
        E.Withdraw: E.Withdraw(ANA),
        E.Begin: E.Begin(FAC),
        E.Pause: E.Pause(FAC),
        E.Resume: E.Resume(FAC),
        E.Extend: E.Extend(FAC, 5),
        E.Next: E.Next(FAC),
        E.End: E.End(FAC),
        E.Pass: E.Pass(ANA),
        E.Done: E.Done(ANA),
        E.AskPiece: E.AskPiece(ANA),
        E.AssignRole: E.AssignRole(FAC, BEN, "presenter"),
        E.AddFacilitator: E.AddFacilitator(FAC, BEN),
        E.StepIn: E.StepIn("t:moderator", "Mo"),
        E.Status: E.Status(ANA),
        E.Tick: E.Tick(),
        E.Recover: E.Recover(5.0),
    }
    return samples[kind]


ILLEGAL = [(status, kind) for status in S for kind in EVENT_TYPES if (status, kind) not in TRANSITIONS]
LEGAL = [(status, kind) for status in S for kind in EVENT_TYPES if (status, kind) in TRANSITIONS]


def _id(pair: tuple[CircleStatus, type]) -> str:
    return f"{pair[0].value}-{pair[1].__name__}"


# The reason each illegal pair should give, written out by hand (not read from REFUSALS).
EXPECTED_CODE: dict[tuple[CircleStatus, type], str] = {
    **{(S.NEW, kind): "not_open" for kind in EVENT_TYPES},
    **{(S.ENDED, kind): "ended" for kind in EVENT_TYPES},
    **{(s, E.Open): "already_open" for s in (S.GATHERING, S.RUNNING, S.PAUSED)},
    **{(S.GATHERING, kind): "not_begun" for kind in (E.Pause, E.Resume, E.Extend, E.Next, E.Pass, E.Done, E.AskPiece)},
    (S.RUNNING, E.Begin): "already_begun",
    (S.PAUSED, E.Begin): "already_begun",
    (S.RUNNING, E.Resume): "not_paused",
    (S.PAUSED, E.Pause): "already_paused",
    (S.PAUSED, E.Next): "paused",
    (S.PAUSED, E.AskPiece): "paused",
}


def test_the_tables_cover_every_event_and_status():
    assert len(EVENT_TYPES) == 21
    assert {kind for _, kind in TRANSITIONS} == set(EVENT_TYPES)
    assert {status for status, _ in TRANSITIONS} == set(S)
    assert len(ILLEGAL) + len(LEGAL) == 5 * 21
    for status in S:
        assert BUILD[status]().circle.status is status


@pytest.mark.parametrize("pair", ILLEGAL, ids=_id)
def test_illegal_move_is_refused_and_changes_nothing(pair):
    status, kind = pair
    run = BUILD[status]()
    event = _event(kind)
    before = run.circle.snapshot()
    outcome = run.send(event, 10_000.0)  # late, too: a refused move must not catch up on timers
    assert outcome.accepted is False
    assert outcome.records == ()
    assert len(outcome.actions) == 1
    refusal = outcome.actions[0]
    assert isinstance(refusal, A.Refused)
    assert refusal.to == event.by  # type: ignore[union-attr]
    assert run.circle.snapshot() == before


@pytest.mark.parametrize(
    "pair",
    [pair for pair in ILLEGAL],
    ids=_id,
)
def test_illegal_move_gives_its_reason(pair):
    status, kind = pair
    run = BUILD[status]()
    outcome = run.send(_event(kind), 10_000.0)
    assert outcome.actions == (A.Refused(outcome.actions[0].to, EXPECTED_CODE[pair]),)  # type: ignore[union-attr]


def test_opening_an_open_circle_says_it_is_already_open():
    run = gathered(SCRIPT)
    run.refused(E.Open(FAC, "Fran"), 1.0, "already_open")


def test_every_documented_refusal_is_for_an_illegal_pair():
    """A REFUSALS entry for a legal pair is dead: that pair never reaches the refusal."""
    dead = [_id(pair) for pair in REFUSALS if pair in TRANSITIONS]
    assert dead == []


@pytest.mark.parametrize("pair", LEGAL, ids=_id)
def test_legal_pairs_are_not_refused_by_status(pair):
    """The same sample events, where the table allows them, pass the status gate."""
    status, kind = pair
    run = BUILD[status]()
    outcome = run.send(_event(kind), 115.0 if status is not S.NEW else 0.0)
    codes = [a.code for a in outcome.actions if isinstance(a, A.Refused)]
    assert not set(codes) & {
        "not_open",
        "ended",
        "not_begun",
        "already_begun",
        "not_paused",
        "already_paused",
        "paused",
    }


# ---------------------------------------------------------------- guarded moves in legal statuses


@pytest.fixture
def running() -> Run:
    """Check-in round begun at 100: Ana holds the piece until 160, then Ben, then Cam."""
    return _running()


def test_pass_and_done_from_someone_who_does_not_hold_the_piece(running):
    running.refused(E.Pass(BEN), 110.0, "not_holder", holder="Ana")
    running.refused(E.Done(CAM), 110.0, "not_holder", holder="Ana")
    running.refused(E.Pass("t:stranger"), 110.0, "not_in_circle")
    running.refused(E.Done("t:stranger"), 110.0, "not_in_circle")


def test_done_from_a_pending_or_departed_person(running):
    running.ok(E.Join(DAN, "Dan"), 105.0)
    running.refused(E.Done(DAN), 106.0, "not_in_circle")
    running.ok(E.Leave(CAM), 107.0)
    running.refused(E.Done(CAM), 108.0, "not_in_circle")
    running.refused(E.Pass(CAM), 108.0, "not_in_circle")


@pytest.mark.parametrize("minutes", [0, -1, MAX_EXTEND_MINUTES + 1, 500])
def test_extend_by_too_little_or_too_much(running, minutes):
    running.refused(E.Extend(FAC, minutes), 110.0, "bad_extend", most="120")


def test_extend_by_the_most_is_accepted(running):
    running.ok(E.Extend(FAC, MAX_EXTEND_MINUTES), 110.0)
    assert running.circle.state.ends_at == 160.0 + MAX_EXTEND_MINUTES * 60


def test_ask_for_the_piece_in_a_round_that_goes_in_order(running):
    running.refused(E.AskPiece(BEN), 110.0, "not_popcorn")
    running.refused(E.AskPiece(ANA), 110.0, "not_popcorn")


def test_ask_twice_in_popcorn(running):
    running.ok(E.Next(FAC), 110.0)  # on to the popcorn round
    running.ok(E.AskPiece(BEN), 111.0)
    running.refused(E.AskPiece(BEN), 112.0, "already_holding")
    running.ok(E.AskPiece(ANA), 113.0)
    running.refused(E.AskPiece(ANA), 114.0, "already_waiting", position="1")
    running.ok(E.AskPiece(CAM), 115.0)
    running.refused(E.AskPiece(CAM), 116.0, "already_waiting", position="2")
    running.refused(E.AskPiece("t:stranger"), 116.0, "not_in_circle")
    running.ok(E.Done(BEN), 117.0)
    running.refused(E.AskPiece(BEN), 118.0, "had_turn")


def test_done_or_pass_while_the_popcorn_piece_is_free(running):
    running.ok(E.Next(FAC), 110.0)
    running.refused(E.Done(ANA), 111.0, "piece_free")
    running.ok(E.AskPiece(ANA), 112.0)
    running.ok(E.Done(ANA), 113.0)
    running.refused(E.Pass(ANA), 114.0, "piece_free")  # she has had her turn


def test_talking_piece_moves_outside_a_round(running):
    running.ok(E.Next(FAC), 110.0)
    running.ok(E.Next(FAC), 111.0)  # on to the open phase
    for event in (E.Pass(ANA), E.Done(ANA), E.AskPiece(ANA)):
        running.refused(event, 112.0, "no_round")


def test_consent_before_join_and_join_twice():
    run = gathered(SCRIPT)
    run.refused(E.Consent(DAN, CONSENT_HASH), 1.0, "join_first")
    run.refused(E.Join(ANA, "Ana"), 1.0, "already_joined")
    run.refused(E.Consent(ANA, CONSENT_HASH), 1.0, "already_joined")


def test_extend_after_the_end():
    run = _ended()
    run.refused(E.Extend(FAC, 5), 200.0, "ended")
    run.refused(E.Join(DAN, "Dan"), 200.0, "ended")
    run.refused(E.Leave(ANA), 200.0, "ended")


def test_roles_and_co_facilitators_for_people_not_present(running):
    running.refused(E.AssignRole(FAC, "t:stranger", "presenter"), 110.0, "not_in_circle")
    running.refused(E.AddFacilitator(FAC, "t:stranger"), 110.0, "not_in_circle")
    running.refused(E.AddFacilitator(FAC, FAC), 110.0, "already_facilitating")


def test_refusal_is_addressed_to_the_sender_only(running):
    outcome = running.send(E.Done(CAM), 110.0)
    assert outcome == A.Outcome(False, (A.Refused(CAM, "not_holder", (("holder", "Ana"),)),), ())


def test_the_documented_diagram_is_the_engine_s_own() -> None:
    """docs/engine.md shows what `facilitator diagram` prints (kept in step with the table)."""
    from pathlib import Path

    from facilitator.engine.circle import diagram

    doc = (Path(__file__).parent.parent / "docs" / "engine.md").read_text(encoding="utf-8")
    assert f"```mermaid\n{diagram().strip()}\n```" in doc
