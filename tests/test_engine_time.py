"""Time: late ticks catch up deadline by deadline, and Recover says one "we are back"."""

from __future__ import annotations

from facilitator.engine import actions as A
from facilitator.engine import events as E
from facilitator.engine.circle import IDLE_CLOSE_AFTER
from facilitator.engine.state import CircleStatus
from tests.engine_helpers import (
    ANA,
    BEN,
    CAM,
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

# announce 0-60, open 60-360 (reminder at 300), silence 360-480, round 480-660 (Ana, Ben, Cam), close at 660
SCRIPT = make_script(
    {"kind": "announce", "name": "Welcome", "text": "Welcome.", "duration": "1m"},
    {"kind": "open", "name": "Reflection", "duration": "5m", "remind_before": ["1m"]},
    {"kind": "silence", "name": "Quiet", "duration": "2m"},
    round_phase("60s", name="Round", remind_before=["15s"]),
)


def _ticked_on_time(run: Run) -> list[A.Outcome]:
    """Tick at every deadline, exactly when it is due, until the circle ends."""
    outcomes = []
    while run.circle.next_deadline is not None:
        outcomes.append(run.tick(run.circle.next_deadline))
    return outcomes


def test_deadlines_fall_where_the_script_says():
    run, _ = begun(SCRIPT, at=0.0)
    deadlines = []
    while run.circle.next_deadline is not None:
        deadlines.append(run.circle.next_deadline)
        run.tick(run.circle.next_deadline)
    assert deadlines == [60.0, 300.0, 360.0, 480.0, 525.0, 540.0, 585.0, 600.0, 645.0, 660.0]
    assert run.circle.status is CircleStatus.ENDED


def test_late_tick_processes_each_deadline_at_its_own_time():
    run, _ = begun(SCRIPT, at=0.0)
    out = run.tick(10_000.0)
    started = [(p.name, p.ends_at) for p in of(out, A.PhaseStarted)]
    assert started == [("Reflection", 360.0), ("Quiet", 480.0), ("Round", None), ("Close", 660.0)]
    assert of(out, A.Nudge) == [A.Nudge(None, None, 60, "open")] + [
        A.Nudge(m, n, 15, "round") for m, n in ((ANA, "Ana"), (BEN, "Ben"), (CAM, "Cam"))
    ]
    assert given(out) == [(ANA, 540.0), (BEN, 600.0), (CAM, 660.0)]
    assert kept(out, A.TurnRecorded) == [A.TurnRecorded(m, "time") for m in (ANA, BEN, CAM)]
    assert kept(out, A.AttendanceEnded) == [A.AttendanceEnded(m, 660.0) for m in (ANA, BEN, CAM)]
    assert kept(out, A.CircleFinished) == [A.CircleFinished(660.0)]
    assert of(out, A.CircleEnded) == [A.CircleEnded(TITLE, False)]


def test_late_tick_says_and_keeps_exactly_what_timely_ticks_would():
    late, _ = begun(SCRIPT, at=0.0)
    timely, _ = begun(SCRIPT, at=0.0)
    out = late.tick(10_000.0)
    outcomes = _ticked_on_time(timely)
    assert list(out.actions) == [a for o in outcomes for a in o.actions]
    assert list(out.records) == [r for o in outcomes for r in o.records]
    assert late.circle.snapshot() == timely.circle.snapshot()


def test_late_tick_that_stops_mid_phase_leaves_the_rest_of_it():
    run, _ = begun(SCRIPT, at=0.0)
    out = run.tick(500.0)
    assert given(out) == [(ANA, 540.0)]
    assert run.holder == ANA
    assert run.circle.remaining(500.0) == 40
    assert run.circle.next_deadline == 525.0
    assert run.tick(524.0).actions == ()


def test_late_tick_through_a_popcorn_round():
    script = make_script(
        round_phase("60s", name="Popcorn", order="popcorn"), {"kind": "silence", "name": "Quiet", "duration": "1m"}
    )
    run, _ = begun(script, at=0.0)
    out = run.tick(1_000.0)
    assert of(out, A.PieceFree) == [A.PieceFree(120.0, 3)]
    assert [(p.name, p.ends_at) for p in of(out, A.PhaseStarted)] == [("Quiet", 180.0), ("Close", 180.0)]
    assert kept(out, A.CircleFinished) == [A.CircleFinished(180.0)]


def test_tick_when_nothing_is_due_does_nothing():
    run, _ = begun(SCRIPT, at=0.0)
    before = run.circle.snapshot()
    out = run.tick(59.999)
    assert out == A.Outcome(True, (), ())
    assert run.circle.snapshot() == before
    assert Run(SCRIPT).tick(1e9) == A.Outcome(True, (), ())
    assert gathered(SCRIPT).tick(IDLE_CLOSE_AFTER - 0.001) == A.Outcome(True, (), ())  # not yet left too long


def test_next_deadline_is_none_when_no_timer_runs():
    assert Run(SCRIPT).circle.next_deadline is None
    run = gathered(SCRIPT)
    assert run.circle.next_deadline == IDLE_CLOSE_AFTER  # left gathering that long, it closes
    run.ok(E.Begin(FAC), 0.0)
    assert run.circle.next_deadline == 60.0
    run.ok(E.Pause(FAC), 10.0)
    assert run.circle.next_deadline == 10.0 + IDLE_CLOSE_AFTER  # the phase's timers are frozen
    run.ok(E.Resume(FAC), 20.0)
    assert run.circle.next_deadline == 70.0
    run.ok(E.End(FAC), 30.0)
    assert run.circle.next_deadline is None


# ---------------------------------------------------------------- recover


def test_recover_within_a_phase_says_only_that_we_are_back():
    run, _ = begun(SCRIPT, at=0.0)
    run.tick(60.0)
    out = run.ok(E.Recover(downtime=440.0), 500.0)
    assert out.actions == (A.Back("running", "Round", "round", ANA, "Ana", 40, 440),)
    assert out.records == ()  # no turn ended during the gap
    assert run.circle.next_deadline == 525.0


def test_recover_keeps_the_records_of_every_caught_up_step():
    run, _ = begun(SCRIPT, at=0.0)
    out = run.ok(E.Recover(downtime=630.0), 630.0)
    assert out.actions == (A.Back("running", "Round", "round", CAM, "Cam", 30, 630),)
    assert out.records == (A.TurnRecorded(ANA, "time"), A.TurnRecorded(BEN, "time"))
    timely, _ = begun(SCRIPT, at=0.0)
    while timely.circle.next_deadline is not None and timely.circle.next_deadline <= 630.0:
        timely.tick(timely.circle.next_deadline)
    assert run.circle.snapshot() == timely.circle.snapshot()


def test_recover_after_the_circle_ended_in_the_gap():
    run, _ = begun(SCRIPT, at=0.0)
    out = run.ok(E.Recover(downtime=9_999.6), 10_000.0)
    assert out.actions == (
        A.Back("ended", "Close", "close", None, None, None, 10_000),
        A.CircleEnded(TITLE, False),
    )
    assert out.records == (
        *(A.TurnRecorded(m, "time") for m in (ANA, BEN, CAM)),
        *(A.AttendanceEnded(m, 660.0) for m in (ANA, BEN, CAM)),
        A.CircleFinished(660.0),
    )
    assert run.circle.status is CircleStatus.ENDED


def test_recover_while_paused_keeps_the_timers_frozen():
    run, _ = begun(SCRIPT, at=0.0)
    run.tick(500.0)
    run.ok(E.Pause(FAC), 510.0)
    out = run.ok(E.Recover(downtime=3_000.0), 5_000.0)
    assert out.actions == (A.Back("paused", "Round", "round", ANA, "Ana", 30, 3_000),)
    assert out.records == ()
    assert of(run.ok(E.Resume(FAC), 6_000.0), A.Resumed) == [A.Resumed(30)]


def test_recover_before_begin_says_nothing():
    """Nothing was under way while gathering, so nothing was missed: no "we are back" noise."""
    run = gathered(SCRIPT)
    out = run.ok(E.Recover(downtime=12.4), 50.0)
    assert out.actions == ()
    assert out.records == ()


def test_recover_of_an_ended_circle_says_and_keeps_nothing_again():
    run, _ = begun(SCRIPT, at=0.0)
    run.ok(E.End(FAC), 10.0)
    out = run.ok(E.Recover(downtime=5.0), 20.0)
    assert of(out, A.CircleEnded) == []
    assert out.records == ()


def test_after_recover_the_circle_carries_on_normally():
    run, _ = begun(SCRIPT, at=0.0)
    run.ok(E.Recover(downtime=500.0), 500.0)
    out = run.ok(E.Done(ANA), 510.0)
    assert given(out) == [(BEN, 570.0)]


def test_a_host_ticks_before_an_event_so_a_pause_just_after_a_deadline_freezes_the_time_really_left():
    """The engine judges an event against the state it is given; hosts tick first when a deadline is due.

    (A refused event must change nothing, so the engine does not catch up on its own inside ``handle``;
    the runtime sends ``Tick`` before any event that arrives after a due deadline: see
    ``Circle.due`` and tests/test_runtime.py.)
    """
    run, _ = begun(make_script(round_phase("60s")), at=100.0)  # Ana until 160, then Ben until 220
    assert run.circle.due(170.0)
    run.ok(E.Tick(), 170.0)  # what the runtime does first
    assert not run.circle.due(170.0)
    out = run.ok(E.Pause(FAC), 170.0)
    assert of(out, A.Paused) == [A.Paused(50)]
    assert run.holder == BEN


# ---------------------------------------------------------------- left open: the idle close

LEFT = IDLE_CLOSE_AFTER


def _closed_idle(out: A.Outcome, left: str, at: float, people: list[str], idle_for: float = LEFT) -> None:
    """Closed as ``end`` would, as of ``at`` (when it opened, or was paused: not twelve hours of
    attendance nobody gave), without the closing words, with no audit entry."""
    assert out.actions == (A.CircleEnded(TITLE, True, left, round(idle_for)),)  # type: ignore[arg-type]
    assert out.records == (*(A.AttendanceEnded(m, at) for m in people), A.CircleFinished(at, idle=True))


def test_a_circle_left_gathering_closes_twelve_hours_after_it_opened_not_a_second_before():
    assert LEFT == 12 * 3600
    run = gathered(SCRIPT, now=1_000.0)
    run.ok(E.Join(DAN, "Dan"), 2_000.0)  # asked to join, never agreed: nothing to close for Dan
    assert run.circle.next_deadline == 1_000.0 + LEFT
    assert not run.circle.due(1_000.0 + LEFT - 1)
    assert run.tick(1_000.0 + LEFT - 1) == A.Outcome(True, (), ())
    assert run.circle.snapshot()["status"] == "gathering"  # (not narrowed: it changes below)
    assert run.circle.due(1_000.0 + LEFT)
    out = run.tick(1_000.0 + LEFT + 300)  # a late tick: closed as of its opening, said as it is
    _closed_idle(out, "gathering", 1_000.0, [ANA, BEN, CAM], idle_for=LEFT + 300)
    assert run.circle.status is CircleStatus.ENDED
    assert run.circle.next_deadline is None
    assert run.tick(1e9).actions == ()
    run.refused(E.Begin(FAC), 1e9, "ended")


def test_joining_does_not_put_the_close_off():
    run = gathered(SCRIPT, people=(ANA,), now=0.0)
    run.join(BEN, LEFT - 60)
    assert run.circle.next_deadline == LEFT
    _closed_idle(run.tick(LEFT), "gathering", 0.0, [ANA, BEN])


def test_a_circle_left_paused_closes_twelve_hours_after_the_pause():
    run, _ = begun(SCRIPT, at=0.0)
    run.tick(65.0)
    run.ok(E.Pause(FAC), 100.0)
    assert run.circle.next_deadline == 100.0 + LEFT
    assert run.tick(100.0 + LEFT - 1).actions == ()
    assert run.circle.snapshot()["status"] == "paused"  # (not narrowed: it changes below)
    out = run.tick(100.0 + LEFT)
    _closed_idle(out, "paused", 100.0, [ANA, BEN, CAM])  # as of the pause, when it stopped meeting
    assert of(out, A.PhaseStarted) == []  # no closing words: the circle had stopped meeting
    assert run.circle.status is CircleStatus.ENDED


def test_resuming_before_the_close_keeps_the_circle():
    run, _ = begun(SCRIPT, at=0.0)
    run.ok(E.Pause(FAC), 30.0)  # 30 s of the welcome left
    run.ok(E.Resume(FAC), 30.0 + LEFT - 1)
    assert run.circle.next_deadline == 60.0 + LEFT - 1  # the welcome's end, not a close
    out = run.tick(30.0 + LEFT)
    assert out.actions == () and run.circle.status is CircleStatus.RUNNING
    run.ok(E.Pause(FAC), 40.0 + LEFT)  # a new pause counts from itself
    assert run.circle.next_deadline == 40.0 + 2 * LEFT


def test_beginning_before_the_close_keeps_the_circle():
    run = gathered(SCRIPT, now=0.0)
    assert run.circle.next_deadline == LEFT
    run.ok(E.Begin(FAC), LEFT - 1)
    out = run.tick(LEFT)
    assert out.actions == () and run.circle.status is CircleStatus.RUNNING
    assert run.circle.next_deadline == LEFT - 1 + 60  # the welcome's end
    assert of(run.tick(LEFT + 59), A.PhaseStarted)[0].name == "Reflection"


def test_recover_after_a_gathering_circle_was_left_too_long_closes_it_with_one_message():
    run = gathered(SCRIPT, now=0.0)
    out = run.ok(E.Recover(downtime=LEFT), LEFT + 3_600)
    _closed_idle(out, "gathering", 0.0, [ANA, BEN, CAM], idle_for=LEFT + 3_600)  # no "we are back"; 13h said


def test_recover_after_a_paused_circle_was_left_too_long_closes_it_with_one_message():
    run, _ = begun(SCRIPT, at=0.0)
    run.ok(E.Pause(FAC), 10.0)
    out = run.ok(E.Recover(downtime=LEFT + 100), LEFT + 200)
    _closed_idle(out, "paused", 10.0, [ANA, BEN, CAM], idle_for=LEFT + 190)
