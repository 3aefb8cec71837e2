"""Whole circles in real Matrix rooms (plain and encrypted), on a real Synapse, with real clients.

Fran facilitates (room creator, power level 100); Ada, Bea and Cy take part (power level 0).
The bot runs in this process on a manual clock, so the phases' time passes when the test
says; everything else (sync, encryption, direct rooms) is real.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import nio
import pytest

from adapters.matrix.content import member_id
from facilitator.config import GroupConfig
from facilitator.runtime.clock import ManualClock
from facilitator.runtime.host import Hosted
from tests.matrix_people import BOT_ENV, Bot, Person, bot_config, everyone_sees, start_bot, unique
from tests.synapse_server import SynapseServer


@dataclass
class Circle:
    bot: Bot
    room: str
    fran: Person
    people: list[Person]
    clock: ManualClock

    def hosted(self) -> Hosted | None:
        return self.bot.runtime.circle_in("matrix", self.room)

    async def settle_time(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await self.bot.runtime.settle()


@pytest.fixture
async def matrix_room(
    request: pytest.FixtureRequest,
    synapse: SynapseServer,
    tmp_path: Path,
    clock: ManualClock,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Circle]:
    for name, value in BOT_ENV.items():
        monkeypatch.setenv(name, value)
    encrypted = bool(getattr(request, "param", False))
    config = bot_config(synapse, tmp_path / "bot")
    fran = await Person(synapse, unique("fran"), tmp_path / "fran").start("Fran")
    people = [await Person(synapse, unique(n.lower()), tmp_path / n).start(n) for n in ("Ada", "Bea", "Cy")]
    room = await fran.create_room(encrypted=encrypted, invite=[config.user_id] + [p.user_id for p in people])
    group = GroupConfig(name="North West check-ins", region="North West", sector="health", matrix_rooms=(room,))
    bot = await start_bot(config, db_url, clock, (group,))
    for person in people:
        await person.join(room)
    await everyone_sees([fran, *people], room, 5, config.user_id)
    circle = Circle(bot, room, fran, people, clock)
    try:
        yield circle
    finally:
        await bot.stop()
        await asyncio.gather(*(p.stop() for p in [fran, *people]))


@pytest.mark.parametrize("matrix_room", [False, True], ids=["plain-room", "encrypted-room"], indirect=True)
async def test_a_whole_circle_in_a_matrix_room(matrix_room: Circle) -> None:
    c = matrix_room
    fran, (ada, bea, cy), room = c.fran, c.people, c.room
    await fran.say(room, "!circle start check-in-30")
    await fran.expect("Check-in circle", room_id=room)
    for person in (ada, bea, cy):
        await person.say(room, "!circle join")
        asked = await person.expect("exactly what this circle keeps")
        assert asked.room_id != room  # the consent text comes privately, in a direct room
        await person.say(room, "!circle consent")
        await person.expect("recorded", after=len(person.notices) - 1)
    hosted = c.hosted()
    assert hosted is not None
    assert set(hosted.circle.state.participants) == {member_id(p.user_id) for p in (ada, bea, cy)}

    await fran.say(room, "!circle begin")
    await fran.until(lambda: hosted.circle.status.value == "running")
    await c.settle_time(120)  # the welcome and the agreement
    assert hosted.circle.holder == member_id(ada.user_id)
    given = await ada.expect("Ada", room_id=room)  # the piece: a real mention of Ada
    assert given.content["m.mentions"] == {"user_ids": [ada.user_id]}
    assert ada.user_id in given.content["formatted_body"]

    await ada.say(room, "!circle done")
    await bea.until(lambda: hosted.circle.holder == member_id(bea.user_id))
    await bea.say(room, "!circle pass")
    await cy.until(lambda: hosted.circle.holder == member_id(cy.user_id))
    await cy.say(room, "!circle done")
    await fran.until(lambda: hosted.circle.state.phase == 3)  # the open reflection
    for _ in range(20):  # open phase, silence, the check-out round timing out, the close
        await c.settle_time(60)
        if c.hosted() is None:
            break
    assert c.hosted() is None  # ended
    await fran.expect("Thank you", room_id=room)

    rows = c.bot.store.attendance_of(hosted.id)
    # Check-in: Ada done, Bea passed, Cy done; check-out: each turn ran its time (a turn that runs
    # out counts as spoken, as in the engine's rules).
    assert sorted((r["display_name"], r["turns_spoken"], r["turns_passed"]) for r in rows) == [
        ("Ada", 2, 0),
        ("Bea", 1, 1),
        ("Cy", 2, 0),
    ]
    ledger = c.bot.store.consent_log(hosted.id)
    assert sorted((e["display_name"], e["scope"]) for e in ledger) == [
        (name, scope) for name in ("Ada", "Bea", "Cy") for scope in ("agreement", "attendance")
    ]
    assert {e["via"] for e in ledger} == {"matrix"}
    in_room = [n.body for n in fran.notices if n.room_id == room]
    assert not any("exactly what this circle keeps" in body for body in in_room)  # consent text stayed private


async def test_synapse_stopped_and_started_mid_circle_the_bot_reconnects_and_carries_on(
    matrix_room: Circle, synapse: SynapseServer
) -> None:
    c = matrix_room
    fran, (ada, bea, _), room = c.fran, c.people, c.room
    await fran.say(room, "!circle start check-in-30")
    await fran.expect("Check-in circle", room_id=room)
    await ada.say(room, "!circle join")
    await ada.expect("exactly what this circle keeps")
    syncs = c.bot.adapter.syncs
    synapse.restart()  # the bot's long poll breaks; it backs off and syncs again
    await bea.say(room, "!circle join")
    await bea.expect("exactly what this circle keeps")
    hosted = c.hosted()
    assert hosted is not None and set(hosted.circle.state.participants) == {
        member_id(ada.user_id),
        member_id(bea.user_id),
    }
    assert c.bot.adapter.syncs > syncs
    assert c.bot.adapter.failed is not None and not c.bot.adapter.failed.done()


async def test_bad_input_is_answered_and_harms_nothing(matrix_room: Circle, synapse: SynapseServer) -> None:
    c = matrix_room
    fran, (ada, bea, _), room = c.fran, c.people, c.room
    await ada.say(room, "!circle frobnicate")  # unknown: help, privately
    helped = await ada.expect("I did not understand")
    assert helped.room_id != room and "!circle join" in helped.body
    await ada.say(room, "!circle start check-in-30")  # power level 0: may not start
    refused = await ada.expect("Starting a circle in this room needs a power level of 50 or more")
    assert refused.room_id != room and c.hosted() is None

    await fran.say(room, "!circle start check-in-30")
    await fran.expect("Check-in circle", room_id=room)
    hostile = '<b>@room</b> <img src=x onerror=alert(1)> =HYPERLINK("x")'
    await bea.client.set_displayname(hostile)
    await bea.until(lambda: bea.client.rooms[room].users[bea.user_id].display_name == hostile)
    await c.bot.runtime.settle()
    await bea.say(room, "!circle join")
    await bea.expect("exactly what this circle keeps")
    await bea.say(room, "!circle consent")
    await bea.expect("recorded", after=len(bea.notices) - 1)
    await fran.say(room, "!circle begin")
    await fran.until(lambda: c.hosted() is not None and c.hosted().circle.status.value == "running")  # type: ignore[union-attr]
    await c.settle_time(120)
    given = await bea.expect("the talking piece is with you", room_id=room)
    assert given.content["m.mentions"] == {"user_ids": [bea.user_id]}  # only Bea, never the room
    assert "<b>" not in given.content["formatted_body"] and "<img" not in given.content["formatted_body"]
    assert "&lt;img" in given.content["formatted_body"]
    for notice in fran.notices:
        assert notice.content.get("m.mentions", {}).get("room") is not True

    long_command = "!circle " + "x" * 60_000  # near Synapse's 64 KiB event limit
    await ada.say(room, long_command)
    await ada.expect("I did not understand", after=len(ada.notices))
    assert c.bot.adapter.failed is not None and not c.bot.adapter.failed.done()


async def test_an_invite_from_someone_not_allowed_is_refused(
    synapse: SynapseServer, tmp_path: Path, clock: ManualClock, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in BOT_ENV.items():
        monkeypatch.setenv(name, value)
    coordinator = await Person(synapse, unique("coordinator"), tmp_path / "co").start("Coordinator")
    stranger = await Person(synapse, unique("stranger"), tmp_path / "st").start("Stranger")
    config = bot_config(synapse, tmp_path / "bot", allowed_inviters=(coordinator.user_id,))
    bot = await start_bot(config, db_url, clock)
    try:
        refused_room = await stranger.create_room(encrypted=False, invite=[config.user_id])
        welcome_room = await coordinator.create_room(encrypted=False, invite=[config.user_id])
        joined = coordinator.client.rooms[welcome_room]
        await coordinator.until(lambda: config.user_id in joined.users and config.user_id not in joined.invited_users)
        membership: list[str] = []

        async def bot_membership() -> None:
            got = await stranger.client.room_get_state_event(refused_room, "m.room.member", config.user_id)
            membership[:] = [str(getattr(got, "content", {}).get("membership"))]

        for _ in range(100):  # the bot answers the stranger's invite before the coordinator's, or just after
            await bot_membership()
            if membership == ["leave"]:
                break
            await asyncio.sleep(0.1)  # polling the server's answer, not waiting on a timer
        assert membership == ["leave"]  # the invite was rejected
        assert refused_room not in bot.adapter._client.rooms
    finally:
        await bot.stop()
        await asyncio.gather(coordinator.stop(), stranger.stop())


async def test_leaving_the_room_leaves_the_circle_and_a_moderator_steps_in_when_the_facilitator_goes(
    matrix_room: Circle,
) -> None:
    c = matrix_room
    fran, (ada, bea, cy), room = c.fran, c.people, c.room
    await fran.say(room, "!circle start check-in-30")
    await fran.expect("Check-in circle", room_id=room)
    direct = ""
    for person in (ada, bea, cy):
        await person.say(room, "!circle join")
        asked = await person.expect("exactly what this circle keeps")
        direct = direct or asked.room_id
        await person.say(room, "!circle consent")
        await person.expect("recorded", after=len(person.notices) - 1)
    hosted = c.hosted()
    assert hosted is not None

    # A command typed in the bot's direct room opens nothing there and points back to the circle.
    await ada.say(direct, "!circle start check-in-30")
    pointed = await ada.expect("type that in the circle's room", room_id=direct)
    assert "!circle help" in pointed.body
    assert c.bot.runtime.circle_in("matrix", direct) is None

    await fran.say(room, "!circle begin")
    await fran.until(lambda: hosted.circle.status.value == "running")
    await c.settle_time(120)
    assert hosted.circle.holder == member_id(ada.user_id)
    seen = len(bea.notices)
    left = await ada.client.room_leave(room)  # Ada closes the room mid-turn: she leaves the circle too
    assert isinstance(left, nio.RoomLeaveResponse), left
    await bea.expect("stepped out of the circle", room_id=room, after=seen)
    await bea.until(lambda: hosted.circle.holder == member_id(bea.user_id))
    assert hosted.circle.state.participants[member_id(ada.user_id)].state == "left"

    # Fran makes Bea a moderator, then her connection goes for good.
    levels = await fran.client.room_get_state_event(room, "m.room.power_levels")
    assert isinstance(levels, nio.RoomGetStateEventResponse), levels
    content = dict(levels.content)
    content["users"] = {**content.get("users", {}), bea.user_id: 50}
    put = await fran.client.room_put_state(room, "m.room.power_levels", content)
    assert isinstance(put, nio.RoomPutStateResponse), put
    await fran.client.room_leave(room)

    await cy.say(room, "!circle step in")  # power level 0: not for Cy
    refused = await cy.expect("Stepping in to facilitate needs a power level of 50 or more", after=len(cy.notices))
    assert refused.room_id != room and member_id(cy.user_id) not in hosted.circle.state.facilitators
    await bea.say(room, "!circle step in")
    stepped = await cy.expect("has stepped in to facilitate", room_id=room)
    assert stepped.content["m.mentions"] == {"user_ids": [bea.user_id]}
    await bea.say(room, "!circle end")
    await cy.expect("closed", room_id=room, after=len(cy.notices) - 1)
    assert c.hosted() is None
    assert [action for action, _ in c.bot.store.audit_of(hosted.id)][-2:] == ["stepin", "end"]


async def test_someone_who_left_their_direct_room_gets_private_lines_in_a_new_one(matrix_room: Circle) -> None:
    c = matrix_room
    fran, (ada, _, _), room = c.fran, c.people, c.room
    await fran.say(room, "!circle start check-in-30")
    await fran.expect("Check-in circle", room_id=room)
    await ada.say(room, "!circle join")
    first = (await ada.expect("exactly what this circle keeps")).room_id
    left = await ada.client.room_leave(first)
    assert isinstance(left, nio.RoomLeaveResponse), left
    bot = c.bot.adapter._client
    await ada.until(lambda: ada.user_id not in getattr(bot.rooms.get(first), "users", {}))
    seen = len(ada.notices)
    await ada.say(room, "!circle status")
    status = await ada.expect("Circle status", after=seen)
    assert status.room_id not in (first, room)  # a new direct room, never the circle's room
