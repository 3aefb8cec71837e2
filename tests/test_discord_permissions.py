"""Who may do what on Discord, and what nobody can make the bot do: checked by the bot on every
command, against the loopback Discord with the real discord.py client."""

from __future__ import annotations

from facilitator.runtime.clock import ManualClock
from tests.discord_fake import Perm, User
from tests.discord_people import Guild, a_guild, guild

__all__ = ["guild"]


async def test_without_the_role_or_permission_one_cannot_start_or_steer(guild: Guild) -> None:
    g = guild
    refused = await (await g.slash(g.ada, "start", script="check-in-30")).response()
    needs = "Starting a circle in this room needs the Facilitator role, or the Manage Channels permission"
    assert refused.ephemeral and needs in refused.content
    assert g.hosted() is None and g.fake.messages(g.channel, ephemeral=False) == []

    await (await g.slash(g.fran, "start", script="check-in-30")).response()
    await g.posted("Check-in circle")
    for command in ("begin", "end", "next", "pause"):
        answer = await (await g.slash(g.ada, command)).response()
        assert answer.ephemeral and "Only a facilitator" in answer.content, command
    hosted = g.hosted()
    assert hosted is not None and hosted.circle.status.value == "gathering"
    helped = await (await g.slash(g.ada, "help")).response()
    assert "/circle join" in helped.content and "/circle begin" not in helped.content
    steering = await (await g.slash(g.fran, "help")).response()
    assert "/circle begin" in steering.content


async def test_the_configured_permission_lets_a_moderator_steer(db_url: str, clock: ManualClock) -> None:
    async with a_guild(db_url, clock, steer_permission="manage_channels") as g:
        mods = g.fake.add_role("Mods", int(Perm.MANAGE_CHANNELS))
        mo = g.fake.add_member("mo", display_name="Mo", roles=[mods])
        await (await g.slash(mo, "start", script="check-in-30")).response()
        await g.posted("Check-in circle")
        hosted = g.hosted()
        assert hosted is not None and hosted.circle.state.facilitators == [f"discord:{mo.user.id}"]


async def test_a_command_in_a_direct_message_points_back_to_the_circle(guild: Guild) -> None:
    g = guild
    answer = await (await g.fake.dm_slash(g.ada, "circle", "start", {"script": "check-in-30"})).response()
    assert answer.ephemeral and "type that in the circle's room" in answer.content
    assert g.runtime.circle_in("discord", str(g.fake.dm_channel(g.ada).id)) is None
    scripts = await (await g.fake.dm_slash(g.ada, "circle", "scripts")).response()
    assert "check-in-30" in scripts.content


async def test_a_server_the_bot_is_not_set_up_for_is_refused_politely(db_url: str, clock: ManualClock) -> None:
    async with a_guild(db_url, clock, guilds=(1,)) as g:  # the fake's guild is not among them
        answer = await (await g.slash(g.fran, "start", script="check-in-30")).response()
        assert answer.ephemeral and "not set up for circles" in answer.content
        assert g.hosted() is None and g.fake.messages(g.channel, ephemeral=False) == []


async def test_hostile_names_ping_nobody_and_show_as_typed(db_url: str, clock: ManualClock) -> None:
    hostile = "@everyone @here **Bea** <@&1> `x` [link](https://example.org)"
    async with a_guild(db_url, clock, names={"Bea": hostile}) as g:
        await (await g.slash(g.fran, "start", script="check-in-30")).response()
        for person in (g.bea, g.ada):
            await (await g.slash(person, "join")).response()
            await (await g.slash(person, "consent")).response()
        await (await g.slash(g.fran, "begin")).response()
        await g.settle_time(120)
        given = await g.posted("the talking piece is with you")
        assert given.pings.users == {g.bea.user.id} and not (given.pings.everyone or given.pings.here)
        assert not given.pings.roles
        status = await (await g.slash(g.ada, "status")).response()  # names the holder: Bea
        assert status.ephemeral and "\\*\\*Bea\\*\\*" in status.content  # markdown shown as typed
        for message in g.fake.messages(g.channel, ephemeral=False):
            assert not (message.pings.everyone or message.pings.here or message.pings.roles), message.content
            assert message.pings.users <= {g.bea.user.id, g.ada.user.id}


async def test_naming_someone_outside_the_circle_is_answered_not_ignored(guild: Guild) -> None:
    g = guild
    await (await g.slash(g.fran, "start", script="check-in-30")).response()
    stranger = User(id=424242424242424242, username="stranger", global_name="Stranger")
    answer = await (await g.slash(g.fran, "cofacilitator", person=stranger)).response()
    assert answer.ephemeral and "not in the circle" in answer.content
