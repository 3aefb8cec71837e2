"""A guild on the loopback Discord with the bot in it: shared by the Discord tests.

Fran (role "Facilitator") facilitates; Ada, Bea and Cy take part. The bot (the real
:class:`DiscordAdapter` on the real discord.py client) runs in this process on a manual clock;
its gateway and REST traffic go over real sockets to tests/discord_fake.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from adapters.discord.adapter import DiscordAdapter
from facilitator.config import DiscordConfig, GroupConfig
from facilitator.runtime.clock import ManualClock
from facilitator.runtime.host import Hosted, Runtime
from facilitator.storage.store import Store
from tests.discord_fake import Channel, DiscordFake, Interaction, Member, Message

GROUP = "North West check-ins"


@dataclass
class Guild:
    fake: DiscordFake
    runtime: Runtime
    store: Store
    adapter: DiscordAdapter
    clock: ManualClock
    channel: Channel
    fran: Member
    ada: Member
    bea: Member
    cy: Member

    def hosted(self) -> Hosted | None:
        return self.runtime.circle_in("discord", str(self.channel.id))

    async def settle_time(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await self.runtime.settle()

    async def slash(self, who: Member, subcommand: str, **options: object) -> Interaction:
        return await self.fake.slash(who, self.channel, "circle", subcommand, options)

    async def posted(self, text: str, after: int = 0) -> Message:
        """The first message in the circle's channel (from index ``after``) containing ``text``."""
        return await self.fake.wait_until(
            lambda: next(
                (m for m in self.fake.messages(self.channel, ephemeral=False)[after:] if text in m.content), None
            ),
            what=f"a message containing {text!r}",
        )


def bot_config(fake: DiscordFake, **overrides: Any) -> DiscordConfig:
    """The bot's configuration for ``fake``'s guild (the token is in FACILITATOR_DISCORD_TOKEN)."""
    values: dict[str, Any] = {
        "guilds": (fake.guild.id,),
        "steer_roles": ("Facilitator",),
        "api_base": fake.api_base,
        "gateway": str(fake.gateway_url),
    }
    values.update(overrides)
    return DiscordConfig(**values)


async def start_bot(
    fake: DiscordFake, db_url: str, clock: ManualClock, config: DiscordConfig, group: GroupConfig | None = None
) -> tuple[Runtime, Store, DiscordAdapter]:
    """The bot on ``fake``, connected and ready (stop it with ``runtime.stop()`` and ``store.close()``)."""
    store = Store(db_url)
    adapter = DiscordAdapter(
        config,
        lambda room: group if group is not None and room in group.rooms() else None,
        client_options={"guild_ready_timeout": 0.05},
        identify_wait=False,
    )
    runtime = Runtime(store, clock=clock, adapters=[adapter])
    await runtime.start()
    await adapter.wait_ready()
    return runtime, store, adapter


@contextlib.asynccontextmanager
async def a_guild(
    db_url: str, clock: ManualClock, names: Mapping[str, str] | None = None, **overrides: Any
) -> AsyncIterator[Guild]:
    """A guild with a "circles" channel, Fran (a Facilitator) and Ada, Bea and Cy (display names
    from ``names`` if given: they may be hostile), and the bot in it."""
    shown = {"Ada": "Ada", "Bea": "Bea", "Cy": "Cy", **(names or {})}
    async with DiscordFake() as fake:
        channel = fake.channel("circles")
        facilitators = fake.add_role("Facilitator")
        fran = fake.add_member("fran", display_name="Fran", roles=[facilitators])
        ada, bea, cy = (fake.add_member(n.lower(), display_name=shown[n]) for n in ("Ada", "Bea", "Cy"))
        os.environ["FACILITATOR_DISCORD_TOKEN"] = fake.token
        group = GroupConfig(name=GROUP, region="North West", sector="health", discord_channels=(channel.id,))
        with fake.pointed_at():  # restores discord.py's URLs afterwards
            runtime, store, adapter = await start_bot(fake, db_url, clock, bot_config(fake, **overrides), group)
            try:
                yield Guild(fake, runtime, store, adapter, clock, channel, fran, ada, bea, cy)
            finally:
                await runtime.stop()
                store.close()
                os.environ.pop("FACILITATOR_DISCORD_TOKEN", None)


@pytest.fixture
async def guild(db_url: str, clock: ManualClock) -> AsyncIterator[Guild]:
    async with a_guild(db_url, clock) as started:
        yield started
