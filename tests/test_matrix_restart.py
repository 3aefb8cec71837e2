"""The bot as people run it (``facilitator serve``), killed and restarted mid-round, and Synapse
stopped and started mid-circle: no command lost or handled twice, no message posted twice."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from facilitator.storage.store import Store
from tests.matrix_people import (
    BOT_ENV,
    Person,
    ServeProcess,
    bot_config,
    everyone_sees,
    people_in_a_room,
    write_config,
)
from tests.synapse_server import SynapseServer


@pytest.fixture
def serve_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in BOT_ENV.items():
        monkeypatch.setenv(name, value)
    yield


def bodies(person: Person, room: str) -> list[str]:
    return [n.body for n in person.notices if n.room_id == room]


async def test_killed_mid_round_and_restarted_handles_every_command_once(
    synapse: SynapseServer, tmp_path: Path, serve_env: None
) -> None:
    db_url = f"sqlite:///{tmp_path / 'bot.db'}"
    config = bot_config(synapse, tmp_path / "bot")
    bot = ServeProcess(write_config(tmp_path / "serve.yaml", config, db_url), tmp_path / "serve.log")
    bot.start()
    fran, (ada, bea, cy), room = await people_in_a_room(synapse, tmp_path, config.user_id, encrypted=False)
    everyone = [fran, ada, bea, cy]
    try:
        await everyone_sees(everyone, room, 5, config.user_id)
        await fran.say(room, "!circle start check-in-30")
        await fran.expect("Check-in circle", room_id=room)
        for person in (ada, bea, cy):
            await person.say(room, "!circle join")
            await person.expect("exactly what this circle keeps")
            await person.say(room, "!circle consent")
            await person.expect("recorded", after=len(person.notices) - 1)
        await fran.say(room, "!circle begin")
        await fran.expect("Welcome, and thank you", room_id=room)
        await fran.say(room, "!circle next")  # to the agreement
        await fran.expect("agreement we hold", room_id=room)
        await fran.say(room, "!circle next")  # to the check-in round: the piece goes to Ada
        await ada.expect("the talking piece is with you", room_id=room)

        bot.kill()  # mid-round
        said_before = {p.user_id: len(p.notices) for p in everyone}
        # 25 commands while the bot is down (more than a sync's timeline of 10): the round's
        # three turns, in order, and 22 status questions.
        await ada.say(room, "!circle done")
        await bea.say(room, "!circle pass")
        await cy.say(room, "!circle done")
        asked = Counter[str]()
        for index in range(22):
            person = everyone[index % 4]
            await person.say(room, "!circle status")
            asked[person.user_id] += 1
        assert sum(asked.values()) + 3 == 25

        bot.start()
        await fran.expect("Open reflection", room_id=room, after=said_before[fran.user_id])
        for person in everyone:  # every status question answered, privately, exactly once
            await person.until(
                lambda p=person: (
                    sum(  # type: ignore[misc]
                        "Circle status" in n.body for n in p.notices[said_before[p.user_id] :]
                    )
                    >= asked[p.user_id]
                )
            )
        # Restart once more: nothing is handled again (the same 25 events are behind the checkpoint).
        bot.kill()
        bot.start()
        await fran.say(room, "!circle status")
        await fran.until(lambda: sum("Circle status" in n.body for n in fran.notices) >= asked[fran.user_id] + 1)
        for person in everyone:
            statuses = sum("Circle status" in n.body for n in person.notices[said_before[person.user_id] :])
            assert statuses == asked[person.user_id] + (1 if person is fran else 0)
        in_room = bodies(fran, room)
        said = Counter(in_room)
        assert said["Thank you."] == 2  # Ada's done and Cy's done, once each
        repeated = [b for b, n in said.items() if n > 1 and b != "Thank you." and not b.startswith("We are back")]
        assert repeated == []  # no message posted twice
        assert sum("is with you" in b and "Bea" in b for b in in_room) == 1
    finally:
        assert bot.stop() in (0, -signal.SIGKILL)
        await asyncio.gather(*(p.stop() for p in everyone))
    store = Store(db_url)
    try:
        circle_ids = {e["circle_id"] for e in store.consent_log()}
        (circle_id,) = circle_ids
        rows = store.attendance_of(circle_id)
        assert sorted((r["display_name"], r["turns_spoken"], r["turns_passed"]) for r in rows) == [
            ("Ada", 1, 0),
            ("Bea", 0, 1),
            ("Cy", 1, 0),
        ]
    finally:
        store.close()
