"""A guild on the loopback Discord with the bot in it: shared by the Discord tests.

Fran (role "Facilitator") facilitates; Ada, Bea and Cy take part. The bot (the real
:class:`DiscordAdapter` on the real discord.py client) runs in this process on a manual clock;
its gateway and REST traffic go over real sockets to tests/discord_fake.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from adapters.discord.adapter import DiscordAdapter
from facilitator.config import DiscordConfig, GroupConfig, ServeConfig
from facilitator.runtime.clock import Clock, ManualClock
from facilitator.runtime.host import Hosted, Runtime
from facilitator.storage.store import Store, Write
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

    def coordinate(self, *people: Member, others: Sequence[GroupConfig] = ()) -> None:
        """Make ``people`` the coordinators of the channel's group, and add ``others`` to the
        configuration, as serve.yaml would (coordinators written as Discord user ids)."""
        config = self.runtime.config
        assert config is not None and config.discord is not None
        group = config.groups[0].model_dump()
        group["coordinators"] = [p.user.id for p in people]
        self.runtime.config = ServeConfig.model_validate(
            {"discord": config.discord, "groups": [group, *(g.model_dump() for g in others)]}
        )

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


class SlowStore(Store):
    """A database whose commits take ``stall`` seconds (a slow disk, a busy PostgreSQL): the
    runtime's writer calls ``apply`` on its database thread, so only that thread waits."""

    stall = 0.0

    def apply(self, writes: Sequence[Write], sent: Sequence[str] = ()) -> None:
        if self.stall:
            time.sleep(self.stall)
        super().apply(writes, sent)


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
    fake: DiscordFake,
    db_url: str,
    clock: Clock,
    config: DiscordConfig,
    group: GroupConfig | None = None,
    store_class: type[Store] = Store,
) -> tuple[Runtime, Store, DiscordAdapter]:
    """The bot on ``fake``, connected and ready (stop it with ``runtime.stop()`` and ``store.close()``);
    its runtime holds the configuration serve would give it (``config`` and ``group``)."""
    store = store_class(db_url)
    adapter = DiscordAdapter(
        config,
        lambda room: group if group is not None and room in group.rooms() else None,
        client_options={"guild_ready_timeout": 0.05},
        identify_wait=False,
    )
    serve = ServeConfig(discord=config, groups=(group,) if group is not None else ())
    runtime = Runtime(store, clock=clock, adapters=[adapter], config=serve)
    await runtime.start()
    await adapter.wait_ready()
    return runtime, store, adapter


@contextlib.asynccontextmanager
async def a_guild(
    db_url: str,
    clock: ManualClock,
    names: Mapping[str, str] | None = None,
    *,
    store_class: type[Store] = Store,
    **overrides: Any,
) -> AsyncIterator[Guild]:
    """A guild with a "circles" channel, Fran (a Facilitator) and Ada, Bea and Cy (display names
    from ``names`` if given: they may be hostile), and the bot in it (over a ``store_class`` store).
    A test may restart the bot by replacing the guild's runtime, store and adapter: the ones the
    guild holds at the end are stopped."""
    shown = {"Ada": "Ada", "Bea": "Bea", "Cy": "Cy", **(names or {})}
    async with DiscordFake() as fake:
        channel = fake.channel("circles")
        facilitators = fake.add_role("Facilitator")
        fran = fake.add_member("fran", display_name="Fran", roles=[facilitators])
        ada, bea, cy = (fake.add_member(n.lower(), display_name=shown[n]) for n in ("Ada", "Bea", "Cy"))
        os.environ["FACILITATOR_DISCORD_TOKEN"] = fake.token
        group = GroupConfig(name=GROUP, region="North West", sector="health", discord_channels=(channel.id,))
        with fake.pointed_at():  # restores discord.py's URLs afterwards
            config = bot_config(fake, **overrides)
            runtime, store, adapter = await start_bot(fake, db_url, clock, config, group, store_class)
            started = Guild(fake, runtime, store, adapter, clock, channel, fran, ada, bea, cy)
            try:
                yield started
            finally:
                await started.runtime.stop()
                started.store.close()
                os.environ.pop("FACILITATOR_DISCORD_TOKEN", None)


@pytest.fixture
async def guild(db_url: str, clock: ManualClock) -> AsyncIterator[Guild]:
    async with a_guild(db_url, clock) as started:
        yield started
