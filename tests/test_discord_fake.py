"""The loopback Discord (tests/discord_fake) against the real discord.py 2.7 client.

A small bot, a ``discord.Client`` with a ``/circle`` command group and a persistent "Join" button,
connects to the fake on 127.0.0.1 exactly as it would to Discord. Each test says what a person in
the guild would notice. Waiting is on the fake's events (a callback arriving, a message appearing,
an identify), never on a timer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp
import discord
import pytest
from discord import app_commands

from tests.discord_fake import SEND_MESSAGE, DiscordFake, Member, Perm

CALLBACK = "POST /interactions/{interaction_id}/{token}/callback"
SCRIPTS = ["check-in-30", "check-out-15", "retro-45"]


@dataclass
class Seen:
    """What the bot's handlers were called with."""

    commands: list[tuple[str, int, dict[str, object]]] = field(default_factory=list)
    clicks: list[tuple[str, int, int]] = field(default_factory=list)


class JoinView(discord.ui.View):
    """The persistent view the bot attaches to announcements."""

    def __init__(self, seen: Seen) -> None:
        super().__init__(timeout=None)
        self.seen = seen

    @discord.ui.button(label="Join", style=discord.ButtonStyle.primary, custom_id="circle:join")
    async def join(self, interaction: discord.Interaction, button: discord.ui.Button[JoinView]) -> None:
        message_id = interaction.message.id if interaction.message else 0
        self.seen.clicks.append(("circle:join", interaction.user.id, message_id))
        await interaction.response.send_message(f"{interaction.user.display_name} joined", ephemeral=True)


class CircleBot(discord.Client):
    """A tiny bot shaped like the adapter will be: slash commands, a button, channel messages."""

    def __init__(self) -> None:
        super().__init__(intents=discord.Intents.default(), guild_ready_timeout=0.05)
        self.seen = Seen()
        self.readies = 0
        self.ready = asyncio.Event()
        self.tree = app_commands.CommandTree(self)
        self.tree.add_command(self._circle_group())

    def _circle_group(self) -> app_commands.Group:
        group = app_commands.Group(name="circle", description="Reflective circles")
        seen = self.seen

        @group.command(name="start", description="Open a circle")
        async def start(interaction: discord.Interaction, script: str, minutes: int = 30) -> None:
            seen.commands.append(("start", interaction.user.id, {"script": script, "minutes": minutes}))
            await interaction.response.send_message(f"Opening {script} for {minutes} minutes", ephemeral=True)

        @start.autocomplete("script")
        async def scripts(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
            return [app_commands.Choice(name=s, value=s) for s in SCRIPTS if s.startswith(current)]

        @group.command(name="join", description="Join the circle here")
        async def join(interaction: discord.Interaction) -> None:
            seen.commands.append(("join", interaction.user.id, {}))
            await interaction.response.defer(ephemeral=True, thinking=True)
            await interaction.followup.send("You are in the circle", ephemeral=True)

        @group.command(name="announce", description="Announce a circle with a Join button")
        async def announce(interaction: discord.Interaction, text: str) -> None:
            seen.commands.append(("announce", interaction.user.id, {"text": text}))
            await interaction.response.send_message("Announced", ephemeral=True)
            assert isinstance(interaction.channel, discord.TextChannel)
            await interaction.channel.send(text, allowed_mentions=discord.AllowedMentions.none(), view=JoinView(seen))

        return group

    async def setup_hook(self) -> None:
        self.add_view(JoinView(self.seen))
        await self.tree.sync()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py sleeps 5 s before every IDENTIFY but the first (Discord's identify rate limit);
        against the fake that wait only slows the re-identify test down."""

    async def on_ready(self) -> None:
        self.readies += 1
        self.ready.set()


@contextlib.asynccontextmanager
async def running(fake: DiscordFake) -> AsyncIterator[CircleBot]:
    """The bot, connected to ``fake`` and ready; closed (and its errors surfaced) afterwards."""
    bot = CircleBot()
    task = asyncio.create_task(bot.start(fake.token))
    try:
        await fake.wait_ready()
        await asyncio.wait_for(bot.ready.wait(), timeout=10)
        yield bot
    finally:
        await bot.close()
        await asyncio.wait_for(task, timeout=10)


@pytest.fixture
async def fake() -> AsyncIterator[DiscordFake]:
    async with DiscordFake() as started:
        started.channel("circles")  # made before the bot connects, so GUILD_CREATE carries it
        with started.pointed_at():
            yield started


@pytest.fixture
async def bot(fake: DiscordFake) -> AsyncIterator[CircleBot]:
    async with running(fake) as connected:
        yield connected


def text_channel(bot: CircleBot, fake: DiscordFake, name: str) -> discord.TextChannel:
    channel = bot.get_channel(fake.channel(name).id)
    assert isinstance(channel, discord.TextChannel)
    return channel


async def test_the_bot_connects_and_registers_its_commands(fake: DiscordFake, bot: CircleBot) -> None:
    """The bot comes online in the guild (READY, GUILD_CREATE, on_ready) and /circle shows up with its subcommands."""
    assert bot.readies == 1 and fake.identifies == 1
    guild = bot.get_guild(fake.guild.id)
    assert guild is not None and guild.name == fake.guild.name
    assert bot.user is not None and bot.user.id == fake.bot.id
    assert bot.application_id == fake.application_id
    [circle] = fake.commands()
    assert circle["name"] == "circle" and circle["id"]
    assert {o["name"] for o in circle["options"]} == {"start", "join", "announce"}
    assert [c.status for c in fake.rest_calls("PUT /applications/{application_id}/commands")] == [200]


async def test_a_slash_command_gets_a_private_answer(fake: DiscordFake, bot: CircleBot) -> None:
    """Ada types /circle start script:check-in-30 minutes:20 and only she sees the bot's answer, in time."""
    ada = fake.add_member("ada", display_name="Ada")
    handle = await fake.slash(ada, "circles", "circle", "start", {"script": "check-in-30", "minutes": 20})
    reply = await handle.response()
    assert reply.type == 4 and reply.ephemeral and not reply.late
    assert reply.content == "Opening check-in-30 for 20 minutes"
    assert bot.seen.commands == [("start", ada.id, {"script": "check-in-30", "minutes": 20})]
    assert handle.original is not None and handle.original.ephemeral and handle.original.pings.nobody
    assert fake.messages(fake.channel("circles"), ephemeral=False) == []


async def test_a_deferred_answer_is_filled_by_the_followup(fake: DiscordFake, bot: CircleBot) -> None:
    """Bea sees "thinking…" (privately), then the bot's answer replaces it: one message, not two."""
    bea = fake.add_member("bea", display_name="Bea")
    handle = await fake.slash(bea, "circles", "circle", "join")
    reply = await handle.response()
    assert reply.type == 5 and reply.ephemeral
    original = await handle.wait_original()
    assert original.content == "You are in the circle" and original.ephemeral and not original.loading
    assert await handle.followup() is original
    assert [e.via for e in original.edits] == ["followup_fills_deferred"]
    assert len(fake.messages(fake.channel("circles"))) == 1


async def test_a_second_acknowledgement_is_refused(fake: DiscordFake, bot: CircleBot) -> None:
    """Discord accepts one initial response per interaction: a second is answered 400, code 40060."""
    ada = fake.add_member("ada")
    handle = await fake.slash(ada, "circles", "circle", "start", {"script": "retro-45"})
    await handle.response()
    url = f"{fake.api_base}/interactions/{handle.id}/{handle.token}/callback"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json={"type": 4, "data": {"content": "again"}}) as r,
    ):
        assert r.status == 400 and r.headers["Content-Type"] == "application/json"
        assert (await r.json())["code"] == 40060
    assert [c.accepted for c in fake.callbacks] == [True, False]


async def test_the_join_button_reaches_the_view(fake: DiscordFake, bot: CircleBot) -> None:
    """Fran announces a circle; Cy presses Join on the announcement and is told, privately, that he joined."""
    fran = fake.add_member("fran", display_name="Fran")
    cy = fake.add_member("cy", display_name="Cy")
    announce = await fake.slash(fran, "circles", "circle", "announce", {"text": "Check-in at noon"})
    assert (await announce.response()).content == "Announced"
    posted = await fake.wait_for_message(lambda m: "circle:join" in m.custom_ids(), what="the announcement")
    assert posted.content == "Check-in at noon" and not posted.ephemeral and posted.pings.nobody
    click = await fake.click(cy, posted, "circle:join")
    reply = await click.response()
    assert reply.type == 4 and reply.ephemeral and reply.content == "Cy joined"
    assert bot.seen.clicks == [("circle:join", cy.id, posted.id)]


async def test_allowed_mentions_decide_who_is_pinged(fake: DiscordFake, bot: CircleBot) -> None:
    """A name like "@everyone <@&mods>" pings nobody under AllowedMentions.none(); allowing Ada pings Ada alone."""
    mods = fake.add_role("mods", mentionable=True)
    ada = fake.add_member("ada", display_name="Ada")
    eve = fake.add_member("eve", display_name=f"@everyone <@&{mods.id}>", roles=[mods])
    channel = text_channel(bot, fake, "circles")
    hostile = f"{eve.display_name} and <@{ada.id}> joined. @here"

    await channel.send(hostile, allowed_mentions=discord.AllowedMentions.none())
    only_ada = discord.AllowedMentions(everyone=False, roles=False, users=[discord.Object(ada.id)])
    await channel.send(f"<@{ada.id}> <@{eve.id}> <@&{mods.id}> @everyone", allowed_mentions=only_ada)
    await channel.send(hostile)  # no allowed_mentions at all: Discord parses everything

    quiet, targeted, loud = fake.messages(fake.channel("circles"))
    assert quiet.pings.nobody
    assert targeted.pings.users == {ada.id} and not targeted.pings.roles and not targeted.pings.everyone
    assert loud.pings.everyone and loud.pings.here and loud.pings.roles == {mods.id} and ada.id in loud.pings.users


async def test_a_rate_limited_send_arrives_once(fake: DiscordFake, bot: CircleBot) -> None:
    """Discord says "slow down" twice; discord.py waits and resends, and the circle sees the message once."""
    fake.rate_limit(SEND_MESSAGE, count=2, retry_after=0.01)
    await text_channel(bot, fake, "circles").send("The circle begins")
    assert [c.status for c in fake.rest_calls(SEND_MESSAGE)] == [429, 429, 200]
    assert [m.content for m in fake.messages(fake.channel("circles"))] == ["The circle begins"]


async def test_a_send_that_failed_after_posting_is_not_doubled(fake: DiscordFake, bot: CircleBot) -> None:
    """A 502 after the message was posted: discord.py resends, and its nonce makes Discord return the first copy."""
    circles = fake.channel("circles")
    fake.server_error(SEND_MESSAGE, status=502, commit=True)
    sent = await text_channel(bot, fake, "circles").send("Round two: Bea holds")
    assert [c.status for c in fake.rest_calls(SEND_MESSAGE)] == [502, 200]
    [posted] = fake.messages(circles)
    assert posted.id == sent.id and posted.enforce_nonce and fake.nonce_hits == 1

    # The same failure without a nonce: the resend posts the announcement twice.
    fake.server_error(SEND_MESSAGE, status=500, commit=True)
    route = discord.http.Route("POST", "/channels/{channel_id}/messages", channel_id=circles.id)
    await bot.http.request(route, json={"content": "Round three"})
    assert [m.content for m in fake.messages(circles)].count("Round three") == 2


async def test_reconnect_resumes_and_replays_what_was_missed(fake: DiscordFake, bot: CircleBot) -> None:
    """Discord asks the bot to reconnect, then drops it mid-command: it resumes and still answers Ada."""
    ada = fake.add_member("ada")
    await fake.send_reconnect()
    await fake.wait_until(lambda: fake.resumes >= 1, what="a RESUME after op 7")
    assert fake.gateway.connections[-1].path == "/gateway-resume"

    await fake.close_gateway(4000)
    handle = await fake.slash(ada, "circles", "circle", "start", {"script": "check-in-30"})  # sent while away
    assert (await handle.response()).content == "Opening check-in-30 for 30 minutes"
    assert fake.resumes == 2 and fake.identifies == 1 and bot.readies == 1


async def test_an_invalid_session_makes_the_bot_identify_again(fake: DiscordFake, bot: CircleBot) -> None:
    """Discord forgets the session: the bot identifies afresh (on_ready again) and commands still work."""
    ada = fake.add_member("ada")
    bot.ready.clear()
    await fake.invalidate_session(resumable=False)
    await fake.wait_ready(identifies=2)
    await asyncio.wait_for(bot.ready.wait(), timeout=10)
    assert bot.readies == 2
    handle = await fake.slash(ada, "circles", "circle", "start", {"script": "retro-45"})
    assert (await handle.response()).content == "Opening retro-45 for 30 minutes"


async def test_a_late_answer_is_recorded_as_failed_for_the_person(bot: CircleBot, fake: DiscordFake) -> None:
    """If the answer reaches Discord after 3 s the person sees "the application did not respond": recorded as late."""
    now = [1000.0]
    fake.clock = lambda: now[0]
    ada = fake.add_member("ada")
    stall = fake.stall(CALLBACK)
    handle = await fake.slash(ada, "circles", "circle", "start", {"script": "check-in-30"})
    await stall.arrived()
    now[0] += 3.5
    stall.release()
    reply = await handle.response()
    assert reply.late and reply.latency == pytest.approx(3.5)


async def test_autocomplete_offers_scripts(fake: DiscordFake, bot: CircleBot) -> None:
    """Typing "che" in the script option offers the matching scripts."""
    ada = fake.add_member("ada")
    handle = await fake.autocomplete(ada, "circles", "circle", "start", {"script": "che"}, focused="script")
    reply = await handle.response()
    assert reply.type == 8 and [c["value"] for c in reply.data["choices"]] == ["check-in-30", "check-out-15"]


async def test_a_command_from_a_dm(fake: DiscordFake, bot: CircleBot) -> None:
    """Ada runs /circle start in her DM with the bot: no guild, a user instead of a member, and an answer."""
    ada = fake.add_member("ada")
    handle = await fake.dm_slash(ada, "circle", "start", {"script": "retro-45", "minutes": 10})
    assert "guild_id" not in handle.payload and handle.payload["user"]["id"] == str(ada.id)
    assert (await handle.response()).content == "Opening retro-45 for 10 minutes"


async def test_commands_are_typed_by_their_registered_schema(fake: DiscordFake, bot: CircleBot) -> None:
    """The fake refuses what Discord's client would not send: unknown subcommands, wrong types, missing options."""
    ada = fake.add_member("ada")
    bad: list[Callable[[Member], object]] = [
        lambda m: fake.slash(m, "circles", "circle", "stop"),
        lambda m: fake.slash(m, "circles", "circle", "start", {"script": "x", "minutes": "ten"}),
        lambda m: fake.slash(m, "circles", "circle", "start", {"minutes": 5}),
    ]
    for attempt in bad:
        with pytest.raises(ValueError):
            await attempt(ada)  # type: ignore[misc]
    assert fake.interactions == {}


async def test_missing_permission_to_send_is_forbidden(fake: DiscordFake, bot: CircleBot) -> None:
    """A bot without Send Messages gets Discord's 403 (code 50013), not a silent success."""
    bot_role = fake.guild.roles[fake.bot_member.role_ids[0]]
    fake.guild.everyone.permissions &= ~Perm.SEND_MESSAGES
    bot_role.permissions &= ~Perm.SEND_MESSAGES
    with pytest.raises(discord.Forbidden) as raised:
        await text_channel(bot, fake, "circles").send("hello")
    assert raised.value.code == 50013
