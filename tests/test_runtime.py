"""The runtime hosting circles over a real SQLite file, driven through the console adapter."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.exc import DBAPIError

from facilitator.storage.migrate import HEAD
from facilitator.storage.tables import consent_table
from tests.conftest import Host, in_the_check_in_round


async def run_whole_circle(host: Host, room_people: list[str]) -> str:
    c = host.console
    assert (await c.say("Fran", "start check-in-30")).accepted
    for name in room_people:
        await c.say(name, "join")
        await c.say(name, "consent")
    await c.say("Fran", "begin")
    hosted = host.runtime.circle_in("console", "room-1")
    assert hosted is not None
    circle_id = hosted.id
    for _ in range(200):
        if host.runtime.circle_in("console", "room-1") is None:
            break
        holder = hosted.circle.holder
        if holder == "console:bea":
            await c.say("Bea", "pass")
        elif holder is not None:
            host.clock.advance(30)
            await c.say(holder.split(":")[1], "done")
        else:
            deadline = host.runtime.next_deadline()
            assert deadline is not None
            host.clock.set(deadline)
            await host.runtime.settle()
    return circle_id


async def test_a_whole_circle_is_kept_as_attendance_and_consent(host: Host) -> None:
    circle_id = await run_whole_circle(host, ["Ada", "Bea", "Cy"])
    assert host.runtime.circle_in("console", "room-1") is None
    said = host.said()
    assert said[-1].startswith('The circle for "Check-in circle (30 minutes)" has ended')
    rows = host.store.attendance_of(circle_id)
    assert [r["display_name"] for r in rows] == ["Ada", "Bea", "Cy"]
    # two rounds (check-in and check-out): Bea passed twice, the others spoke twice
    assert [(r["turns_spoken"], r["turns_passed"]) for r in rows] == [(2, 0), (0, 2), (2, 0)]
    assert all(r["left_at"] is not None and r["left_at"] > r["joined_at"] for r in rows)
    ledger = host.store.consent_log(circle_id)
    assert [(e["display_name"], e["decision"], e["scope"]) for e in ledger] == [
        (name, "given", scope) for name in ("Ada", "Bea", "Cy") for scope in ("agreement", "attendance")
    ]
    hosted_script = host.runtime.library.get("check-in-30").script
    hashes = {e["scope"]: e["text_hash"] for e in ledger}
    assert hashes == {"agreement": hosted_script.agreement_hash, "attendance": hosted_script.consent.text_hash}
    assert {e["lawful_basis"] for e in ledger} == {"consent"}
    row = host.store.circle_row(circle_id)
    assert row is not None and row["status"] == "ended" and row["seat_salt"] is None
    assert "Ada" not in row["state_json"]  # an ended circle keeps no people in its state
    assert host.store.audit_of(circle_id) == [("open", ""), ("begin", "")]


async def test_no_message_content_or_names_of_anonymous_people_are_stored(host: Host, db_url: str) -> None:
    c = host.console
    await c.say("Fran", "start check-in-30")
    await c.say("Ada", "join")
    await c.say("Ada", "consent")
    await c.say("Zed Secretname", "join anonymous")
    await c.say("Zed Secretname", "consent")
    await c.say("Fran", "begin")
    await c.say("Ada", "this is something private I said in the circle")
    hosted = host.runtime.circle_in("console", "room-1")
    assert hosted is not None
    await c.say("Fran", "end")
    await host.runtime.settle()
    path = db_url.removeprefix("sqlite:///")
    raw = b""
    for suffix in ("", "-wal"):
        try:
            with open(path + suffix, "rb") as handle:
                raw += handle.read()
        except FileNotFoundError:
            pass
    assert b"something private" not in raw
    assert b"Secretname" not in raw and b"zed secretname" not in raw
    rows = host.store.attendance_of(hosted.id)
    assert [(r["display_name"], r["anonymous"]) for r in rows] == [("Ada", False), (None, True)]


async def test_the_consent_ledger_cannot_be_changed(host: Host) -> None:
    c = host.console
    await c.say("Fran", "start check-in-30")
    await c.say("Ada", "join")
    await c.say("Ada", "consent")
    with pytest.raises(DBAPIError, match="append-only"), host.store.engine.begin() as conn:
        conn.execute(consent_table.update().values(decision="withdrawn"))
    with pytest.raises(DBAPIError, match="append-only"), host.store.engine.begin() as conn:
        conn.execute(consent_table.delete())
    assert [e["decision"] for e in host.store.consent_log()] == ["given", "given"]


async def test_a_group_does_not_get_the_same_prompt_twice_in_a_row(host: Host) -> None:
    """A prompt counts as used once its phase starts (a circle ended before then has not used it)."""
    prompts: list[str] = []
    for _ in range(3):
        await host.console.say("Fran", "start check-in-30")
        hosted = host.runtime.circle_in("console", "room-1")
        assert hosted is not None
        prompts.append(hosted.circle.state.prompts[2].text)  # the check-in round
        await host.console.say("Fran", "begin")
        host.clock.advance(120)  # the check-in round starts: its prompt is put to the group
        await host.runtime.settle()
        await host.console.say("Fran", "end")
        await host.runtime.settle()
    assert len(set(prompts)) == 3


async def test_many_circles_in_one_process_are_routed_to_their_rooms(host: Host) -> None:
    rt, console = host.runtime, host.console
    for room in ("east", "west"):
        console.room = room
        await console.say("Fran", "start check-in-30")
        await console.say(f"Ada-{room}", "join")
        await console.say(f"Ada-{room}", "consent")
        await console.say("Fran", "begin")
    host.clock.advance(120)
    await rt.settle()
    east, west = rt.circle_in("console", "east"), rt.circle_in("console", "west")
    assert east is not None and west is not None and east.id != west.id
    assert east.circle.holder == "console:ada-east"
    assert west.circle.holder == "console:ada-west"
    console.room = "east"
    await console.say("Ada-east", "done")
    assert west.circle.holder == "console:ada-west"  # the other circle is untouched


async def test_refusals_and_unknown_commands_are_answered_privately(host: Host) -> None:
    c = host.console
    await c.say("Ada", "pass")
    await c.say("Fran", "start check-in-30")
    await c.say("Ada", "begin")
    await c.say("Ada", "dance wildly")
    await c.say("Fran", "start no-such-script")
    private = [(line.to, line.plain()) for line in c.transcript if line.to]
    assert private[0] == ("console:ada", "There is no open circle here yet. A facilitator can start one.")
    assert private[1][1].startswith("Only a facilitator")
    assert private[2][1].startswith("I did not understand that (there is no command 'dance')")
    assert "pass" in private[2][1] and "begin" not in private[2][1]
    assert private[3][1] == "This circle is already open."


def test_sqlite_is_in_wal_mode_with_foreign_keys(db_url: str) -> None:
    from facilitator.storage.store import Store

    store = Store(db_url)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    store.close()
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as raw:
        version = raw.execute("SELECT version_num FROM alembic_version").fetchone()
    assert version == (HEAD,)


async def test_when_the_database_fails_nothing_is_said_and_nothing_changes(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = host.console
    await in_the_check_in_round(host)
    said_before = len(c.transcript)

    real_apply = host.store.apply

    def failing_apply(writes: object, sent: object = ()) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(host.store, "apply", failing_apply)
    outcome = await c.say("Ada", "done")
    assert not outcome.accepted
    new_lines = c.transcript[said_before:]
    assert [(line.to, line.plain()) for line in new_lines] == [
        ("console:ada", "Sorry: that could not be saved just now, so nothing changed. Please try again in a moment.")
    ]
    after = host.runtime.circle_in("console", "room-1")
    assert after is not None and after.circle.holder == "console:ada"  # the piece did not move

    monkeypatch.setattr(host.store, "apply", real_apply)
    assert (await c.say("Ada", "done")).accepted  # once the database is back, it works
    current = host.runtime.circle_in("console", "room-1")
    assert current is not None and current.circle.holder == "console:bea"


async def test_an_event_just_after_a_deadline_meets_the_circle_as_it_is_now(host: Host) -> None:
    """The turn ran out a moment ago and the timer has not fired yet: a pause freezes the next turn."""
    c = host.console
    hosted = await in_the_check_in_round(host)
    host.clock.advance(90 + 10)  # Ada's 90 s ran out 10 s ago; no settle: the timer has not fired
    await c.say("Fran", "pause")
    said = host.said()
    assert said[-3:] == [
        "Thank you: that is the time for this turn.",
        "@Bea, the talking piece is with you (1m 30s). Say done when you have finished, or pass: both are fine.",
        "We pause here. The time is held (1m 20s left when we resume). (A circle paused for 12h closes itself.)",
    ]
    assert hosted.circle.holder == "console:bea"


async def test_the_timer_heap_stays_near_one_entry_per_circle(host: Host) -> None:
    """Every event re-arms a deadline; superseded ones must not pile up in a long-running host."""
    hosted = await in_the_check_in_round(host, ("Ada", "Bea"))
    for _ in range(1500):
        await host.console.say("Fran", "extend 1")
    assert hosted.circle.holder == "console:ada"
    assert len(host.runtime._heap) <= 2 * len(host.runtime.circles) + 1024
    # and the one that matters is still there: Ada's turn ends when it should
    deadline = host.runtime.next_deadline()
    assert deadline == hosted.circle.next_deadline
