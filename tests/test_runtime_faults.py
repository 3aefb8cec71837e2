"""When things go wrong underneath a circle: failing storage, two starts at once, a second process."""

from __future__ import annotations

import asyncio
import threading

import pytest

from facilitator.runtime.dblock import DatabaseInUse
from facilitator.runtime.host import Runtime
from facilitator.storage.store import Store
from tests.conftest import Host, in_the_check_in_round


async def test_events_built_on_a_failed_write_are_rolled_back_too(host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ada's done fails slowly while Bea passes on top of it: both are undone, both are told, the room hears nothing."""
    await in_the_check_in_round(host, ("Ada", "Bea", "Cy"))
    c = host.console
    gate = threading.Event()
    real_apply = host.store.apply

    def slow_failure(writes: object, sent: object = ()) -> None:
        gate.wait(5)
        raise OSError("disk full")

    monkeypatch.setattr(host.store, "apply", slow_failure)
    said_before = len(c.transcript)
    ada = asyncio.create_task(c.say("Ada", "done"))
    for _ in range(20):  # let Ada's write reach the database thread
        await asyncio.sleep(0)
    bea = asyncio.create_task(c.say("Bea", "pass"))  # Bea holds the piece in memory, on top of Ada's done
    for _ in range(5):
        await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(ada, bea)
    assert [r.accepted for r in results] == [False, False]
    new = [(line.to, line.plain()) for line in c.transcript[said_before:]]
    assert all(to is not None for to, _ in new), new  # nothing said to the room
    assert {to for to, _ in new} == {"console:ada", "console:bea"}
    hosted = host.runtime.circle_in("console", "room-1")
    assert hosted is not None and hosted.circle.holder == "console:ada"

    monkeypatch.setattr(host.store, "apply", real_apply)
    assert (await c.say("Ada", "done")).accepted
    assert (await c.say("Bea", "pass")).accepted
    rows = host.store.attendance_of(hosted.id)
    assert [(r["turns_spoken"], r["turns_passed"]) for r in rows] == [(1, 0), (0, 1), (0, 0)]


async def test_a_failing_timer_backs_off_quietly_and_carries_on_when_storage_is_back(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    await in_the_check_in_round(host, ("Ada", "Bea", "Cy"))
    calls = 0
    real_apply = host.store.apply

    def failing(writes: object, sent: object = ()) -> None:
        nonlocal calls
        calls += 1
        raise OSError("database unreachable")

    monkeypatch.setattr(host.store, "apply", failing)
    said_before = len(host.console.transcript)
    host.clock.advance(95)  # Ada's turn runs out while storage is down
    await host.runtime.settle()  # returns: the failed tick is retried later, not at once
    assert host.console.transcript[said_before:] == []  # no "sorry" to the room, no stale announcements
    assert calls == 1
    host.clock.advance(0.5)
    await host.runtime.settle()
    assert calls == 1  # backing off
    monkeypatch.setattr(host.store, "apply", real_apply)
    host.clock.advance(1)
    await host.runtime.settle()
    hosted = host.runtime.circle_in("console", "room-1")
    assert hosted is not None and hosted.circle.holder == "console:bea"
    assert any("@Bea, the talking piece is with you" in line for line in host.said())


async def test_two_starts_at_once_open_one_circle(host: Host) -> None:
    results = await asyncio.gather(
        host.console.say("Fran", "start check-in-30"), host.console.say("Gus", "start check-in-30")
    )
    assert sorted(r.accepted for r in results) == [False, True]
    assert len(host.runtime.circles) == 1


async def test_a_second_process_over_the_same_database_is_refused(host: Host, db_url: str) -> None:
    other = Runtime(Store(db_url), clock=host.clock)
    with pytest.raises(DatabaseInUse, match="another facilitator process"):
        await other.start()
    other.store.close()


async def test_start_from_chat_never_reads_a_file_outside_the_library(host: Host, tmp_path: object) -> None:
    for attempt in ("/etc/passwd", "../../etc/hosts", "sessions/check-in-30.yaml", "../sessions/check-in-30"):
        outcome = await host.console.say("Fran", f"start {attempt}")
        assert not outcome.accepted
        line = host.console.transcript[-1].plain()
        assert line.startswith("That script cannot be used:") and "no script called" in line
    assert host.runtime.circles == []


async def test_an_anonymous_attendee_cannot_be_made_a_facilitator(host: Host) -> None:
    c = host.console
    await c.say("Fran", "start check-in-30")
    await c.say("Yan", "join anonymous")
    await c.say("Yan", "consent")
    outcome = await c.say("Fran", "cofacilitator Yan")
    assert not outcome.accepted
    assert "anonymously cannot also share the facilitation" in c.transcript[-1].plain()


async def test_coming_back_anonymously_is_asked_again_and_kept_anonymous(host: Host) -> None:
    c = host.console
    await c.say("Fran", "start check-in-30")
    await c.say("Ada", "join")
    await c.say("Ada", "consent")
    await c.say("Ada", "leave")
    await c.say("Ada", "join anonymous")
    assert "You asked to join anonymously" in c.transcript[-1].plain()  # asked again, not silently let in
    await c.say("Ada", "consent")
    hosted = host.runtime.circle_in("console", "room-1")
    assert hosted is not None
    rows = host.store.attendance_of(hosted.id)
    assert [(r["display_name"], r["anonymous"]) for r in rows] == [("Ada", False), (None, True)]
