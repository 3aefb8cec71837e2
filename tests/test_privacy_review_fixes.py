"""Fixes from a privacy review: an anonymous attendee is never identified in the room, cannot
steer, and a co-facilitator can be forgotten; every refusal speaks truly to whom it is said."""

from __future__ import annotations

import json

from adapters.console import member_id
from facilitator.engine import actions as A
from facilitator.engine import events as E
from facilitator.engine.circle import Circle
from facilitator.runtime.clock import ManualClock
from facilitator.voice import Line, Voice
from tests.conftest import Host, make_host
from tests.discord_people import Guild, guild
from tests.engine_helpers import ANA, FAC, gathered, make_script, round_phase
from tests.test_resume import crash

__all__ = ["guild"]

ADA = member_id("Ada")
ANONYMOUSLY = "someone who is attending anonymously"


def room_lines(host: Host, after: int = 0) -> list[Line]:
    return [line for line in host.console.transcript[after:] if line.to is None]


def private_to(host: Host, name: str, after: int = 0) -> list[str]:
    return [line.plain() for line in host.console.transcript[after:] if line.to == member_id(name)]


async def ada_anonymous_holds_the_piece(host: Host) -> None:
    """Ada joins anonymously and Bea by name; the check-in round begins with Ada holding the piece."""
    c = host.console
    await c.say("Fran", "start check-in-30")
    await c.say("Ada", "join anonymous")
    await c.say("Ada", "consent")
    await c.say("Bea", "join")
    await c.say("Bea", "consent")
    await c.say("Fran", "begin")
    host.clock.advance(120)  # the welcome and the agreement
    await host.runtime.settle()
    hosted = host.runtime.circle_in("console", "room-1")
    assert hosted is not None and hosted.circle.holder == ADA


# ------------------------------------------------------------------ 1. the anonymous holder


async def test_an_anonymous_holder_is_told_privately_and_the_room_hears_no_one(host: Host) -> None:
    await ada_anonymous_holds_the_piece(host)
    given = [line for line in room_lines(host) if "talking piece is" in line.text]
    assert len(given) == 1
    assert ANONYMOUSLY in given[0].plain()
    assert given[0].mention is None and given[0].mention_name is None  # no ping, no link, no name
    mine = [line for line in host.console.transcript if line.to == ADA]
    assert "The talking piece is with you now (1m 30s)" in mine[-1].plain()
    assert mine[-1].offer == ("done", "pass")  # her shortcuts come with her private line

    mark = len(host.console.transcript)
    host.clock.advance(70)  # 20 s before her turn ends: the gentle note
    await host.runtime.settle()
    nudges = [line for line in room_lines(host, mark) if "gentle note" in line.text]
    assert [(line.plain(), line.mention) for line in nudges] == [("A gentle note: about 20s left of this turn.", None)]
    assert "about 20s left of your turn" in private_to(host, "Ada", mark)[-1]

    await host.console.say("Ada", "done")  # Bea attends by name: she is mentioned as before
    bea = [line for line in room_lines(host, mark) if "talking piece is with you" in line.text]
    assert [line.mention for line in bea] == [member_id("Bea")]
    assert all(line.mention != ADA for line in host.console.transcript)


async def test_we_are_back_names_no_anonymous_holder_and_tells_her_privately(db_url: str, clock: ManualClock) -> None:
    first = await make_host(db_url, clock)
    await ada_anonymous_holds_the_piece(first)
    await crash(first)
    clock.advance(5)
    second = await make_host(db_url, clock)
    try:
        back = [line for line in room_lines(second) if line.text.startswith("We are back")]
        assert len(back) == 1 and back[0].mention is None
        assert "someone attending anonymously holds the piece" in back[0].plain()
        mine = [line for line in second.console.transcript if line.to == ADA]
        assert "the talking piece is still with you, 1m 25s left" in mine[-1].plain()
        assert mine[-1].offer == ("done", "pass")
    finally:
        await second.runtime.stop()
        second.store.close()


def test_a_restored_circle_still_knows_its_holder_attends_anonymously() -> None:
    run = gathered(make_script(round_phase("60s", remind_before=["20s"]), allow_anonymous=True), people=())
    run.join(ANA, 1.0, anonymous=True)
    given = run.ok(E.Begin(FAC), 10.0).actions
    assert [a.anonymous for a in given if isinstance(a, A.GivePiece)] == [True]
    restored = Circle.restore(run.script, json.loads(json.dumps(run.circle.snapshot())))
    nudge = restored.handle(E.Tick(), 50.0).actions
    assert [(a.member, a.anonymous) for a in nudge if isinstance(a, A.Nudge)] == [(ANA, True)]
    back = restored.handle(E.Recover(3.0), 51.0).actions
    assert [(a.holder, a.holder_anonymous) for a in back if isinstance(a, A.Back)] == [(ANA, True)]


def test_a_role_is_not_given_to_an_anonymous_attendee_and_the_refusal_says_why() -> None:
    run = gathered(make_script(round_phase(), allow_anonymous=True), people=())
    run.join(ANA, 1.0, anonymous=True)
    refused = run.refused(E.AssignRole(FAC, ANA, "presenter"), 2.0, "anonymous_role", role="presenter")
    (line,) = Voice.load().render(refused)
    assert line.to == FAC and line.mention is None
    assert "cannot hold the presenter role: the role is said in the room" in line.text


async def test_discord_an_anonymous_holder_gets_working_done_and_pass_buttons_in_a_direct_message(
    guild: Guild,
) -> None:
    g = guild
    await (await g.slash(g.fran, "start", script="check-in-30")).response()
    await (await g.slash(g.ada, "join", anonymous=True)).response()
    await (await g.slash(g.ada, "consent")).response()
    await (await g.slash(g.bea, "join")).response()
    await (await g.slash(g.bea, "consent")).response()
    await (await g.slash(g.fran, "begin")).response()
    await g.settle_time(120)
    given = await g.posted("talking piece is with someone who is attending anonymously")
    assert not given.pings.users and str(g.ada.user.id) not in given.content
    private = await g.fake.wait_until(
        lambda: next((m for m in g.fake.dms(g.ada) if "talking piece is with you now" in m.content), None),
        what="the piece, told to Ada privately",
    )
    channel = g.channel.id
    assert private.custom_ids() == [f"circle:done:{channel}", f"circle:pass:{channel}"]
    await (await g.fake.click(g.ada, private, f"circle:done:{channel}")).response()
    hosted = g.hosted()
    assert hosted is not None and hosted.circle.holder == f"discord:{g.bea.user.id}"
    for message in g.fake.messages(g.channel, ephemeral=False):
        assert g.ada.user.id not in message.pings.users, message.content


# ------------------------------------------------------------------ 2. anonymous attendees do not steer


async def test_someone_who_attended_anonymously_and_left_cannot_step_in(host: Host) -> None:
    c = host.console
    await c.say("Fran", "start check-in-30")
    await c.say("Anna", "join anonymous")
    await c.say("Anna", "consent")
    await c.say("Anna", "leave")
    outcome = await c.say("Anna", "step in")
    assert not outcome.accepted
    assert "cannot step in to facilitate it" in private_to(host, "Anna")[-1]
    assert not [line for line in room_lines(host) if "stepped in" in line.text]
    hosted = host.runtime.circle_in("console", "room-1")
    assert hosted is not None and hosted.circle.state.facilitators == [member_id("Fran")]


async def test_a_facilitator_cannot_join_anonymously(host: Host) -> None:
    c = host.console
    await c.say("Fran", "start check-in-30")
    assert not (await c.say("Fran", "join anonymous")).accepted
    assert "You facilitate this circle, so you cannot also join it anonymously" in private_to(host, "Fran")[-1]
    await c.say("Mo", "step in")
    assert not (await c.say("Mo", "join anonymous")).accepted
    assert "cannot also join it anonymously" in private_to(host, "Mo")[-1]
    assert (await c.say("Mo", "join")).accepted  # by name, as ever


# ------------------------------------------------------------------ 3. forget me, for a co-facilitator


async def test_a_co_facilitator_can_be_forgotten_while_another_facilitator_remains(host: Host) -> None:
    c = host.console
    await c.say("Fran", "start check-in-30")
    for name in ("Ada", "Bea"):
        await c.say(name, "join")
        await c.say(name, "consent")
    assert (await c.say("Fran", "cofacilitator Ada")).accepted
    await c.say("Fran", "begin")
    outcome = await c.say("Ada", "forget me")
    assert outcome.accepted
    assert private_to(host, "Ada")[-1].startswith("Done: your name and platform id are erased")
    hosted = host.runtime.circle_in("console", "room-1")
    assert hosted is not None
    assert hosted.circle.state.facilitators == [member_id("Fran")]
    assert ADA not in hosted.circle.state.participants
    # Fran is the last facilitator now: she is asked to close it or share it first.
    assert not (await c.say("Fran", "forget me")).accepted
    assert "no one else facilitates it" in private_to(host, "Fran")[-1]


async def test_after_someone_steps_in_the_first_facilitator_can_be_forgotten(host: Host) -> None:
    c = host.console
    await c.say("Fran", "start check-in-30")
    await c.say("Mo", "step in")
    assert (await c.say("Fran", "forget me")).accepted
    hosted = host.runtime.circle_in("console", "room-1")
    assert hosted is not None and hosted.circle.state.facilitators == [member_id("Mo")]
    assert (await c.say("Mo", "end")).accepted  # the circle is still steered


# ------------------------------------------------------------------ 4. leave before consenting


async def test_leave_before_consenting_is_answered_and_lets_them_go(host: Host) -> None:
    c = host.console
    await c.say("Fran", "start check-in-30")
    await c.say("Ada", "join")
    mark = len(c.transcript)
    assert (await c.say("Ada", "leave")).accepted
    assert private_to(host, "Ada", mark) == [
        "You had not joined yet, so nothing about you was recorded, and the circle has let go of your name. "
        "You are welcome to join whenever you like."
    ]
    assert room_lines(host, mark) == []  # nobody had been counted in, so the room hears nothing
    hosted = host.runtime.circle_in("console", "room-1")
    assert hosted is not None and ADA not in hosted.circle.state.participants
    assert not (await c.say("Ada", "consent")).accepted  # no longer waiting for her answer


# ------------------------------------------------------------------ 5. refusals about oneself


async def test_refusals_about_the_sender_speak_to_them(host: Host) -> None:
    c = host.console
    await ada_anonymous_holds_the_piece(host)
    await c.say("Cy", "pass")
    assert (
        private_to(host, "Cy")[-1]
        == "You are not in this circle right now. If you would like to take part, join (type: join)."
    )
    await c.say("Bea", "leave")
    await c.say("Bea", "leave")
    assert private_to(host, "Bea")[-1].startswith("You are not in this circle right now.")
    await c.say("Fran", "cofacilitator Fran")
    assert private_to(host, "Fran")[-1] == "You already facilitate this circle."
    await c.say("Fran", "cofacilitator Zed")  # someone else: said of them
    assert private_to(host, "Fran")[-1] == "That person is not in the circle right now."


async def test_status_tells_the_holder_the_piece_is_with_them(host: Host) -> None:
    """Someone who missed their private line (Discord direct messages closed) can ask: status
    says the piece is with *them*, and to anyone else who holds it, without naming them."""
    await ada_anonymous_holds_the_piece(host)
    await host.console.say("Ada", "status")
    assert "the talking piece is with you" in private_to(host, "Ada")[-1]
    await host.console.say("Bea", "status")
    told = private_to(host, "Bea")[-1]
    assert "with you" not in told and "Ada" not in told
