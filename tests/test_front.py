"""Typed commands as every text platform hands them over: who may do what, help that lists
exactly that, stepping in when a facilitator has gone, and one-to-one rooms with the bot."""

from __future__ import annotations

from adapters.console import member_id
from facilitator.front import handle_command
from facilitator.voice import Line
from tests.conftest import Host, in_the_check_in_round

MO = member_id("Mo")


def private_to(host: Host, name: str) -> list[Line]:
    return [line for line in host.console.transcript if line.to == member_id(name)]


async def typed(
    host: Host, name: str, text: str, *, may_steer: bool = True, direct: bool = False, room: str = "room-1"
) -> None:
    await handle_command(host.runtime, "console", room, member_id(name), name, text, may_steer=may_steer, direct=direct)


async def test_help_lists_what_the_sender_may_do(host: Host) -> None:
    await in_the_check_in_round(host)
    await typed(host, "Fran", "help")
    fran = private_to(host, "Fran")[-1].plain()
    assert "end" in fran and "step in" not in fran  # she facilitates: no need to step in
    await typed(host, "Mo", "help")  # a moderator of the room, not a facilitator of this circle
    mo = private_to(host, "Mo")[-1].plain()
    assert "step in" in mo and "end," not in mo and "begin" not in mo
    await typed(host, "Ada", "help", may_steer=False)
    ada = private_to(host, "Ada")[-1].plain()
    assert "step in" not in ada and "pass" in ada and "begin" not in ada


async def test_a_moderator_steps_in_and_ends_a_circle_whose_facilitator_has_gone(host: Host) -> None:
    hosted = await in_the_check_in_round(host)
    await typed(host, "Mo", "end")
    assert "Only a facilitator" in private_to(host, "Mo")[-1].plain()
    await typed(host, "Ada", "step in", may_steer=False)  # no permission in the room: refused
    assert "Stepping in to facilitate needs this room's permission" in private_to(host, "Ada")[-1].plain()
    assert member_id("Ada") not in hosted.circle.state.facilitators
    await typed(host, "Mo", "step in")
    assert any("Mo has stepped in to facilitate" in line for line in host.said())
    await typed(host, "Mo", "step in")
    assert "You already facilitate" in private_to(host, "Mo")[-1].plain()
    await typed(host, "Mo", "end")
    assert host.runtime.circle_in("console", "room-1") is None
    assert any("closed" in line and "early" in line for line in host.said())


async def test_a_one_to_one_room_answers_help_and_points_back_to_the_circle(host: Host) -> None:
    await typed(host, "Ada", "start check-in-30", direct=True, room="dm-ada")
    assert host.runtime.circle_in("console", "dm-ada") is None  # no circle opens in a direct room
    said = private_to(host, "Ada")[-1].plain()
    assert "type that in the circle's room" in said and "help" in said
    await typed(host, "Ada", "scripts", direct=True, room="dm-ada")
    assert "check-in-30" in private_to(host, "Ada")[-1].plain()
    await typed(host, "Ada", "frobnicate", direct=True, room="dm-ada")
    assert "there is no command 'frobnicate'" in private_to(host, "Ada")[-1].plain()
    assert all(line.to is not None for line in host.console.transcript)  # nothing said to a room


async def test_words_people_type_that_used_to_be_misread(host: Host) -> None:
    """extend with a large number is told the range (not "I did not understand"); forget-me is forget me."""
    await in_the_check_in_round(host)
    await host.console.say("Fran", "extend 1000")
    told = [line.plain() for line in host.console.transcript if line.to == member_id("Fran")][-1]
    assert "from 1 to 120" in told and "did not understand" not in told
    await host.console.say("Cy", "forget-me")
    told = [line.plain() for line in host.console.transcript if line.to == member_id("Cy")][-1]
    assert told.startswith("Nothing is kept about you here")  # not "there is no command"


async def test_a_script_name_is_found_whatever_its_case_or_ending_and_a_near_miss_is_named(host: Host) -> None:
    for typed in ("start Check-In-30", "start check-in-30.yaml"):
        assert (await host.console.say("Fran", typed)).accepted, typed
        assert (await host.console.say("Fran", "end")).accepted
    await host.console.say("Fran", "start check-in-3")
    told = [line.plain() for line in host.console.transcript if line.to == member_id("Fran")][-1]
    assert told.startswith("That script cannot be used: no script called 'check-in-3'; did you mean 'check-in-30'?")


async def test_the_holder_may_say_done_or_pass_in_their_direct_room(host: Host) -> None:
    """Someone attending anonymously need not speak in the room to finish their turn: done and
    pass from their direct room with the bot reach the one circle where they hold the piece."""
    hosted = await in_the_check_in_round(host)  # Ada holds the piece
    runtime = host.runtime
    said = await handle_command(
        runtime, "console", "dm-ada", member_id("Ada"), "Ada", "done", resolve=member_id, direct=True
    )
    assert said.accepted and hosted.circle.holder == member_id("Bea")
    # Not the holder: the direct room's usual answer, and nothing moves.
    await handle_command(runtime, "console", "dm-ada", member_id("Ada"), "Ada", "pass", resolve=member_id, direct=True)
    assert hosted.circle.holder == member_id("Bea")
    told = [line.plain() for line in host.console.transcript if line.to == member_id("Ada")][-1]
    assert told.startswith("Circles meet in their own rooms")
    await handle_command(runtime, "console", "dm-bea", member_id("Bea"), "Bea", "pass", resolve=member_id, direct=True)
    assert hosted.circle.holder != member_id("Bea")
