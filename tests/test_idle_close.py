"""A circle left open (never begun, or paused and never resumed) closes itself after 12 hours,
through the console and across a restart: the room is told, freed, and the names let go."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

from facilitator.engine.circle import IDLE_CLOSE_AFTER
from facilitator.engine.state import CircleStatus
from facilitator.runtime.clock import ManualClock
from tests.conftest import Host, in_the_check_in_round, make_host
from tests.test_resume import crash

CLOSED_GATHERING = '"Check-in circle (30 minutes)" was opened 12h ago and has not begun, so I have closed it'
CLOSED_PAUSED = '"Check-in circle (30 minutes)" has been paused for 12h, so I have closed it'


async def gathering(host: Host) -> str:
    """Fran opens check-in-30; Ada and Bea join and consent, Cy asks to join and never agrees."""
    c = host.console
    assert (await c.say("Fran", "start check-in-30")).accepted
    for name in ("Ada", "Bea"):
        await c.say(name, "join")
        assert (await c.say(name, "consent")).accepted
    await c.say("Cy", "join")
    hosted = host.runtime.circle_in("console", "room-1")
    assert hosted is not None and hosted.circle.status is CircleStatus.GATHERING
    return hosted.id


def assert_closed_and_let_go(host: Host, circle_id: str, at: float) -> None:
    """Ended as ``end`` ends one, as of ``at``, when it stopped meeting (opened and never begun, or
    paused): attendance closed then (no twelve hours nobody gave), salt dropped, no people in the state."""
    assert host.runtime.circle_in("console", "room-1") is None  # the room is free
    rows = host.store.attendance_of(circle_id)
    assert [(r["display_name"], r["left_at"]) for r in rows] == [("Ada", at), ("Bea", at)]
    row = host.store.circle_row(circle_id)
    assert row is not None
    assert (row["status"], row["seat_salt"], row["next_deadline"]) == ("ended", None, None)
    assert row["ended_at"] == at
    state = json.loads(row["state_json"])
    assert state["participants"] == {} and state["facilitators"] == []
    for name in ("Ada", "Bea", "Cy", "Fran"):
        assert name.lower() not in row["state_json"].lower()
    assert host.store.audit_of(circle_id) == [("open", "")]  # nobody ended it, so no one is audited


async def test_a_circle_nobody_begins_is_closed_after_twelve_hours_and_the_room_is_free(host: Host) -> None:
    opened = host.clock.now()
    circle_id = await gathering(host)
    row = host.store.circle_row(circle_id)
    assert row is not None and row["next_deadline"] == opened + IDLE_CLOSE_AFTER  # the timer is data
    assert host.runtime.next_deadline() == opened + IDLE_CLOSE_AFTER

    host.clock.advance(IDLE_CLOSE_AFTER - 1)
    await host.runtime.settle()
    said = len(host.said())
    assert host.runtime.circle_in("console", "room-1") is not None  # not a second early

    host.clock.advance(1)
    await host.runtime.settle()
    new = host.said()[said:]
    assert len(new) == 1 and new[0].startswith(CLOSED_GATHERING), new
    assert "a facilitator can start it again" in new[0]
    assert_closed_and_let_go(host, circle_id, opened)

    assert (await host.console.say("Fran", "start check-in-30")).accepted  # the room can meet again
    hosted = host.runtime.circle_in("console", "room-1")
    assert hosted is not None and hosted.id != circle_id


async def test_a_circle_paused_and_never_resumed_is_closed_twelve_hours_after_the_pause(host: Host) -> None:
    hosted = await in_the_check_in_round(host)
    assert (await host.console.say("Fran", "pause")).accepted
    paused = host.clock.now()
    row = host.store.circle_row(hosted.id)
    assert row is not None and row["next_deadline"] == paused + IDLE_CLOSE_AFTER

    host.clock.advance(IDLE_CLOSE_AFTER - 1)
    await host.runtime.settle()
    assert host.runtime.circle_in("console", "room-1") is hosted
    host.clock.advance(1)
    await host.runtime.settle()
    assert host.said()[-1].startswith(CLOSED_PAUSED)
    assert host.runtime.circle_in("console", "room-1") is None
    rows = host.store.attendance_of(hosted.id)
    assert [(r["display_name"], r["left_at"]) for r in rows] == [("Ada", paused), ("Bea", paused)]
    assert host.store.audit_of(hosted.id) == [("open", ""), ("begin", ""), ("pause", "")]


async def test_a_circle_left_gathering_while_the_bot_was_down_is_closed_at_start_with_one_message(
    db_url: str, clock: ManualClock
) -> None:
    first = await make_host(db_url, clock)
    opened = clock.now()
    circle_id = await gathering(first)
    await crash(first)

    clock.advance(IDLE_CLOSE_AFTER + 3_600)  # down through the deadline
    second = await make_host(db_url, clock)
    try:
        said = second.said()
        # One message, no "we are back" too, and the truth: it was opened 13 hours ago.
        assert len(said) == 1 and said[0].startswith(CLOSED_GATHERING.replace("12h", "13h")), said
        assert_closed_and_let_go(second, circle_id, opened)
        assert (await second.console.say("Fran", "start check-in-30")).accepted
    finally:
        await second.runtime.stop()
        second.store.close()


async def test_a_restart_before_the_deadline_keeps_it_and_closes_it_on_time(db_url: str, clock: ManualClock) -> None:
    first = await make_host(db_url, clock)
    opened = clock.now()
    circle_id = await gathering(first)
    await crash(first)

    clock.advance(3_600)
    second = await make_host(db_url, clock)
    try:
        assert second.said() == []  # gathering: nothing was missed
        assert second.runtime.next_deadline() == opened + IDLE_CLOSE_AFTER
        clock.set(opened + IDLE_CLOSE_AFTER)
        await second.runtime.settle()
        assert second.said()[-1].startswith(CLOSED_GATHERING)
        assert_closed_and_let_go(second, circle_id, opened)
    finally:
        await second.runtime.stop()
        second.store.close()


async def test_a_circle_stored_before_the_opening_time_was_kept_is_closed_after_an_upgrade(
    db_url: str, clock: ManualClock
) -> None:
    """A gathering circle from before ``opened_at``: counted from its last change, so one left
    for days closes at the first start of the new version, with one message."""
    first = await make_host(db_url, clock)
    circle_id = await gathering(first)
    last_change = clock.now()
    await crash(first)
    with closing(sqlite3.connect(db_url.removeprefix("sqlite:///"))) as conn, conn:
        (text,) = conn.execute("SELECT state_json FROM circle WHERE id = ?", (circle_id,)).fetchone()
        older = json.loads(text)
        del older["opened_at"]
        conn.execute("UPDATE circle SET state_json = ? WHERE id = ?", (json.dumps(older), circle_id))

    clock.advance(3 * 24 * 3600)
    second = await make_host(db_url, clock)
    try:
        said = second.said()
        assert len(said) == 1 and said[0].startswith('"Check-in circle (30 minutes)" was opened'), said
        assert_closed_and_let_go(second, circle_id, last_change)
    finally:
        await second.runtime.stop()
        second.store.close()


async def test_someone_who_came_to_a_circle_that_never_began_is_given_no_minutes(host: Host) -> None:
    """The circle is closed as of its opening, and an attendance never ends before it began: Ada,
    who came an hour after it opened, has none of the twelve hours, and never a negative time."""
    opened = host.clock.now()
    c = host.console
    assert (await c.say("Fran", "start check-in-30")).accepted
    hosted = host.runtime.circle_in("console", "room-1")
    assert hosted is not None
    host.clock.advance(3_600)
    await c.say("Ada", "join")
    await c.say("Ada", "consent")
    host.clock.advance(IDLE_CLOSE_AFTER)
    await host.runtime.settle()
    assert host.runtime.circle_in("console", "room-1") is None
    [row] = host.store.attendance_of(hosted.id)
    assert row["joined_at"] == row["left_at"] == opened + 3_600


async def test_start_just_after_the_close_falls_due_closes_the_old_one_first(host: Host) -> None:
    """The timer has not fired yet when Fran types start: time comes first, as for any command."""
    opened = host.clock.now()
    old = await gathering(host)
    host.clock.set(opened + IDLE_CLOSE_AFTER)  # due, but the scheduler has not run
    said = len(host.said())
    assert (await host.console.say("Fran", "start check-in-30")).accepted
    new = host.said()[said:]
    assert new[0].startswith(CLOSED_GATHERING) and any("Check-in circle" in line for line in new[1:])
    hosted = host.runtime.circle_in("console", "room-1")
    assert hosted is not None and hosted.id != old


async def test_someone_who_left_during_the_pause_is_not_credited_with_the_idle_hours(host: Host) -> None:
    """The circle is closed as of its pause: Bea, who gave up and left eleven hours later, has
    her attendance end at the pause too, like everyone else's, not eleven hours on."""
    hosted = await in_the_check_in_round(host)
    assert (await host.console.say("Fran", "pause")).accepted
    paused = host.clock.now()
    host.clock.advance(11 * 3600)
    await host.console.say("Bea", "leave")
    host.clock.advance(IDLE_CLOSE_AFTER)
    await host.runtime.settle()
    rows = host.store.attendance_of(hosted.id)
    assert [(r["display_name"], r["left_at"]) for r in rows] == [("Ada", paused), ("Bea", paused)]


async def test_no_one_without_the_right_to_steer_starts_a_circle_as_the_old_one_closes(host: Host) -> None:
    """start is a steering command: refused to someone the room does not let steer, also in the
    moment an idle circle's close is due (the old one would have been closed to make room)."""
    from facilitator.front import handle_command

    opened = host.clock.now()
    await gathering(host)
    host.clock.set(opened + IDLE_CLOSE_AFTER)
    outcome = await handle_command(
        host.runtime, "console", "room-1", "console:mallory", "Mallory", "start check-in-30", may_steer=False
    )
    assert not outcome.accepted
    hosted = host.runtime.circle_in("console", "room-1")
    assert hosted is None or "console:mallory" not in hosted.circle.state.facilitators
