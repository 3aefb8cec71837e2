"""Every phase kind, as the people in a circle would see it run."""

from __future__ import annotations

import pytest

from facilitator.engine import actions as A
from facilitator.engine import events as E
from facilitator.engine.state import CircleStatus
from tests.engine_helpers import (
    AGREEMENT,
    ANA,
    BEN,
    CAM,
    CLOSE_TEXT,
    DAN,
    EVE,
    FAC,
    TITLE,
    begun,
    gathered,
    given,
    kept,
    kinds,
    make_script,
    of,
    round_phase,
)

# ---------------------------------------------------------------- announce


def test_announce_waits_its_duration_and_shows_the_agreement():
    script = make_script(
        {"kind": "announce", "name": "Welcome", "text": "Welcome all.", "duration": "1m", "show_agreement": True}
    )
    run, out = begun(script, at=100.0)
    assert kept(out, A.CircleStarted) == [A.CircleStarted(100.0)]
    assert of(out, A.PhaseStarted) == [
        A.PhaseStarted(0, 2, "announce", "Welcome", "Welcome all.", None, AGREEMENT, 160.0, 60, ())
    ]
    assert run.circle.next_deadline == 160.0
    assert run.tick(159.9).actions == ()
    assert run.circle.state.phase == 0
    out = run.tick(160.0)
    started = of(out, A.PhaseStarted)
    assert [(p.kind, p.text, p.index) for p in started] == [("close", CLOSE_TEXT, 1)]
    assert of(out, A.CircleEnded) == [A.CircleEnded(TITLE, False)]


def test_announce_without_show_agreement_leaves_it_out():
    script = make_script({"kind": "announce", "text": "Hello.", "duration": "30s"})
    _, out = begun(script)
    assert of(out, A.PhaseStarted)[0].agreement is None


def test_announce_of_duration_zero_moves_on_at_once():
    script = make_script(
        {"kind": "announce", "name": "Hello", "text": "Hello."},
        {"kind": "silence", "name": "Quiet", "duration": "2m"},
    )
    run, out = begun(script, at=100.0)
    started = of(out, A.PhaseStarted)
    assert [(p.name, p.ends_at) for p in started] == [("Hello", 100.0), ("Quiet", 220.0)]
    assert run.circle.state.phase == 1
    assert run.circle.next_deadline == 220.0


# ---------------------------------------------------------------- rounds


def test_round_goes_in_join_order_each_with_a_full_turn():
    script = make_script(round_phase("60s", name="Check-in", prompt="How are you?"))
    run, out = begun(script, at=100.0)
    assert of(out, A.PhaseStarted)[0].prompt == "How are you?"
    assert of(out, A.PhaseStarted)[0].ends_at is None
    assert of(out, A.RoundStarted) == [A.RoundStarted(1, 1, 3, False)]
    assert of(out, A.GivePiece) == [A.GivePiece(ANA, "Ana", 160.0, 60, 2)]
    out = run.ok(E.Done(ANA), 130.0)
    assert kept(out, A.TurnRecorded) == [A.TurnRecorded(ANA, "done")]
    assert of(out, A.TurnEnded) == [A.TurnEnded(ANA, "Ana", "done")]
    assert of(out, A.GivePiece) == [A.GivePiece(BEN, "Ben", 190.0, 60, 1)]
    out = run.ok(E.Pass(BEN), 131.0)
    assert kept(out, A.TurnRecorded) == [A.TurnRecorded(BEN, "passed")]
    assert of(out, A.GivePiece) == [A.GivePiece(CAM, "Cam", 191.0, 60, 0)]
    out = run.tick(191.0)
    assert kept(out, A.TurnRecorded) == [A.TurnRecorded(CAM, "time")]
    assert of(out, A.TurnEnded) == [A.TurnEnded(CAM, "Cam", "time")]
    assert run.circle.status is CircleStatus.ENDED


def test_join_order_is_the_order_people_consented_in():
    script = make_script(round_phase())
    run = gathered(script, people=())
    for member, name in ((ANA, "Ana"), (BEN, "Ben"), (CAM, "Cam")):
        run.ok(E.Join(member, name), 0.0)
    for member in (CAM, ANA, BEN):
        run.ok(E.Consent(member, run.script.consent.text_hash), 1.0)
    out = run.ok(E.Begin(FAC), 10.0)
    assert given(out) == [(CAM, 70.0)]
    assert given(run.ok(E.Done(CAM), 11.0)) == [(ANA, 71.0)]
    assert given(run.ok(E.Done(ANA), 12.0)) == [(BEN, 72.0)]


def test_turn_reminders_nudge_the_holder():
    script = make_script(round_phase("90s", remind_before=["30s", "10s"]))
    run, _ = begun(script, at=0.0)
    assert run.circle.next_deadline == 60.0
    assert of(run.tick(60.0), A.Nudge) == [A.Nudge(ANA, "Ana", 30, "round")]
    assert of(run.tick(80.0), A.Nudge) == [A.Nudge(ANA, "Ana", 10, "round")]
    out = run.tick(90.0)
    assert kept(out, A.TurnRecorded) == [A.TurnRecorded(ANA, "time")]
    assert given(out) == [(BEN, 180.0)]
    # a new turn has its own reminders
    assert run.circle.next_deadline == 150.0


def _random_order(seed: int, people=(ANA, BEN, CAM, DAN, EVE)) -> list[str]:
    script = make_script(round_phase(order="random"))
    run, out = begun(script, people=people, seed=seed)
    order = [g.member for g in of(out, A.GivePiece)]
    while run.circle.status is CircleStatus.RUNNING:
        holder = run.holder
        assert holder is not None
        order += [g.member for g in of(run.ok(E.Done(holder), 101.0), A.GivePiece)]
    return order


def test_random_order_is_a_permutation_fixed_by_the_seed():
    first = _random_order(7)
    assert sorted(first) == sorted([ANA, BEN, CAM, DAN, EVE])
    assert _random_order(7) == first
    orders = {tuple(_random_order(seed)) for seed in range(12)}
    assert len(orders) > 1, "the seed given in Open should change the order"
    assert any(list(order) != [ANA, BEN, CAM, DAN, EVE] for order in orders)


def test_random_order_survives_a_snapshot_round_trip():
    script = make_script(round_phase(order="random", rounds=2))
    run, _ = begun(script, people=(ANA, BEN, CAM, DAN, EVE), seed=42)
    copy = run.restored()
    for t in range(101, 111):
        holder = run.holder
        assert holder == copy.holder
        assert holder is not None
        assert run.ok(E.Done(holder), float(t)) == copy.handle(E.Done(holder), float(t))
    assert run.circle.status is CircleStatus.ENDED


def test_two_rounds_go_round_twice():
    script = make_script(round_phase("60s", name="Closing words", rounds=2))
    run, out = begun(script, at=0.0)
    assert of(out, A.RoundStarted) == [A.RoundStarted(1, 2, 3, False)]
    turns = []
    t = 0.0
    while run.circle.status is CircleStatus.RUNNING:
        t += 5
        holder = run.holder
        assert holder is not None
        out = run.ok(E.Done(holder), t)
        turns += [r.member for r in kept(out, A.TurnRecorded)]
        if of(out, A.RoundStarted):
            assert of(out, A.RoundStarted) == [A.RoundStarted(2, 2, 3, False)]
            assert given(out) == [(ANA, t + 60)]
    assert turns == [ANA, BEN, CAM, ANA, BEN, CAM]


# ---------------------------------------------------------------- popcorn


@pytest.fixture
def popcorn():
    script = make_script(
        round_phase("60s", name="Popcorn", order="popcorn"), {"kind": "silence", "name": "After", "duration": "1m"}
    )
    return begun(script, at=100.0)


def test_popcorn_puts_the_piece_in_the_middle(popcorn):
    run, out = popcorn
    assert of(out, A.RoundStarted) == [A.RoundStarted(1, 1, 3, True)]
    assert of(out, A.PieceFree) == [A.PieceFree(160.0, 3)]
    assert of(out, A.GivePiece) == []
    assert run.holder is None


def test_popcorn_ask_waiting_list_and_pass_from_a_non_holder(popcorn):
    run, _ = popcorn
    out = run.ok(E.AskPiece(BEN), 110.0)
    assert of(out, A.GivePiece) == [A.GivePiece(BEN, "Ben", 170.0, 60, 2)]
    out = run.ok(E.AskPiece(CAM), 120.0)
    assert of(out, A.StatusReport) == [A.StatusReport(CAM, "waiting", None, None, "Ben", None, 1)]
    assert run.holder == BEN
    run.refused(E.AskPiece(CAM), 121.0, "already_waiting", position="1")
    run.refused(E.AskPiece(BEN), 121.0, "already_holding")
    out = run.ok(E.Done(BEN), 130.0)
    assert kept(out, A.TurnRecorded) == [A.TurnRecorded(BEN, "done")]
    assert of(out, A.GivePiece) == [A.GivePiece(CAM, "Cam", 190.0, 60, 1)]
    # Ana has not had a turn: she may pass although Cam holds the piece
    out = run.ok(E.Pass(ANA), 131.0)
    assert kept(out, A.TurnRecorded) == [A.TurnRecorded(ANA, "passed")]
    assert of(out, A.TurnEnded) == [A.TurnEnded(ANA, "Ana", "passed")]
    assert run.holder == CAM
    run.refused(E.AskPiece(ANA), 132.0, "had_turn")
    run.refused(E.Pass(ANA), 132.0, "not_holder", holder="Cam")
    out = run.ok(E.Done(CAM), 140.0)
    assert [p.name for p in of(out, A.PhaseStarted)] == ["After"]


def test_popcorn_piece_goes_back_to_the_middle_after_a_turn(popcorn):
    run, _ = popcorn
    run.ok(E.AskPiece(ANA), 110.0)
    out = run.ok(E.Done(ANA), 125.0)
    assert of(out, A.PieceFree) == [A.PieceFree(185.0, 2)]
    assert run.holder is None
    assert run.circle.next_deadline == 185.0


def test_popcorn_idle_piece_nudges_once_then_the_round_ends(popcorn):
    run, _ = popcorn
    assert run.tick(159.0).actions == ()
    out = run.tick(160.0)
    assert of(out, A.PieceFree) == [A.PieceFree(220.0, 3)]
    assert of(out, A.PhaseStarted) == []
    assert run.tick(219.0).actions == ()
    out = run.tick(220.0)
    assert kinds(out.actions) == ["PhaseStarted"]
    assert of(out, A.PhaseStarted)[0].name == "After"
    assert of(out, A.PhaseStarted)[0].ends_at == 280.0
    assert kept(out, A.TurnRecorded) == []


def test_popcorn_pass_by_the_last_one_waiting_ends_the_round(popcorn):
    run, _ = popcorn
    run.ok(E.Pass(ANA), 101.0)
    run.ok(E.Pass(BEN), 102.0)
    out = run.ok(E.Pass(CAM), 103.0)
    assert [r.member for r in kept(out, A.TurnRecorded)] == [CAM]
    assert of(out, A.PhaseStarted)[0].name == "After"


def test_popcorn_waiting_pass_removes_them_from_the_waiting_list(popcorn):
    run, _ = popcorn
    run.ok(E.AskPiece(ANA), 101.0)
    run.ok(E.AskPiece(BEN), 102.0)
    run.ok(E.Pass(BEN), 103.0)
    out = run.ok(E.Done(ANA), 104.0)
    assert of(out, A.PieceFree) == [A.PieceFree(164.0, 1)]
    assert given(out) == []


def test_popcorn_newcomer_is_not_told_they_had_their_turn(popcorn):
    run, _ = popcorn
    run.join(DAN, 105.0)
    before = run.circle.snapshot()
    out = run.send(E.AskPiece(DAN), 106.0)
    assert not out.accepted
    assert run.circle.snapshot() == before
    refusal = of(out, A.Refused)[0]
    assert refusal.code != "had_turn"


def test_popcorn_newcomer_waits_for_the_next_round():
    script = make_script(round_phase("60s", order="popcorn", rounds=2))
    run, _ = begun(script, at=100.0)
    out = run.join(DAN, 105.0)
    assert of(out, A.Joined) == [A.Joined(DAN, 4, True)]
    for member in (ANA, BEN):
        run.ok(E.Pass(member), 106.0)
    out = run.ok(E.Pass(CAM), 107.0)
    assert of(out, A.RoundStarted) == [A.RoundStarted(2, 2, 4, True)]
    assert of(run.ok(E.AskPiece(DAN), 108.0), A.GivePiece) == [A.GivePiece(DAN, "Dan", 168.0, 60, 3)]


# ---------------------------------------------------------------- open, silence, close


def test_open_reminds_before_the_end_then_time_up():
    script = make_script(
        {
            "kind": "open",
            "name": "Reflection",
            "prompt": "What stays?",
            "duration": "10m",
            "remind_before": ["2m", "30s"],
        }
    )
    run, out = begun(script, at=0.0)
    started = of(out, A.PhaseStarted)[0]
    assert (started.kind, started.prompt, started.ends_at, started.length) == ("open", "What stays?", 600.0, 600)
    assert run.tick(479.0).actions == ()
    assert of(run.tick(480.0), A.Nudge) == [A.Nudge(None, None, 120, "open")]
    assert of(run.tick(570.0), A.Nudge) == [A.Nudge(None, None, 30, "open")]
    assert run.tick(599.0).actions == ()
    out = run.tick(600.0)
    assert of(out, A.TimeUp) == [A.TimeUp("Reflection")]
    assert of(out, A.CircleEnded) == [A.CircleEnded(TITLE, False)]


def test_open_silent_roles_are_announced():
    script = make_script({"kind": "open", "duration": "5m", "silent": ["presenter"]})
    _, out = begun(script)
    assert of(out, A.PhaseStarted)[0].silent_roles == ("presenter",)


def test_silence_cues_at_the_end_and_calls_on_no_one():
    script = make_script({"kind": "silence", "name": "Stillness", "duration": "1m"}, {"kind": "open", "duration": "5m"})
    run, out = begun(script, at=0.0)
    assert of(out, A.GivePiece) == []
    assert of(out, A.PhaseStarted)[0].ends_at == 60.0
    assert run.holder is None
    assert run.tick(59.0).actions == ()
    out = run.tick(60.0)
    assert kinds(out.actions) == ["SilenceCue", "PhaseStarted"]
    assert of(out, A.SilenceCue) == [A.SilenceCue("Stillness")]
    assert of(out, A.GivePiece) == []
    assert of(out, A.PhaseStarted)[0].ends_at == 360.0


def test_close_ends_the_circle_with_attendance_for_everyone_present():
    script = make_script({"kind": "close", "name": "Goodbye", "text": CLOSE_TEXT, "duration": "30s"})
    run = gathered(script, people=(ANA, BEN, CAM))
    run.ok(E.Join(DAN, "Dan"), 1.0)  # asked for consent but never agreed: nothing to end
    run.ok(E.Leave(CAM), 2.0)
    out = run.ok(E.Begin(FAC), 100.0)
    assert of(out, A.PhaseStarted) == [A.PhaseStarted(0, 1, "close", "Goodbye", CLOSE_TEXT, None, None, 130.0, 30, ())]
    assert run.tick(129.0).actions == ()
    out = run.tick(135.0)
    assert of(out, A.CircleEnded) == [A.CircleEnded(TITLE, False)]
    assert kept(out, A.AttendanceEnded) == [A.AttendanceEnded(ANA, 130.0), A.AttendanceEnded(BEN, 130.0)]
    assert kept(out, A.CircleFinished) == [A.CircleFinished(130.0)]
    assert run.circle.status is CircleStatus.ENDED
    assert run.circle.next_deadline is None
    assert run.holder is None


def test_prompts_chosen_at_open_are_used_and_recorded():
    script = make_script(
        round_phase(prompt={"bank": "arrival"}),
        {"kind": "open", "duration": "5m", "prompt": "Inline prompt"},
    )
    prompts = (E.PhasePrompt(0, "What did you bring?", "p7", "arrival"),)
    run = gathered(script, prompts=prompts)
    out = run.ok(E.Begin(FAC), 100.0)
    assert of(out, A.PhaseStarted)[0].prompt == "What did you bring?"
    assert kept(out, A.PromptUsed) == [A.PromptUsed("arrival", "p7", 100.0)]
    run.ok(E.Next(FAC), 110.0)
    assert run.circle.phase is not None and run.circle.phase.kind == "open"


def test_inline_prompt_is_shown_and_a_bank_prompt_without_choice_is_not():
    script = make_script(
        round_phase(prompt={"bank": "arrival"}), {"kind": "open", "duration": "5m", "prompt": "Inline"}
    )
    run, out = begun(script)
    assert of(out, A.PhaseStarted)[0].prompt is None
    assert kept(out, A.PromptUsed) == []
    out = run.ok(E.Next(FAC), 110.0)
    assert of(out, A.PhaseStarted)[0].prompt == "Inline"
