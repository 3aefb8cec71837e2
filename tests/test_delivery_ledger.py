"""Exactly-once delivery for platforms that redeliver input and deduplicate sends by id.

A durable adapter (Matrix) hands each message's platform id to the runtime: the id is kept
with the change the message made, and what the bot says about it is kept in an outbox until
sent. These tests crash the runtime between keeping and saying, and restart it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from adapters.console import ConsoleAdapter
from facilitator.front import handle_command
from facilitator.runtime.clock import ManualClock
from facilitator.runtime.host import Runtime
from facilitator.storage.store import Store
from facilitator.voice import Line


class DurableConsole(ConsoleAdapter):
    """The console, claiming a platform that deduplicates sends (as Matrix does with transaction ids)."""

    durable = True

    def __init__(self) -> None:
        super().__init__(io.StringIO(), room="room-1")
        self.keys: list[str] = []

    async def send(self, room: str, lines: Sequence[Line]) -> None:
        self.keys.extend(line.key for line in lines)
        await super().send(room, lines)


async def start(db_url: str, clock: ManualClock) -> tuple[Runtime, Store, DurableConsole]:
    store = Store(db_url)
    adapter = DurableConsole()
    runtime = Runtime(store, clock=clock, adapters=[adapter])
    await runtime.start()
    await runtime.settle()
    return runtime, store, adapter


async def command(runtime: Runtime, who: str, text: str, source: str) -> None:
    by = f"console:{who.lower()}"
    await handle_command(runtime, "console", "room-1", by, who, text, source=source)


async def test_a_message_that_changed_a_circle_is_not_acted_on_again_after_a_restart(
    db_url: str, clock: ManualClock
) -> None:
    runtime, store, _ = await start(db_url, clock)
    await command(runtime, "Fran", "start check-in-30", "$open")
    await command(runtime, "Ada", "join", "$ada-join")
    assert await runtime.handled("console", "$ada-join")
    await runtime.stop()
    store.close()

    runtime, store, _ = await start(db_url, clock)
    assert await runtime.handled("console", "$ada-join")  # known from the database, not memory
    assert not await runtime.handled("console", "$never-seen")
    hosted = runtime.circle_in("console", "room-1")
    assert hosted is not None and list(hosted.circle.state.participants) == ["console:ada"]
    await runtime.stop()
    store.close()


async def test_replies_are_keyed_by_the_message_they_answer(db_url: str, clock: ManualClock) -> None:
    runtime, store, adapter = await start(db_url, clock)
    await command(runtime, "Fran", "start check-in-30", "$open")
    await command(runtime, "Ada", "join", "$ada-join")
    await command(runtime, "Ada", "frobnicate", "$typo")  # help, not kept: keyed all the same
    joined = [k for k in adapter.keys if k.startswith("$ada-join.")]
    assert joined == [f"$ada-join.{n}" for n in range(len(joined))] and joined
    assert [k for k in adapter.keys if k.startswith("$typo.")] == ["$typo.0"]
    assert len(set(adapter.keys)) == len(adapter.keys)  # no two lines share a key
    await runtime.stop()
    store.close()


async def test_lines_kept_but_not_sent_before_a_crash_are_sent_at_start_under_the_same_keys(
    db_url: str, clock: ManualClock
) -> None:
    runtime, store, adapter = await start(db_url, clock)
    await command(runtime, "Fran", "start check-in-30", "$open")
    runtime.writer.sent = lambda key: None  # type: ignore[method-assign]  # the process dies before clearing
    await command(runtime, "Ada", "join", "$ada-join")
    first = [(line.key, line.plain()) for line in adapter.transcript if line.key.startswith("$ada-join.")]
    assert first
    await runtime.stop()
    store.close()

    runtime, store, adapter = await start(db_url, clock)
    again = [(line.key, line.plain()) for line in adapter.transcript if line.key.startswith("$ada-join.")]
    assert again == first  # the same words under the same keys: the platform shows them once
    assert store.pending_outbox(["console"]) == []  # sent, so cleared
    await runtime.stop()
    store.close()


async def test_what_was_sent_is_cleared_from_the_outbox(db_url: str, clock: ManualClock) -> None:
    runtime, store, _ = await start(db_url, clock)
    await command(runtime, "Fran", "start check-in-30", "$open")
    await command(runtime, "Ada", "join", "$ada-join")
    await runtime.settle()
    assert store.pending_outbox(["console"]) == []
    await runtime.stop()
    store.close()


async def test_a_kept_value_survives_a_restart(db_url: str) -> None:
    store = Store(db_url)
    assert store.get_value("matrix:@bot:example.org:sync") is None
    store.set_value("matrix:@bot:example.org:sync", "s1")
    store.set_value("matrix:@bot:example.org:sync", "s2")
    store.close()
    assert Store(db_url).get_value("matrix:@bot:example.org:sync") == "s2"


class FailingOnce(DurableConsole):
    """A platform whose sends fail (the token died, the network went) until told otherwise."""

    failing = True

    async def send(self, room: str, lines: Sequence[Line]) -> None:
        if FailingOnce.failing:
            raise ConnectionError("the platform is unreachable")
        await super().send(room, lines)


async def test_lines_whose_send_failed_stay_kept_and_go_out_at_the_next_start(db_url: str, clock: ManualClock) -> None:
    runtime, store, _ = await start(db_url, clock)
    await command(runtime, "Fran", "start check-in-30", "$open")
    await runtime.stop()
    store.close()

    store = Store(db_url)
    failing = FailingOnce()
    runtime = Runtime(store, clock=clock, adapters=[failing])
    await runtime.start()
    await command(runtime, "Ada", "join", "$ada-join")  # kept; saying it fails
    await runtime.settle()
    assert [o.key for o in store.pending_outbox(["console"])] == ["$ada-join"]
    await runtime.stop()
    store.close()

    FailingOnce.failing = False
    runtime, store, adapter = await start(db_url, clock)
    assert [line.key for line in adapter.transcript if line.key.startswith("$ada-join.")]  # said now
    assert store.pending_outbox(["console"]) == []
    await runtime.stop()
    store.close()


async def test_after_a_long_outage_old_room_lines_are_not_said_but_private_ones_are(
    db_url: str, clock: ManualClock
) -> None:
    runtime, store, _ = await start(db_url, clock)
    await command(runtime, "Fran", "start check-in-30", "$open")
    await command(runtime, "Ada", "join", "$ada-join")
    runtime.writer.sent = lambda key: None  # type: ignore[method-assign]  # the process dies before clearing
    await command(runtime, "Ada", "consent", "$ada-consent")
    await runtime.stop()
    store.close()

    clock.advance(3600)  # down for an hour: "someone has joined" is old news by now
    runtime, store, adapter = await start(db_url, clock)
    again = [line for line in adapter.transcript if line.key.startswith("$ada-consent.")]
    assert again and all(line.to == "console:ada" for line in again)  # her receipt still reaches her
    assert "recorded" in again[0].plain()
    assert store.pending_outbox(["console"]) == []
    await runtime.stop()
    store.close()
