"""The homeserver pushing back, for real: rate limits, a logged-out device, a room key that comes late.

Each test runs a real Synapse and real nio clients; nothing of the homeserver is mocked. The
tests wait on what people see (a notice arriving) or on the bot's own log, never on a timer.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nio
import pytest

from adapters.matrix.content import member_id
from facilitator.config import GroupConfig
from facilitator.runtime.clock import ManualClock
from tests.conftest import synapse_python
from tests.matrix_people import (
    BOT_ENV,
    Person,
    ServeProcess,
    bot_config,
    everyone_sees,
    people_in_a_room,
    start_bot,
    unique,
    write_config,
)
from tests.synapse_server import SynapseServer

ADAPTER_LOG = "adapters.matrix.adapter"
CONSENT_QUESTION = "exactly what this circle keeps"
RECEIPT = "Your consent to version"
JOINED = "Someone has joined the circle"


@pytest.fixture
def bot_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in BOT_ENV.items():
        monkeypatch.setenv(name, value)


def count(person: Person, text: str, room_id: str | None = None) -> int:
    """How many notices ``person`` has seen containing ``text`` (in ``room_id``, if given)."""
    return sum(text in n.body and (room_id is None or n.room_id == room_id) for n in person.notices)


def logged(caplog: pytest.LogCaptureFixture, text: str, since: int = 0) -> int:
    """How many of the adapter's log records (from index ``since``) contain ``text``."""
    return sum(r.name == ADAPTER_LOG and text in r.getMessage() for r in caplog.records[since:])


# ---------------------------------------------------------------------------- M_LIMIT_EXCEEDED


def own_synapse(base: Path, extra_config: dict[str, Any]) -> SynapseServer:
    """A Synapse for one test, configured unlike the shared one."""
    python = synapse_python()
    if python is None or not Path(python).exists():
        message = "Synapse is not installed: run ./dev test (it installs Synapse into .venv-synapse/)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return SynapseServer(base, python, extra_config)


@pytest.fixture
def limited_synapse(tmp_path: Path) -> Iterator[SynapseServer]:
    """Each user may send one event a second after a burst of two (Synapse's ``rc_message``, which
    counts creating a room too). A 429 then says ``Retry-After: 1`` (whole seconds, rounded up) and
    ``retry_after_ms`` up to 1000. (A slower rate makes Synapse ask for longer waits: at 0.001/s it
    asks for 1000 s, which the bot caps at 300.)"""
    server = own_synapse(tmp_path / "synapse", {"rc_message": {"per_second": 1, "burst_count": 2}})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def rate_limited(caplog: pytest.LogCaptureFixture) -> list[tuple[str, float, float]]:
    """Each 429 the bot met: (what it was doing, the seconds it said it would wait, when it said so)."""
    found = []
    for record in caplog.records:
        said = re.fullmatch(r"(.+): rate-limited; waiting ([\d.]+) s as the homeserver asks", record.getMessage())
        if record.name == ADAPTER_LOG and said:
            found.append((said[1], float(said[2]), record.created))
    return found


async def test_rate_limited_the_bot_waits_as_told_and_every_reply_arrives_once(
    limited_synapse: SynapseServer,
    tmp_path: Path,
    clock: ManualClock,
    db_url: str,
    bot_env: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=ADAPTER_LOG)
    server = limited_synapse
    # One 429 per request at most when the wait is honoured (the bot's lines go out one at a time).
    config = bot_config(server, tmp_path / "bot", rate_limit_retries=2)
    fran = await Person(server, unique("fran"), tmp_path / "fran").start("Fran")
    people = [await Person(server, unique(n.lower()), tmp_path / n).start(n) for n in ("Ada", "Bea", "Cy")]
    everyone = [fran, *people]
    for person in everyone:  # the people type freely: only the bot is held to the limit
        server.unlimit(person.user_id)
    room = await fran.create_room(encrypted=False, invite=[config.user_id] + [p.user_id for p in people])
    group = GroupConfig(name="Limited", region="North West", sector="health", matrix_rooms=(room,))
    bot = await start_bot(config, db_url, clock, (group,))
    try:
        for person in people:
            await person.join(room)
        await everyone_sees(everyone, room, 5, config.user_id)

        # All at once: far more for the bot to say (and direct rooms to open) than the limit lets through.
        await fran.say(room, "!circle start check-in-30")
        for person in people:
            await person.say(room, "!circle join")
        for person in people:
            asked = await person.expect(CONSENT_QUESTION)
            assert asked.room_id != room  # privately, in the bot's direct room
            await person.say(room, "!circle consent")
        for person in people:
            await person.expect(RECEIPT)
        await fran.until(lambda: count(fran, JOINED, room) == 3)

        hosted = bot.runtime.circle_in("matrix", room)
        assert hosted is not None
        assert {m: p.state for m, p in hosted.circle.state.participants.items()} == {
            member_id(p.user_id): "present" for p in people
        }
        # Every reply arrived, none twice: the opening, then per person a question, a receipt and
        # a "joined" line in the room.
        assert count(fran, "Check-in circle", room) == 1
        for person in people:
            assert count(person, CONSENT_QUESTION) == 1 and count(person, RECEIPT) == 1
            assert len({n.room_id for n in person.private(room)}) == 1  # one direct room each
        said = {n.event_id for p in everyone for n in p.notices}
        assert len(said) == 1 + 3 * 3
        # The bot was told to wait, and waited as told: what Synapse asked (never more than its
        # Retry-After of 1 s), never giving up, never retrying at once (no two 429s closer than the
        # wait), at most once per request (3 direct rooms and 10 lines).
        told = rate_limited(caplog)
        assert told, "the bot was never rate-limited: the test proves nothing"
        assert all(0 < wait <= 1.0 for _, wait, _ in told), told
        for (_, wait, at), (_, _, next_at) in itertools.pairwise(told):
            assert next_at - at >= wait * 0.95, told
        assert len(told) <= 3 + len(said), told
        assert logged(caplog, "giving up") == 0 and logged(caplog, "could not") == 0
    finally:
        await bot.stop()
        await asyncio.gather(*(p.stop() for p in everyone))


# ---------------------------------------------------------------------------- M_UNKNOWN_TOKEN


async def test_logged_out_the_bot_stops_says_what_to_do_and_doing_it_brings_it_back(
    synapse: SynapseServer, tmp_path: Path, bot_env: None
) -> None:
    store_dir = tmp_path / "bot"
    config = bot_config(synapse, store_dir)
    db_url = f"sqlite:///{tmp_path / 'bot.db'}"
    bot = ServeProcess(write_config(tmp_path / "serve.yaml", config, db_url), tmp_path / "serve.log")
    bot.start()
    fran, (ada,), room = await people_in_a_room(synapse, tmp_path, config.user_id, encrypted=False, names=("Ada",))
    try:
        await everyone_sees([fran, ada], room, 3, config.user_id)
        await fran.say(room, "!circle start check-in-30")
        await fran.expect("Check-in circle", room_id=room)

        # Someone logs the bot's device out (from another client, or an admin "signs out all sessions").
        saved = json.loads((store_dir / "credentials.json").read_text(encoding="utf-8"))
        synapse.logout(saved["access_token"])
        await ada.say(room, "is the bot still there?")  # the room goes on (and any long poll returns)
        assert await asyncio.to_thread(bot.exited, 30) == 1
        output = bot.output()
        assert "Traceback" not in output
        (why,) = [line for line in output.splitlines() if line.startswith("facilitator serve:")]
        assert "M_UNKNOWN_TOKEN" in why and "logged out" in why
        assert str(store_dir / "credentials.json") in why and "TEST_BOT_PASSWORD" in why
        assert "log in as a new device" in why

        # Started again as it is: refused at once, with the same advice (no crash, no retry loop).
        bot.start()
        assert await asyncio.to_thread(bot.exited, 30) == 1
        again = bot.output()[len(output) :]
        assert "Traceback" not in again and "M_UNKNOWN_TOKEN" in again and str(store_dir) in again

        # Doing what it says (delete the store, the password is set) brings the bot back as a new
        # device, with the open circle where it was.
        shutil.rmtree(store_dir)
        bot.start()
        await ada.say(room, "!circle join")
        asked = await ada.expect(CONSENT_QUESTION)
        assert asked.room_id != room
        assert (
            json.loads((store_dir / "credentials.json").read_text(encoding="utf-8"))["device_id"] != saved["device_id"]
        )
    finally:
        bot.stop()
        await asyncio.gather(fran.stop(), ada.stop())


# ---------------------------------------------------------------------------- a room key that comes late


async def say_with_the_key_held_back(
    person: Person, room_id: str, text: str, held_from: str
) -> tuple[str, list[nio.ToDeviceMessage]]:
    """Type ``text`` in the encrypted room, in a new Megolm session whose key goes at once to every
    device except ``held_from``'s: theirs is returned, for the test to send later (a room key held
    up on its way, as over federation or from a client that lost its connection in between).

    What nio's ``room_send`` does, split in two: share the session (now, except ``held_from``),
    then encrypt and send the event."""
    client = person.client
    room = client.rooms[room_id]
    if not room.members_synced:
        await client.joined_members(room_id)
    if client.should_query_keys:
        await client.keys_query()
    missing = client.get_missing_sessions(room_id)
    if missing:
        await client.keys_claim(missing)
    now: list[nio.ToDeviceMessage] = []
    later: list[nio.ToDeviceMessage] = []
    shares = client.olm.share_group_session_parallel(room_id, list(room.users), ignore_unverified_devices=True)
    for _, payload in shares:
        for user, devices in payload["messages"].items():
            for device, content in devices.items():
                message = nio.ToDeviceMessage("m.room.encrypted", user, device, content)
                (later if user == held_from else now).append(message)
    client.olm.outbound_group_sessions[room_id].shared = True  # as nio's share_group_session does
    for message in now:
        sent = await client.to_device(message)
        assert isinstance(sent, nio.ToDeviceResponse), sent
    assert later, f"{person.localpart} knows no device of {held_from}"
    return await person.say(room_id, text), later


async def test_a_command_whose_room_key_comes_late_is_held_then_acted_on_once(
    synapse: SynapseServer,
    tmp_path: Path,
    clock: ManualClock,
    db_url: str,
    bot_env: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=ADAPTER_LOG)
    config = bot_config(synapse, tmp_path / "bot")
    fran = await Person(synapse, unique("fran"), tmp_path / "fran").start("Fran")
    ada = await Person(synapse, unique("ada"), tmp_path / "ada").start("Ada")
    room = await fran.create_room(encrypted=True, invite=[config.user_id, ada.user_id])
    group = GroupConfig(name="Late keys", region="North West", sector="health", matrix_rooms=(room,))
    bot = await start_bot(config, db_url, clock, (group,))
    try:
        await ada.join(room)
        await everyone_sees([fran, ada], room, 3, config.user_id)
        await fran.say(room, "!circle start check-in-30")
        await ada.expect("Check-in circle", room_id=room)

        join, keys = await say_with_the_key_held_back(ada, room, "!circle join", config.user_id)
        ada_joins = f"command 'join' from {ada.user_id} in {room} ({join})"
        await ada.until(lambda: logged(caplog, f"holding {join} in {room}") == 1)
        # The bot syncs again (Fran asks for the status) and tries the held event again: still no key.
        await fran.say(room, "!circle status")
        await fran.expect("Circle status")
        hosted = bot.runtime.circle_in("matrix", room)
        assert hosted is not None and hosted.circle.state.participants == {}
        assert count(ada, CONSENT_QUESTION) == 0 and logged(caplog, ada_joins) == 0

        for message in keys:  # the key arrives at last
            sent = await ada.client.to_device(message)
            assert isinstance(sent, nio.ToDeviceResponse), sent
        asked = await ada.expect(CONSENT_QUESTION)
        assert asked.room_id != room
        assert set(hosted.circle.state.participants) == {member_id(ada.user_id)}

        # Acted on once: Ada consents (in the same Megolm session, now known) and is in; a few
        # syncs later the join has not been acted on again, and nothing is held any more.
        await ada.say(room, "!circle consent")
        await ada.expect(RECEIPT)
        await fran.say(room, "!circle status")
        await fran.until(lambda: count(fran, "Circle status") == 2)
        assert hosted.circle.state.participants[member_id(ada.user_id)].state == "present"
        assert count(ada, CONSENT_QUESTION) == 1 and logged(caplog, ada_joins) == 1
        assert logged(caplog, f"holding {join}") == 1 and not bot.adapter._held
    finally:
        await bot.stop()
        await asyncio.gather(fran.stop(), ada.stop())
