"""What people can do about their records on Matrix, and a coordinator's export, on a real Synapse
with real clients: ``!circle mydata``, ``!circle export`` and ``!circle forget me``. The answer
and its file (an ``m.file``, encrypted where the direct room is) reach only the person who asked,
in their direct room with the bot: never the circle's room.

Fran facilitates; Ada and Bea take part; Cy coordinates the group (and never joins the circle).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import nio
import pytest
from sqlalchemy import select

from adapters.matrix.content import member_id
from facilitator.config import GroupConfig
from facilitator.runtime.clock import ManualClock
from facilitator.storage.tables import members_table
from tests.matrix_people import BOT_ENV, Bot, Notice, Person, bot_config, everyone_sees, start_bot, unique
from tests.synapse_server import SynapseServer

GROUP = "North West check-ins"


@dataclass
class Room:
    bot: Bot
    room: str
    fran: Person
    ada: Person
    bea: Person
    cy: Person
    clock: ManualClock
    db_url: str
    group: GroupConfig

    @property
    def everyone(self) -> list[Person]:
        return [self.fran, self.ada, self.bea, self.cy]

    async def a_circle(self) -> str:
        """Fran runs check-in-30 with Ada and Bea (both consent), and ends it once it has begun."""
        fran, room = self.fran, self.room
        await fran.say(room, "!circle start check-in-30")
        await fran.expect("Check-in circle", room_id=room)
        for person in (self.ada, self.bea):
            await person.say(room, "!circle join")
            await person.expect("exactly what this circle keeps")
            seen = len(person.notices)
            await person.say(room, "!circle consent")
            await person.expect("recorded", after=seen)
        hosted = self.bot.runtime.circle_in("matrix", room)
        assert hosted is not None
        await fran.say(room, "!circle begin")
        await fran.until(lambda: hosted.circle.status.value == "running")
        self.clock.advance(120)  # the welcome and the agreement
        await self.bot.runtime.settle()
        await fran.say(room, "!circle end")
        await fran.until(lambda: self.bot.runtime.circle_in("matrix", room) is None)
        return hosted.id

    async def restart(self) -> None:
        """Stop the bot and start it again (same account, device and database): what it only
        kept in memory is gone."""
        config = self.bot.adapter.config
        await self.bot.stop()
        self.bot = await start_bot(config, self.db_url, self.clock, (self.group,))

    def nothing_private_in_the_room(self) -> None:
        """No file in the circle's room, and none of the private answers, as anyone there saw it."""
        for person in self.everyone:
            assert not [f for f in person.files if f.room_id == self.room]
            said = " ".join(n.body for n in person.notices if n.room_id == self.room)
            for private in ("everything kept about you", "export", "erased", "Exports are for"):
                assert private not in said


async def _file(person: Person, name_start: str, *, outside: str) -> tuple[Notice, bytes]:
    """The first file ``person`` received whose name starts with ``name_start`` (not in room ``outside``)."""
    await person.until(lambda: any(f.body.startswith(name_start) for f in person.files))
    file = next(f for f in person.files if f.body.startswith(name_start))
    assert file.room_id != outside
    return file, await person.download(file)


@pytest.fixture
async def matrix_group(
    request: pytest.FixtureRequest,
    synapse: SynapseServer,
    tmp_path: Path,
    clock: ManualClock,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Room]:
    """A room with the bot, Fran, Ada, Bea and Cy; Cy coordinates its group. Encrypted (room and
    direct rooms) if the test's parameter says so."""
    for name, value in BOT_ENV.items():
        monkeypatch.setenv(name, value)
    encrypted = bool(getattr(request, "param", False))
    config = bot_config(synapse, tmp_path / "bot", encrypt_direct_rooms=encrypted)
    fran = await Person(synapse, unique("fran"), tmp_path / "fran").start("Fran")
    ada, bea, cy = [await Person(synapse, unique(n.lower()), tmp_path / n).start(n) for n in ("Ada", "Bea", "Cy")]
    people = [ada, bea, cy]
    room = await fran.create_room(encrypted=encrypted, invite=[config.user_id] + [p.user_id for p in people])
    group = GroupConfig(
        name=GROUP, region="North West", sector="health", matrix_rooms=(room,), coordinators=(cy.user_id,)
    )
    bot = await start_bot(config, db_url, clock, (group,))
    for person in people:
        await person.join(room)
    await everyone_sees([fran, *people], room, 5, config.user_id)
    made = Room(bot, room, fran, ada, bea, cy, clock, db_url, group)
    try:
        yield made
    finally:
        await made.bot.stop()
        await asyncio.gather(*(p.stop() for p in made.everyone))


@pytest.mark.parametrize("matrix_group", [True], ids=["encrypted"], indirect=True)
async def test_mydata_and_an_export_come_privately_as_encrypted_files(matrix_group: Room) -> None:
    r = matrix_group
    circle_id = await r.a_circle()
    ada, cy, room = r.ada, r.cy, r.room

    seen = len(ada.notices)
    await ada.say(room, "!circle mydata")
    told = await ada.expect("everything kept about you", after=seen)
    file, data = await _file(ada, "my-data.json", outside=room)
    assert told.room_id == file.room_id  # the text and its file, in Ada's direct room
    assert "file" in file.content and "url" not in file.content  # encrypted, as the direct room is
    assert file.content["info"] == {"mimetype": "application/json", "size": len(data)}
    mine = json.loads(data)
    assert mine["person"]["platform_id"] == member_id(ada.user_id) and mine["person"]["display_name"] == "Ada"
    assert [a["circle_id"] for a in mine["attendance"]] == [circle_id]

    await cy.say(room, "!circle export")
    ready = await cy.expect("Here is your attendance export")
    exported, raw = await _file(cy, "attendance-", outside=room)
    assert ready.room_id == exported.room_id and exported.body.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert sorted(row["person"] for row in rows) == ["Ada", "Bea"]
    assert {row["group"] for row in rows} == {GROUP}

    # Ada is no coordinator: a private refusal, no file.
    seen = len(ada.notices)
    await ada.say(room, "!circle export")
    refused = await ada.expect("Exports are for the coordinators", after=seen)
    assert refused.room_id != room
    assert [f.body for f in ada.files] == ["my-data.json"]
    assert not r.bea.files and not r.fran.files
    r.nothing_private_in_the_room()


async def test_mydata_in_a_plain_direct_room_and_forget_me(matrix_group: Room) -> None:
    r = matrix_group
    await r.a_circle()
    bea, room = r.bea, r.room
    direct = next(n.room_id for n in bea.notices if "exactly what this circle keeps" in n.body)
    assert direct != room

    # Typed in her direct room with the bot: the answer and the file come there, unencrypted.
    seen = len(bea.notices)
    await bea.say(direct, "!circle mydata")
    await bea.expect("everything kept about you", room_id=direct, after=seen)
    file, data = await _file(bea, "my-data.json", outside=room)
    assert file.room_id == direct and "url" in file.content and "file" not in file.content
    assert json.loads(data)["person"]["display_name"] == "Bea"

    seen = len(bea.notices)
    await bea.say(room, "!circle forget me")
    await bea.expect("erased from every record", after=seen)
    with r.bot.store.engine.connect() as conn:
        people = conn.execute(select(members_table.c.key, members_table.c.display_name)).all()
    assert member_id(bea.user_id) not in {key for key, _ in people}
    assert "Bea" not in {name for _, name in people}
    assert member_id(r.ada.user_id) in {key for key, _ in people}  # only Bea

    # The bot lets go of her direct room too (it held her consent receipts and her file there)...
    bot_user = r.bot.adapter.config.user_id
    await bea.until(lambda: bot_user not in bea.client.rooms[direct].users)
    joined = await r.bot.adapter._client.joined_rooms()
    assert isinstance(joined, nio.JoinedRoomsResponse) and direct not in joined.rooms and room in joined.rooms
    # ...and knows her no more: asked again, it has nothing, and says so in a new direct room.
    seen = len(bea.notices)
    await bea.say(room, "!circle mydata")
    again = await bea.expect("Nothing is kept about you", after=seen)
    assert again.room_id not in (direct, room)
    r.nothing_private_in_the_room()


async def test_forget_me_after_leaving_the_direct_room_is_answered_in_a_room_she_can_join(matrix_group: Room) -> None:
    """Bea has left her direct room: the answer opens a new one, which the bot does not leave
    before she has joined it and read the answer; once she leaves it, the bot leaves it too."""
    r = matrix_group
    await r.a_circle()
    bea, room = r.bea, r.room
    bot = r.bot.adapter
    direct = next(n.room_id for n in bea.notices if "exactly what this circle keeps" in n.body)
    assert isinstance(await bea.client.room_leave(direct), nio.RoomLeaveResponse)
    await bea.until(lambda: bea.user_id not in bot._client.rooms[direct].users)  # the bot has seen her go

    # She accepts the next invite only once the bot is done with her command (forget me included).
    bea.client.event_callbacks = [c for c in bea.client.event_callbacks if c.func != bea._on_invite]
    invited_before = set(bea.client.invited_rooms)
    asked = await bea.say(room, "!circle forget me")
    await bea.until(lambda: asked in bot._seen)
    (new,) = set(bea.client.invited_rooms) - invited_before
    assert new not in (direct, room)
    await bea.join(new)  # the bot is still there: she can join...
    told = await bea.expect("erased from every record", room_id=new)  # ...and read the answer
    assert told.sender == bot.config.user_id
    joined = await bot._client.joined_rooms()  # the room she had left, with the bot's old lines: left too
    assert isinstance(joined, nio.JoinedRoomsResponse) and direct not in joined.rooms

    # The bot keeps no note of that room: once she leaves it, it leaves and forgets it too.
    assert isinstance(await bea.client.room_leave(new), nio.RoomLeaveResponse)
    await bea.until(lambda: new not in bot._client.rooms)
    joined = await bot._client.joined_rooms()
    assert isinstance(joined, nio.JoinedRoomsResponse) and new not in joined.rooms and room in joined.rooms
    r.nothing_private_in_the_room()


async def test_forget_me_after_a_restart_leaves_the_direct_room_she_opened(matrix_group: Room) -> None:
    """A direct room Bea opened with the bot is left on ``forget me`` even after a restart, when
    the bot has not heard from her there since (its notes of the room are gone by then)."""
    r = matrix_group
    bea, room = r.bea, r.room
    bot_user = r.bot.adapter.config.user_id
    created = await bea.client.room_create(
        is_direct=True, invite=[bot_user], preset=nio.RoomPreset.trusted_private_chat
    )
    assert isinstance(created, nio.RoomCreateResponse), created
    theirs = str(created.room_id)
    await bea.until(lambda: r.bot.adapter._is_direct.get(theirs) is True)  # joined, and noted as direct

    await r.restart()
    assert theirs in r.bot.adapter._client.rooms and theirs not in r.bot.adapter._is_direct
    seen = len(bea.notices)
    asked = await bea.say(room, "!circle forget me")
    await bea.expect("Nothing is kept about you", after=seen)
    await bea.until(lambda: asked in r.bot.adapter._seen)
    joined = await r.bot.adapter._client.joined_rooms()
    assert isinstance(joined, nio.JoinedRoomsResponse) and theirs not in joined.rooms and room in joined.rooms
    await bea.until(lambda: bot_user not in bea.client.rooms[theirs].users)
