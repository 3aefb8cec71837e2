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
    assert sorted(e["display_name"] for e in ledger) == ["Ada", "Bea", "Cy"]
    assert {e["via"] for e in ledger} == {"matrix"}
    in_room = [n.body for n in fran.notices if n.room_id == room]
    assert not any("exactly what this circle keeps" in body for body in in_room)  # consent text stayed private
