"""The rules a facilitator would expect: steering, the talking piece, leaving, joining, pause, extend."""

from __future__ import annotations

import pytest

from facilitator.engine import actions as A
from facilitator.engine import events as E
from facilitator.engine.circle import IDLE_CLOSE_AFTER
from facilitator.engine.state import CircleStatus
from tests.engine_helpers import (
    ANA,
    BEN,
    CAM,
    CLOSE_TEXT,
    DAN,
    FAC,
    TITLE,
    Run,
    begun,
    gathered,
    given,
    kept,
    make_script,
    of,
    round_phase,
)

ROUND_THEN_OPEN = make_script(
    round_phase("60s", name="Check-in", remind_before=["20s"]),
    {"kind": "open", "name": "Reflection", "duration": "10m", "remind_before": ["2m"]},
)


@pytest.fixture
def three() -> Run:
    """Ana, Ben and Cam in a circle begun at 100: Ana holds the piece until 160."""
    run, _ = begun(ROUND_THEN_OPEN, at=100.0)
    assert run.holder == ANA
    return run


def _to_open_phase(run: Run, at: float) -> None:
    run.ok(E.Next(FAC), at)
    assert run.circle.phase is not None and run.circle.phase.kind == "open"


# ---------------------------------------------------------------- steering


@pytest.mark.parametrize(
    "event",
    [
        E.Pause(ANA),
        E.Extend(ANA, 5),
        E.Next(ANA),
        E.End(ANA),
        E.AssignRole(ANA, BEN, "presenter"),
        E.AddFacilitator(ANA, BEN),
    ],
    ids=lambda e: type(e).__name__,
)
def test_only_facilitators_steer_a_running_circle(three, event):
    run = three
    run.refused(event, 110.0, "not_facilitator")


def test_only_facilitators_begin_resume_or_end_elsewhere():
    run = gathered(ROUND_THEN_OPEN)
    run.refused(E.Begin(ANA), 1.0, "not_facilitator")
    run.refused(E.End(ANA), 1.0, "not_facilitator")
    run.refused(E.AssignRole(ANA, ANA, "presenter"), 1.0, "not_facilitator")
    run.ok(E.Begin(FAC), 2.0)
    run.ok(E.Pause(FAC), 3.0)
    for event in (E.Resume(ANA), E.Extend(ANA, 1), E.End(ANA), E.AddFacilitator(ANA, ANA)):
        run.refused(event, 4.0, "not_facilitator")
    # someone who never joined cannot steer either
    run.refused(E.Resume("t:stranger"), 4.0, "not_facilitator")


def test_steering_is_audited(three):
    run = three
    out = run.ok(E.Extend(FAC, 5), 110.0)
    assert kept(out, A.Audit) == [A.Audit(FAC, "extend", "5 min", 110.0)]
    out = run.ok(E.Pause(FAC), 111.0)
    assert kept(out, A.Audit) == [A.Audit(FAC, "pause", "", 111.0)]
    out = run.ok(E.Status(ANA), 112.0)
    assert kept(out, A.Audit) == []


def test_co_facilitator_can_steer():
    run = gathered(ROUND_THEN_OPEN)
    run.refused(E.Begin(ANA), 1.0, "not_facilitator")
    out = run.ok(E.AddFacilitator(FAC, ANA), 2.0)
    assert of(out, A.FacilitatorAdded) == [A.FacilitatorAdded(ANA, "Ana")]
    run.refused(E.AddFacilitator(FAC, ANA), 3.0, "already_facilitator")
    run.refused(E.AddFacilitator(FAC, "t:nobody"), 3.0, "not_in_circle")
    out = run.ok(E.Begin(ANA), 4.0)
    assert kept(out, A.Audit) == [A.Audit(ANA, "begin", "", 4.0)]
    run.ok(E.Pause(ANA), 5.0)
    run.ok(E.Resume(ANA), 6.0)
    # the co-facilitator may hand on too; Ben still may not steer
    run.refused(E.Pause(BEN), 7.0, "not_facilitator")
    run.ok(E.AddFacilitator(ANA, BEN), 8.0)
    run.ok(E.Pause(BEN), 9.0)
    assert run.circle.status is CircleStatus.PAUSED


def test_someone_trusted_by_the_room_steps_in_when_the_facilitator_has_gone(three):
    """The platform has checked the room's permissions; the engine announces and audits it."""
    run = three
    run.refused(E.End("t:moderator"), 110.0, "not_facilitator")
    out = run.ok(E.StepIn("t:moderator", "Mo"), 111.0)
    assert of(out, A.SteppedIn) == [A.SteppedIn("t:moderator", "Mo")]
    assert kept(out, A.Audit) == [A.Audit("t:moderator", "stepin", "", 111.0)]
    run.refused(E.StepIn("t:moderator", "Mo"), 112.0, "already_facilitating")
    run.refused(E.StepIn(FAC, "Fran"), 112.0, "already_facilitating")
    out = run.ok(E.End("t:moderator"), 113.0)
    assert run.circle.status is CircleStatus.ENDED


def test_an_anonymous_attendee_cannot_step_in():
    run = gathered(make_script(round_phase(), allow_anonymous=True))
    run.join("t:quiet", 1.0, anonymous=True)
    run.refused(E.StepIn("t:quiet", "Quinn"), 2.0, "anonymous_facilitator")


# ---------------------------------------------------------------- the talking piece


def test_only_the_holder_says_done(three):
    run = three
    run.refused(E.Done(BEN), 110.0, "not_holder", holder="Ana")
    run.refused(E.Done("t:stranger"), 110.0, "not_in_circle")
    run.refused(E.Done(FAC), 110.0, "not_in_circle")
    assert run.holder == ANA


def test_pass_on_your_own_turn_is_always_accepted(three):
    run = three
    out = run.ok(E.Pass(ANA), 100.0)  # at once, without a word
    assert of(out, A.TurnEnded) == [A.TurnEnded(ANA, "Ana", "passed")]
    run.ok(E.Pause(FAC), 101.0)
    out = run.ok(E.Pass(BEN), 102.0)  # even while paused
    assert kept(out, A.TurnRecorded) == [A.TurnRecorded(BEN, "passed")]
    assert run.holder == CAM
    run.refused(E.Pass(ANA), 103.0, "not_holder", holder="Cam")


def test_a_turn_given_while_paused_starts_when_the_circle_resumes(three):
    run = three
    run.ok(E.Pause(FAC), 120.0)
    out = run.ok(E.Done(ANA), 500.0)
    assert given(out) == [(BEN, 180.0)]  # from the moment of the pause
    assert run.circle.remaining(900.0) == 60
    out = run.ok(E.Resume(FAC), 1000.0)
    assert of(out, A.Resumed) == [A.Resumed(60)]
    assert run.circle.next_deadline == 1040.0  # the 20s reminder of Ben's full minute


def test_holder_who_leaves_passes_the_piece_on(three):
    run = three
    out = run.ok(E.Leave(ANA), 130.0)
    assert of(out, A.LeftCircle) == [A.LeftCircle(ANA, 2)]
    assert kept(out, A.AttendanceEnded) == [A.AttendanceEnded(ANA, 130.0)]
    assert given(out) == [(BEN, 190.0)]


def test_someone_who_leaves_mid_round_is_skipped(three):
    run = three
    run.ok(E.Leave(BEN), 110.0)
    assert given(run.ok(E.Done(ANA), 120.0)) == [(CAM, 180.0)]
    out = run.ok(E.Done(CAM), 130.0)
    assert of(out, A.PhaseStarted)[0].name == "Reflection"
    assert [r.member for r in kept(out, A.TurnRecorded)] == [CAM]


def test_someone_who_leaves_and_comes_back_mid_round_waits_for_the_next_round():
    script = make_script(round_phase("60s", rounds=2))
    run, _ = begun(script)
    run.ok(E.Leave(BEN), 110.0)
    out = run.ok(E.Join(BEN, "Ben"), 111.0)  # consent was given before: not asked again
    assert of(out, A.Joined) == [A.Joined(BEN, 3, True)]
    assert given(run.ok(E.Done(ANA), 120.0)) == [(CAM, 180.0)]
    out = run.ok(E.Done(CAM), 130.0)
    assert of(out, A.RoundStarted) == [A.RoundStarted(2, 2, 3, False)]
    assert given(out) == [(ANA, 190.0)]
    assert given(run.ok(E.Done(ANA), 131.0)) == [(CAM, 191.0)]
    assert given(run.ok(E.Done(CAM), 132.0)) == [(BEN, 192.0)]  # Ben re-joined last


def test_someone_who_joins_mid_round_speaks_in_the_next_round():
    script = make_script(round_phase("60s", rounds=2), round_phase("60s", name="Second"))
    run, _ = begun(script)
    out = run.join(DAN, 105.0)
    assert of(out, A.Joined) == [A.Joined(DAN, 4, True)]
    round_one = [ANA]
    t = 110.0
    while True:
        out = run.ok(E.Done(run.holder or ""), t)
        t += 1
        if of(out, A.RoundStarted):
            break
        round_one += [g.member for g in of(out, A.GivePiece)]
    assert round_one == [ANA, BEN, CAM]
    assert of(out, A.RoundStarted) == [A.RoundStarted(2, 2, 4, False)]


def test_someone_who_joins_in_the_last_round_speaks_in_the_next_phase():
    script = make_script(round_phase("60s"), round_phase("60s", name="Second"))
    run, _ = begun(script)
    run.join(DAN, 105.0)
    run.refused(E.Pass(DAN), 106.0, "not_holder", holder="Ana")
    run.ok(E.Done(ANA), 110.0)
    run.ok(E.Done(BEN), 111.0)
    out = run.ok(E.Done(CAM), 112.0)
    assert of(out, A.PhaseStarted)[0].name == "Second"
    assert of(out, A.RoundStarted) == [A.RoundStarted(1, 1, 4, False)]
    assert given(out) == [(ANA, 172.0)]


def test_joining_outside_a_round_is_not_flagged_as_mid_round():
    run, _ = begun(make_script({"kind": "open", "duration": "5m"}))
    out = run.join(DAN, 105.0)
    assert of(out, A.Joined) == [A.Joined(DAN, 4, False)]
    run2 = gathered(ROUND_THEN_OPEN)
    assert of(run2.join(DAN, 1.0), A.Joined) == [A.Joined(DAN, 4, False)]


def test_empty_round_is_skipped_and_the_circle_moves_on():
    _, out = begun(ROUND_THEN_OPEN, people=(), at=100.0)
    assert of(out, A.RoundSkipped) == [A.RoundSkipped("Check-in")]
    assert of(out, A.GivePiece) == []
    started = of(out, A.PhaseStarted)
    assert [(p.name, p.ends_at) for p in started] == [("Check-in", None), ("Reflection", 700.0)]


def test_round_emptied_by_leaving_moves_on():
    run, _ = begun(ROUND_THEN_OPEN, people=(ANA,), at=100.0)
    out = run.ok(E.Leave(ANA), 110.0)
    assert of(out, A.PhaseStarted)[0].name == "Reflection"
    assert of(out, A.PhaseStarted)[0].ends_at == 710.0


def test_popcorn_round_emptied_by_leaving_moves_on():
    script = make_script(round_phase(order="popcorn"), {"kind": "silence", "name": "After", "duration": "1m"})
    run, _ = begun(script, at=100.0)
    run.ok(E.Pass(ANA), 101.0)
    run.ok(E.Pass(BEN), 102.0)
    out = run.ok(E.Leave(CAM), 103.0)
    assert of(out, A.PhaseStarted)[0].name == "After"


def test_popcorn_holder_leaving_gives_the_piece_to_the_first_waiting():
    script = make_script(round_phase(order="popcorn"))
    run, _ = begun(script, at=100.0)
    run.ok(E.AskPiece(ANA), 101.0)
    run.ok(E.AskPiece(CAM), 102.0)
    out = run.ok(E.Leave(ANA), 103.0)
    assert given(out) == [(CAM, 163.0)]


def test_each_round_picks_its_speakers_afresh():
    script = make_script(
        round_phase(rounds=2, speakers=["presenter"]), {"kind": "silence", "name": "After", "duration": "1m"}
    )
    run = gathered(script)
    run.ok(E.AssignRole(FAC, BEN, "presenter"), 1.0)
    run.ok(E.Begin(FAC), 100.0)
    assert run.holder == BEN
    run.ok(E.Leave(CAM), 101.0)
    run.ok(E.Pause(FAC), 102.0)
    run.ok(E.Resume(FAC), 103.0)
    run.ok(E.AssignRole(FAC, ANA, "presenter"), 104.0)  # the role moves; Ben keeps the piece
    out = run.ok(E.Done(BEN), 105.0)
    assert of(out, A.RoundStarted) == [A.RoundStarted(2, 2, 1, False)]
    assert given(out) == [(ANA, 165.0)]


def test_second_round_without_anyone_is_skipped():
    script = make_script(
        round_phase(rounds=2, speakers=["presenter"]), {"kind": "silence", "name": "After", "duration": "1m"}
    )
    run = gathered(script)
    run.ok(E.AssignRole(FAC, BEN, "presenter"), 1.0)
    run.ok(E.Begin(FAC), 100.0)
    out = run.ok(E.Leave(BEN), 110.0)
    assert of(out, A.RoundSkipped) == [A.RoundSkipped("Round")]
    assert of(out, A.PhaseStarted)[0].name == "After"
    assert of(out, A.PhaseStarted)[0].ends_at == 170.0


# ---------------------------------------------------------------- pause


def test_pause_freezes_the_turn_and_its_reminders(three):
    run = three
    out = run.ok(E.Pause(FAC), 120.0)
    assert of(out, A.Paused) == [A.Paused(40)]
    assert run.circle.next_deadline == 120.0 + IDLE_CLOSE_AFTER  # only the close of a circle left paused
    for t in (141.0, 160.0, 1_000.0, 40_000.0):
        assert run.tick(t).actions == ()
    status = of(run.ok(E.Status(BEN), 40_000.0), A.StatusReport)[0]
    assert (status.status, status.holder, status.remaining) == ("paused", "Ana", 40)
    out = run.ok(E.Resume(FAC), 40_000.0)
    assert of(out, A.Resumed) == [A.Resumed(40)]
    assert run.circle.remaining(40_000.0) == 40
    assert run.circle.next_deadline == 40_020.0
    assert of(run.tick(40_020.0), A.Nudge) == [A.Nudge(ANA, "Ana", 20, "round")]
    assert run.tick(40_039.0).actions == ()
    out = run.tick(40_040.0)
    assert kept(out, A.TurnRecorded) == [A.TurnRecorded(ANA, "time")]
    assert given(out) == [(BEN, 40_100.0)]


def test_pause_freezes_an_open_phase(three):
    run = three
    _to_open_phase(run, 100.0)  # Reflection ends at 700, reminder at 580
    run.ok(E.Pause(FAC), 200.0)
    assert run.tick(5_000.0).actions == ()
    run.refused(E.Pause(FAC), 5_000.0, "already_paused")
    out = run.ok(E.Resume(FAC), 10_000.0)
    assert of(out, A.Resumed) == [A.Resumed(500)]
    assert of(run.tick(10_380.0), A.Nudge) == [A.Nudge(None, None, 120, "open")]
    assert [type(a).__name__ for a in run.tick(10_500.0).actions][:1] == ["TimeUp"]


def test_pause_twice_and_resume_twice_keep_the_time_exact(three):
    run = three
    run.ok(E.Pause(FAC), 110.0)  # 50 left
    run.ok(E.Resume(FAC), 200.0)
    run.ok(E.Pause(FAC), 230.0)  # 20 left
    assert run.circle.remaining(999.0) == 20
    run.ok(E.Resume(FAC), 1_000.0)
    assert run.circle.state.ends_at == 1_020.0


# ---------------------------------------------------------------- extend


def test_extend_lengthens_the_open_phase_and_shifts_its_reminders(three):
    run = three
    _to_open_phase(run, 100.0)  # ends at 700, reminder at 580
    out = run.ok(E.Extend(FAC, 5), 200.0)
    assert of(out, A.Extended) == [A.Extended(300, 800)]
    assert run.circle.next_deadline == 880.0
    assert run.tick(580.0).actions == ()
    assert of(run.tick(880.0), A.Nudge) == [A.Nudge(None, None, 120, "open")]
    assert run.tick(999.0).actions == ()
    assert of(run.tick(1_000.0), A.TimeUp) == [A.TimeUp("Reflection")]


def test_extend_after_a_reminder_reminds_again_before_the_new_end(three):
    run = three
    _to_open_phase(run, 100.0)  # ends at 700, reminder at 580
    assert of(run.tick(580.0), A.Nudge) == [A.Nudge(None, None, 120, "open")]
    run.ok(E.Extend(FAC, 5), 600.0)  # now ends at 1000
    assert of(run.tick(880.0), A.Nudge) == [A.Nudge(None, None, 120, "open")]


def test_extend_lengthens_the_current_turn_only(three):
    run = three
    out = run.ok(E.Extend(FAC, 2), 110.0)
    assert of(out, A.Extended) == [A.Extended(120, 170)]
    assert run.circle.next_deadline == 260.0  # the 20s reminder, shifted
    assert of(run.tick(260.0), A.Nudge) == [A.Nudge(ANA, "Ana", 20, "round")]
    out = run.tick(280.0)
    assert kept(out, A.TurnRecorded) == [A.TurnRecorded(ANA, "time")]
    assert of(out, A.GivePiece) == [A.GivePiece(BEN, "Ben", 340.0, 60, 1)]  # Ben's turn is not longer


def test_extend_while_paused_counts_from_the_pause(three):
    run = three
    run.ok(E.Pause(FAC), 120.0)
    out = run.ok(E.Extend(FAC, 1), 500.0)
    assert of(out, A.Extended) == [A.Extended(60, 100)]
    run.ok(E.Resume(FAC), 1_000.0)
    assert run.circle.state.ends_at == 1_100.0


def test_extend_a_free_popcorn_piece():
    run, _ = begun(make_script(round_phase(order="popcorn")), at=100.0)
    run.ok(E.Extend(FAC, 1), 110.0)
    assert run.tick(160.0).actions == ()
    assert of(run.tick(220.0), A.PieceFree) == [A.PieceFree(280.0, 3)]


# ---------------------------------------------------------------- next and end


def test_next_skips_the_current_phase(three):
    run = three
    out = run.ok(E.Next(FAC), 130.0)
    assert of(out, A.PhaseSkipped) == [A.PhaseSkipped("Check-in")]
    assert of(out, A.PhaseStarted)[0].name == "Reflection"
    assert of(out, A.PhaseStarted)[0].ends_at == 730.0
    assert run.holder is None
    run.refused(E.Done(ANA), 131.0, "no_round")
    out = run.ok(E.Next(FAC), 140.0)
    assert of(out, A.PhaseSkipped) == [A.PhaseSkipped("Reflection")]
    assert of(out, A.CircleEnded) == [A.CircleEnded(TITLE, False)]


def test_next_in_a_timed_close_ends_the_circle_not_early():
    script = make_script({"kind": "close", "text": CLOSE_TEXT, "duration": "5m"})
    run, _ = begun(script, at=100.0)
    out = run.ok(E.Next(FAC), 110.0)
    assert of(out, A.CircleEnded) == [A.CircleEnded(TITLE, False)]
    assert kept(out, A.CircleFinished) == [A.CircleFinished(110.0)]


def _assert_ended_early(out: A.Outcome, at: float, people: list[str]) -> None:
    close = [p for p in of(out, A.PhaseStarted) if p.kind == "close"]
    assert [(p.text, p.index) for p in close] == [(CLOSE_TEXT, 2)]
    assert of(out, A.CircleEnded) == [A.CircleEnded(TITLE, True)]
    assert kept(out, A.AttendanceEnded) == [A.AttendanceEnded(m, at) for m in people]
    assert kept(out, A.CircleFinished) == [A.CircleFinished(at)]


def test_end_says_the_closing_words_and_ends_early(three):
    run = three
    out = run.ok(E.End(FAC), 130.0)
    _assert_ended_early(out, 130.0, [ANA, BEN, CAM])
    assert run.circle.status is CircleStatus.ENDED
    assert run.circle.next_deadline is None
    assert run.tick(10_000.0).actions == ()
    run.refused(E.Done(ANA), 10_000.0, "ended")


def test_end_while_paused(three):
    run = three
    run.ok(E.Pause(FAC), 120.0)
    out = run.ok(E.End(FAC), 130.0)
    _assert_ended_early(out, 130.0, [ANA, BEN, CAM])
    assert run.circle.status is CircleStatus.ENDED
    assert run.circle.state.paused_at is None


def test_end_before_beginning():
    run = gathered(ROUND_THEN_OPEN, people=(ANA, BEN))
    out = run.ok(E.End(FAC), 50.0)
    _assert_ended_early(out, 50.0, [ANA, BEN])
    assert run.circle.status is CircleStatus.ENDED


# ---------------------------------------------------------------- roles

CASE = make_script(
    round_phase("60s", name="Check-in", silent=["presenter"]),
    round_phase("5m", name="Case", speakers=["presenter"]),
    {"kind": "open", "name": "Reflection", "duration": "10m", "silent": ["presenter"]},
)


def test_begin_needs_the_role_filled_by_someone_present():
    run = gathered(CASE)
    run.refused(E.Begin(FAC), 1.0, "role_needed", role="presenter")
    run.ok(E.Join(DAN, "Dan"), 2.0)
    run.refused(E.AssignRole(FAC, DAN, "presenter"), 3.0, "not_in_circle")  # still pending
    out = run.ok(E.AssignRole(FAC, BEN, "presenter"), 4.0)
    assert of(out, A.RoleAssigned) == [A.RoleAssigned(BEN, "Ben", "presenter")]
    assert kept(out, A.Audit) == [A.Audit(FAC, "assignrole", "presenter", 4.0)]
    run.ok(E.Leave(BEN), 5.0)
    run.refused(E.Begin(FAC), 6.0, "role_needed", role="presenter")
    run.ok(E.Join(BEN, "Ben"), 7.0)  # roles stay with a person who comes back
    run.ok(E.Begin(FAC), 8.0)


def test_silent_roles_sit_out_and_speakers_only_speak():
    run = gathered(CASE)
    run.ok(E.AssignRole(FAC, BEN, "presenter"), 1.0)
    out = run.ok(E.Begin(FAC), 100.0)
    assert of(out, A.RoundStarted) == [A.RoundStarted(1, 1, 2, False)]
    assert given(out) == [(ANA, 160.0)]
    assert given(run.ok(E.Done(ANA), 110.0)) == [(CAM, 170.0)]
    out = run.ok(E.Done(CAM), 120.0)
    assert of(out, A.PhaseStarted)[0].name == "Case"
    assert of(out, A.RoundStarted) == [A.RoundStarted(1, 1, 1, False)]
    assert given(out) == [(BEN, 420.0)]
    out = run.ok(E.Done(BEN), 130.0)
    assert of(out, A.PhaseStarted)[0].silent_roles == ("presenter",)


def test_assigning_a_role_moves_it():
    run = gathered(CASE)
    run.ok(E.AssignRole(FAC, BEN, "presenter"), 1.0)
    run.ok(E.AssignRole(FAC, CAM, "presenter"), 2.0)
    people = run.circle.state.participants
    assert people[BEN].roles == []
    assert people[CAM].roles == ["presenter"]


def test_undeclared_role_is_refused():
    run = gathered(CASE)
    refusal = run.refused(E.AssignRole(FAC, BEN, "timekeeper"), 1.0, "unknown_role")
    assert refusal.detail == {"role": "timekeeper", "roles": "presenter"}
    no_roles = gathered(make_script(round_phase(), roles=[]))
    no_roles.refused(E.AssignRole(FAC, BEN, "presenter"), 1.0, "unknown_role", roles="none")


# ---------------------------------------------------------------- status


def test_status_says_where_the_circle_is(three):
    run = three
    out = run.ok(E.Status("t:stranger"), 130.0)
    assert of(out, A.StatusReport) == [A.StatusReport("t:stranger", "running", "Check-in", "round", "Ana", 30, 3)]
    fresh = Run(ROUND_THEN_OPEN)
    out = fresh.ok(E.Status(ANA), 0.0)
    assert of(out, A.StatusReport) == [A.StatusReport(ANA, "new", None, None, None, None, 0)]
