"""A circle survives its host: a new runtime over the same database carries on where it was."""

from __future__ import annotations

import pytest

from facilitator.engine.state import CircleStatus
from facilitator.runtime.clock import ManualClock
from tests.conftest import Host, make_host

PEOPLE = ["Ada", "Bea", "Cy"]


async def into_the_check_in_round(host: Host) -> str:
    """Open check-in-30, three people join, begin, and run into the check-in round."""
    c = host.console
    assert (await c.say("Fran", "start check-in-30")).accepted
    for name in PEOPLE:
        await c.say(name, "join")
        assert (await c.say(name, "consent")).accepted
    assert (await c.say("Fran", "begin")).accepted
    host.clock.advance(120)  # welcome (1m) and agreement (1m)
    await host.runtime.settle()
    hosted = host.runtime.circle_in("console", "room-1")
    assert hosted is not None and hosted.circle.holder == "console:ada"
    assert (await c.say("Ada", "done")).accepted
    host.clock.advance(40)
    await host.runtime.settle()
    return hosted.id


async def crash(host: Host) -> None:
    """Throw the runtime away without a goodbye (what was committed is all that is left)."""
    host.runtime.writer.close()
    host.store.close()
    host.runtime._lock.release()  # what the operating system does when a process dies


@pytest.mark.parametrize("url_fixture", ["db_url", "postgres_url"], ids=["sqlite", "postgresql"])
async def test_a_new_runtime_resumes_phase_holder_time_and_attendance(
    url_fixture: str, clock: ManualClock, request: pytest.FixtureRequest
) -> None:
    db_url = request.getfixturevalue(url_fixture)
    first = await make_host(db_url, clock)
    circle_id = await into_the_check_in_round(first)
    before = first.runtime.circle_in("console", "room-1")
    assert before is not None
    phase_before = before.circle.state.phase
    remaining_before = before.circle.remaining(clock.now())
    assert remaining_before == 50  # Bea's 90 s turn, 40 s in
    await crash(first)

    clock.advance(5)  # five seconds of downtime
    second = await make_host(db_url, clock)
    try:
        after = second.runtime.circle_in("console", "room-1")
        assert after is not None and after.id == circle_id
        assert after.circle.status is CircleStatus.RUNNING
        assert after.circle.state.phase == phase_before
        assert after.circle.phase is not None and after.circle.phase.name == "Check-in"
        assert after.circle.holder == "console:bea"
        assert after.circle.remaining(clock.now()) == 45
        back = [line for line in second.said() if "We are back" in line]
        assert len(back) == 1 and "@Bea holds the piece" in back[0] and "45s left" in back[0]
        rows = second.store.attendance_of(circle_id)
        assert [r["display_name"] for r in rows] == PEOPLE
        assert [r["turns_spoken"] for r in rows] == [1, 0, 0]
        assert all(r["left_at"] is None for r in rows)

        # The circle carries on from there: Bea's turn ends on time, Cy gets the piece.
        clock.advance(45)
        await second.runtime.settle()
        assert after.circle.holder == "console:cy"
    finally:
        await second.runtime.stop()
        second.store.close()


async def test_downtime_past_deadlines_is_caught_up_in_one_step(db_url: str, clock: ManualClock) -> None:
    first = await make_host(db_url, clock)
    circle_id = await into_the_check_in_round(first)
    await crash(first)

    clock.advance(50 + 90 + 30)  # Bea's and Cy's turns both ran out while we were down
    second = await make_host(db_url, clock)
    try:
        said = second.said()
        assert len(said) == 1, said  # one message, not a burst of stale announcements
        assert said[0].startswith("We are back")
        assert "Open reflection" in said[0]
        hosted = second.runtime.circle_in("console", "room-1")
        assert hosted is not None and hosted.circle.phase is not None
        assert hosted.circle.phase.kind == "open"
        # The open phase started when Cy's turn ended (not when we came back): 7m minus 30s left.
        assert hosted.circle.remaining(clock.now()) == 7 * 60 - 30
        rows = second.store.attendance_of(circle_id)
        assert [r["turns_spoken"] for r in rows] == [1, 1, 1]
    finally:
        await second.runtime.stop()
        second.store.close()


async def test_nothing_is_recorded_twice_across_a_restart(db_url: str, clock: ManualClock) -> None:
    first = await make_host(db_url, clock)
    circle_id = await into_the_check_in_round(first)
    await first.runtime.stop()
    first.store.close()
    for _ in range(3):  # several restarts in a row
        again = await make_host(db_url, clock)
        await again.runtime.stop()
        again.store.close()
    last = await make_host(db_url, clock)
    try:
        assert len(last.store.attendance_of(circle_id)) == 3
        assert len(last.store.consent_log(circle_id)) == 6  # three people, two consents each
        await last.console.say("Bea", "done")
        await last.console.say("Cy", "pass")
        rows = last.store.attendance_of(circle_id)
        assert [(r["turns_spoken"], r["turns_passed"]) for r in rows] == [(1, 0), (1, 0), (0, 1)]
    finally:
        await last.runtime.stop()
        last.store.close()
