"""Discord misbehaving mid-circle, and the bot carrying on as if nothing happened.

The real adapter on the real discord.py client against the loopback Discord (set-up in
tests/discord_people.py): Discord rate-limits a line, fails after posting one, tells the bot to
reconnect or forgets its session; the bot is restarted mid-round; the database stalls for two
seconds a commit. Each test says what the people in the circle would notice: every line once,
every button still answering, every command answered inside Discord's three seconds.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from adapters.discord.adapter import DEFER_AFTER
from adapters.discord.content import nonce
from facilitator.runtime.clock import ManualClock
from tests.discord_fake import SEND_MESSAGE, Callback, CallbackType, Fault, Message
from tests.discord_fake.rest import Request
from tests.discord_people import Guild, SlowStore, a_guild, guild, start_bot

__all__ = ["guild"]

OPENING = "Check-in circle"
GIVEN = "the talking piece is with you"


@dataclass
class FaultOnLine(Fault):
    """The fake's fault, but only on a channel message whose content contains ``text`` (so a test
    can fail exactly the line that gives someone the talking piece)."""

    text: str = ""

    def matches(self, request: Request) -> bool:
        body = request.body if isinstance(request.body, dict) else {}
        return super().matches(request) and self.text in str(body.get("content") or "")


def public(g: Guild) -> list[Message]:
    return g.fake.messages(g.channel, ephemeral=False)


def times_said(g: Guild, text: str) -> int:
    """How many messages in the circle's channel contain ``text``."""
    return sum(text in m.content for m in public(g))


def turn_of(g: Guild, who: str) -> str:
    """The start of the line that gives ``who`` (a Discord user id) the talking piece."""
    return f"<@{who}>, {GIVEN}"


async def gathered(g: Guild) -> Message:
    """Fran opens check-in-30 and Ada and Bea join and consent (typed); the opening message."""
    await (await g.slash(g.fran, "start", script="check-in-30")).response()
    opening = await g.posted(OPENING)
    for who in (g.ada, g.bea):
        await (await g.slash(who, "join")).response()
        await (await g.slash(who, "consent")).response()
    return opening


async def in_the_round(g: Guild) -> Message:
    """Fran begins and the check-in round opens with the piece given to Ada; that message."""
    await (await g.slash(g.fran, "begin")).response()
    await g.settle_time(120)  # the welcome and the agreement
    given = await g.posted(turn_of(g, str(g.ada.user.id)))
    hosted = g.hosted()
    assert hosted is not None and hosted.circle.holder == f"discord:{g.ada.user.id}"
    return given


def nothing_sent_twice(g: Guild) -> None:
    """Every message the bot posted was posted by one request (no resend, not even a deduplicated one)."""
    assert len(g.fake.rest_calls(SEND_MESSAGE)) == len(g.fake.messages(ephemeral=False)) == len(public(g))
    assert g.fake.nonce_hits == 0
    nonces = [m.nonce for m in public(g)]
    assert len(set(nonces)) == len(nonces)


def answered_in_time(callback: Callback) -> None:
    assert callback.accepted and not callback.late and callback.latency < 3.0


# ---------------------------------------------------------------------------- REST faults


async def test_a_rate_limited_line_arrives_once_and_the_circle_carries_on(guild: Guild) -> None:
    """Discord answers 429 to the opening, then twice to the line giving Bea the piece: discord.py
    waits and sends again; each line appears (and pings) once, and the circle goes on."""
    g = guild
    g.fake.rate_limit(SEND_MESSAGE, channel=g.channel, retry_after=0.05)
    opening = await gathered(g)
    assert times_said(g, OPENING) == 1
    assert [c.status for c in g.fake.rest_calls(SEND_MESSAGE)][:2] == [429, 200]
    given = await in_the_round(g)

    bea_turn = turn_of(g, str(g.bea.user.id))
    limited = FaultOnLine(SEND_MESSAGE, 429, count=2, retry_after=0.05, text=bea_turn)
    g.fake.rest.faults.append(limited)
    done = await g.fake.click(g.ada, given, "circle:done")
    answered_in_time(await done.response())
    to_bea = await g.posted(bea_turn)
    assert limited.hits == 2
    assert [c.status for c in g.fake.rest_calls(SEND_MESSAGE) if bea_turn in str(c.body.get("content"))] == [
        429,
        429,
        200,
    ]
    assert times_said(g, bea_turn) == 1
    assert sum(g.bea.user.id in m.pings.users for m in public(g)) == 1  # Bea's phone buzzed once

    # The circle carries on from the rate-limited message: Bea finishes with its button.
    await (await g.fake.click(g.bea, to_bea, "circle:done")).response()
    hosted = g.hosted()
    assert hosted is not None and hosted.circle.holder is None and hosted.circle.state.phase == 3
    assert times_said(g, OPENING) == 1 and opening.custom_ids() == ["circle:join", "circle:join_anonymous"]


@pytest.mark.parametrize("status", [500, 502])
async def test_an_announcement_that_failed_after_posting_appears_once(guild: Guild, status: int) -> None:
    """Discord posts the opening, then answers 5xx: discord.py sends it again a second later, and
    the nonce, made from the line's key, makes Discord hand back the first message, not post a second.
    The same for the line giving Bea the piece (one ping). The commands that said them still get
    their answers in time (deferred, as the resend takes over a second)."""
    g = guild
    g.fake.server_error(SEND_MESSAGE, status=status, commit=True, channel=g.channel)
    started = await g.slash(g.fran, "start", script="check-in-30")
    first = await started.response()
    answered_in_time(first)
    assert first.type == CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE and first.ephemeral
    assert "Done." in (await started.wait_original()).content
    [opening] = [m for m in public(g) if OPENING in m.content]
    assert [c.status for c in g.fake.rest_calls(SEND_MESSAGE)] == [status, 200] and g.fake.nonce_hits == 1
    sent = g.fake.rest_calls(SEND_MESSAGE)
    assert sent[0].body["nonce"] == sent[1].body["nonce"] == opening.nonce and opening.enforce_nonce
    # The nonce is the line's own (its key is the command's interaction id and its place in the
    # answer), not one made up per request: any later send of the line (the outbox's, after a
    # restart) is recognised too.
    assert opening.nonce in {nonce(f"{started.id}.{n}") for n in range(5)}

    # People join by the button on that one opening message.
    joined = await g.fake.click(g.ada, opening, "circle:join")
    assert "exactly what this circle keeps" in (await joined.response()).content
    await (await g.slash(g.ada, "consent")).response()
    await (await g.slash(g.bea, "join")).response()
    await (await g.slash(g.bea, "consent")).response()
    given = await in_the_round(g)

    bea_turn = turn_of(g, str(g.bea.user.id))
    failed = FaultOnLine(SEND_MESSAGE, status, commit=True, text=bea_turn)
    g.fake.rest.faults.append(failed)
    done = await g.fake.click(g.ada, given, "circle:done")
    answered_in_time(await done.response())
    await g.runtime.settle()
    assert failed.hits == 1 and g.fake.nonce_hits == 2
    assert times_said(g, bea_turn) == 1 and times_said(g, OPENING) == 1
    assert sum(g.bea.user.id in m.pings.users for m in public(g)) == 1
    hosted = g.hosted()
    assert hosted is not None and hosted.circle.holder == f"discord:{g.bea.user.id}"


# ---------------------------------------------------------------------------- the gateway


async def test_a_gateway_reconnect_mid_round_loses_and_repeats_nothing(guild: Guild) -> None:
    """Discord sends op 7 RECONNECT while Ada finishes her turn: the bot resumes its session, her
    click (sent while it was away) is replayed and handled once, and nothing starts again."""
    g = guild
    await gathered(g)
    given = await in_the_round(g)
    hosted = g.hosted()
    assert hosted is not None
    lines_before = len(public(g))

    await g.fake.send_reconnect()
    done = await g.fake.click(g.ada, given, "circle:done")  # while the bot reconnects
    answered_in_time(await done.response())
    await g.fake.wait_until(lambda: g.fake.resumes >= 1, what="a RESUME after op 7")
    bea_turn = await g.posted(turn_of(g, str(g.bea.user.id)))
    assert g.fake.gateway.connections[-1].kind == "resume"

    # The next command, typed after the reconnect, is handled too.
    passed = await g.slash(g.bea, "pass")
    answered_in_time(await passed.response())
    await g.runtime.settle()
    assert g.hosted() is hosted and hosted.circle.state.phase == 3  # the same circle, moved on
    assert g.fake.identifies == 1 and g.fake.resumes == 1 and g.adapter.readies == 1
    assert g.fake.command_syncs == 1  # /circle was not registered again
    assert times_said(g, OPENING) == 1 and times_said(g, GIVEN) == 2
    assert bea_turn.pings.users == {g.bea.user.id} and len(public(g)) > lines_before
    nothing_sent_twice(g)
    assert len(g.store.open_circles()) == 1


@pytest.mark.parametrize("resumable", [False, True])
async def test_an_invalid_session_mid_round_starts_nothing_twice(guild: Guild, resumable: bool) -> None:
    """Discord sends op 9 INVALID SESSION mid-round. Not resumable: the bot identifies afresh and
    ``on_ready`` fires again; resumable: it resumes. Either way the buttons and commands carry on
    where they were, and nothing is announced, opened or registered again."""
    g = guild
    await gathered(g)
    given = await in_the_round(g)
    hosted = g.hosted()
    client = g.adapter.client
    assert hosted is not None and client is not None
    lines_before = [m.content for m in public(g)]

    ready_again = asyncio.ensure_future(client.wait_for("ready", timeout=10))
    await g.fake.invalidate_session(resumable=resumable)
    if resumable:
        await g.fake.wait_until(lambda: g.fake.resumes >= 1, what="a RESUME after op 9 (resumable)")
        ready_again.cancel()
    else:
        await g.fake.wait_ready(identifies=2)
        await ready_again  # on_ready fires again (Discord started a new session)
    assert [m.content for m in public(g)] == lines_before  # the reconnect itself said nothing

    done = await g.fake.click(g.ada, given, "circle:done")
    answered_in_time(await done.response())
    bea_turn = await g.posted(turn_of(g, str(g.bea.user.id)))
    await (await g.fake.click(g.bea, bea_turn, "circle:pass")).response()
    await g.runtime.settle()

    assert g.adapter.readies == (1 if resumable else 2)
    assert (g.fake.identifies, g.fake.resumes) == ((1, 1) if resumable else (2, 0))
    assert g.fake.command_syncs == 1
    assert g.hosted() is hosted and hosted.circle.state.phase == 3
    assert times_said(g, OPENING) == 1 and times_said(g, GIVEN) == 2
    nothing_sent_twice(g)
    assert len(g.store.open_circles()) == 1


# ---------------------------------------------------------------------------- a restart


async def restart(g: Guild, db_url: str) -> None:
    """Stop the bot (its runtime and store) and start a new one over the same database and fake."""
    config, group = g.adapter.config, g.adapter.group_of(str(g.channel.id))
    await g.runtime.stop()
    g.store.close()
    g.runtime, g.store, g.adapter = await start_bot(g.fake, db_url, g.clock, config, group)


async def test_after_a_restart_mid_round_the_buttons_posted_before_still_work(db_url: str, clock: ManualClock) -> None:
    """The bot is restarted while Ada holds the piece. The new process says once that it is back;
    Ada's Done button, on the message the old process posted, still works in it, and so does
    Join on the opening. The unchanged ``/circle`` is not registered again, and nothing said
    before is said again."""
    async with a_guild(db_url, clock) as g:
        opening = await gathered(g)
        given = await in_the_round(g)
        lines_before = [m.content for m in public(g)]

        await restart(g, db_url)
        assert g.fake.identifies == 2 and g.fake.command_syncs == 1
        await g.runtime.settle()
        # The new process says where the circle is, once, and repeats nothing said before.
        [back] = [m.content for m in public(g)][len(lines_before) :]
        assert back.startswith("We are back") and f"<@{g.ada.user.id}> holds the piece" in back
        assert [m.content for m in public(g)][: len(lines_before)] == lines_before
        hosted = g.hosted()
        assert hosted is not None and hosted.circle.holder == f"discord:{g.ada.user.id}"

        done = await g.fake.click(g.ada, given, "circle:done")
        answer = await done.response()
        answered_in_time(answer)
        assert answer.type == CallbackType.DEFERRED_UPDATE_MESSAGE  # the button's message stays as it is
        await g.posted(turn_of(g, str(g.bea.user.id)))
        assert hosted.circle.holder == f"discord:{g.bea.user.id}"

        joined = await g.fake.click(g.cy, opening, "circle:join")  # a latecomer, by the old opening's button
        assert "exactly what this circle keeps" in (await joined.response()).content
        assert times_said(g, OPENING) == 1 and times_said(g, GIVEN) == 2 and times_said(g, "We are back") == 1
        nothing_sent_twice(g)  # not even the "we are back" line that the catch-up keeps in the outbox


# ---------------------------------------------------------------------------- a slow database


async def test_with_a_slow_database_commands_are_still_answered_in_time(db_url: str, clock: ManualClock) -> None:
    """Every commit takes two seconds. A typed command and a button click still get their first
    answer (a deferral) well inside Discord's three seconds, and the real answer follows."""
    async with a_guild(db_url, clock, store_class=SlowStore) as g:
        assert isinstance(g.store, SlowStore)
        await gathered(g)
        given = await in_the_round(g)
        g.store.stall = 2.0

        joined = await g.slash(g.cy, "join")
        first = await joined.response()
        answered_in_time(first)
        assert first.type == CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE and first.ephemeral
        assert DEFER_AFTER <= first.latency < 2.0  # deferred while the commit was still under way
        consent = await joined.wait_original(lambda m: "exactly what this circle keeps" in m.content)
        assert consent.ephemeral and consent.custom_ids()[0].startswith("circle:consent:")

        done = await g.fake.click(g.ada, given, "circle:done")
        first = await done.response()
        answered_in_time(first)
        assert first.type == CallbackType.DEFERRED_UPDATE_MESSAGE and DEFER_AFTER <= first.latency < 2.0
        to_bea = await g.posted(turn_of(g, str(g.bea.user.id)))
        assert to_bea.created_at - done.dispatched_at >= 2.0  # it waited for the commit: kept before said
        hosted = g.hosted()
        assert hosted is not None and hosted.circle.holder == f"discord:{g.bea.user.id}"
        assert all(not c.late for c in g.fake.callbacks)
        g.store.stall = 0.0  # a quick shutdown


async def test_a_line_discord_will_not_take_is_kept_and_said_at_the_next_start(db_url: str, clock: ManualClock) -> None:
    """Discord keeps refusing (429 beyond discord.py's retries) when Ada finishes her turn: the lines
    about it are not lost; the next process says them, once."""
    async with a_guild(db_url, clock) as g:
        await gathered(g)
        await in_the_round(g)
        g.fake.rate_limit(count=50, channel=g.channel)
        await (await g.slash(g.ada, "done")).response()
        await g.runtime.settle()
        assert [o.room for o in g.store.pending_outbox(["discord"])] == [str(g.channel.id)]
        bea_turn = turn_of(g, str(g.bea.user.id))
        assert not any(bea_turn in m.content for m in public(g))
        g.fake.rest.faults.clear()

        await restart(g, db_url)
        await g.posted(bea_turn)
        assert sum(bea_turn in m.content for m in public(g)) == 1
        await g.runtime.settle()
        assert g.store.pending_outbox(["discord"]) == []
