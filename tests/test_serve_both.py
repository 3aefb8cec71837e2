"""One ``facilitator serve`` process carries Matrix and Discord side by side."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from facilitator.config import ServeConfig
from facilitator.serve import run_serve
from tests.discord_fake import DiscordFake
from tests.discord_people import bot_config as discord_config
from tests.matrix_people import BOT_ENV, Person, everyone_sees, unique
from tests.matrix_people import bot_config as matrix_config
from tests.synapse_server import SynapseServer


async def test_one_serve_runs_circles_on_matrix_and_discord_at_once(
    synapse: SynapseServer, tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in BOT_ENV.items():
        monkeypatch.setenv(name, value)
    async with DiscordFake() as fake:
        channel = fake.channel("circles")
        fran_on_discord = fake.add_member("fran", display_name="Fran", roles=[fake.add_role("Facilitator")])
        monkeypatch.setenv("FACILITATOR_DISCORD_TOKEN", fake.token)
        matrix = matrix_config(synapse, tmp_path / "bot")
        config = ServeConfig(database=db_url, matrix=matrix, discord=discord_config(fake))
        fran = await Person(synapse, unique("fran"), tmp_path / "fran").start("Fran")
        stop = asyncio.Event()
        with fake.pointed_at():
            serving = asyncio.ensure_future(run_serve(config, db_url, stop=stop))
            try:
                room = await fran.create_room(encrypted=False, invite=[matrix.user_id])
                await everyone_sees([fran], room, 2, matrix.user_id)
                await fran.say(room, "!circle start check-in-30")
                await fake.wait_ready()
                started = await fake.slash(
                    fran_on_discord, channel, "circle", "start", {"script": "reflective-practice-75"}
                )
                await started.response()
                await fran.expect("Check-in circle", room_id=room)
                opening = await fake.wait_for_message(lambda m: not m.ephemeral and "Reflective practice" in m.content)
                assert opening.channel_id == channel.id
                assert not serving.done()
            finally:
                stop.set()
                status = await asyncio.wait_for(serving, timeout=30)
                await fran.stop()
    assert status == 0
