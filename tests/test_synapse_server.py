"""The Synapse harness itself: a real homeserver, two real clients, a message between them."""

from __future__ import annotations

import secrets
import time
import urllib.request

import nio

from tests.synapse_server import SynapseServer


def unique(name: str) -> str:
    """A localpart no other test on the shared server uses."""
    return f"{name}-{secrets.token_hex(4)}"


async def logged_in(server: SynapseServer, user_id: str, password: str = "pw") -> nio.AsyncClient:
    client = nio.AsyncClient(server.url, user_id)
    response = await client.login(password)
    assert isinstance(response, nio.LoginResponse), response
    return client


async def test_two_users_talk_in_a_room(synapse: SynapseServer) -> None:
    alice_id = synapse.register(unique("alice"))
    bob_id = synapse.register(unique("bob"))
    assert alice_id.startswith("@alice-") and alice_id.endswith(":localhost")
    alice = await logged_in(synapse, alice_id)
    bob = await logged_in(synapse, bob_id)
    try:
        created = await alice.room_create(name="circle", invite=[bob_id])
        assert isinstance(created, nio.RoomCreateResponse), created
        room_id = created.room_id

        joined = await bob.join(room_id)
        assert isinstance(joined, nio.JoinResponse), joined
        first = await bob.sync(timeout=0)
        assert isinstance(first, nio.SyncResponse), first
        assert room_id in first.rooms.join

        sent = await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hello, bob"})
        assert isinstance(sent, nio.RoomSendResponse), sent

        # Long-poll until the message arrives (the server answers as soon as it has it).
        since, bodies = first.next_batch, []
        deadline = time.monotonic() + 30
        while "hello, bob" not in bodies and time.monotonic() < deadline:
            synced = await bob.sync(timeout=10_000, since=since)
            assert isinstance(synced, nio.SyncResponse), synced
            since = synced.next_batch
            room = synced.rooms.join.get(room_id)
            if room is not None:
                bodies += [
                    event.body
                    for event in room.timeline.events
                    if isinstance(event, nio.RoomMessageText) and event.sender == alice_id
                ]
        assert bodies == ["hello, bob"]
    finally:
        await alice.close()
        await bob.close()


async def test_restart_keeps_the_port_and_the_users(synapse: SynapseServer) -> None:
    carol_id = synapse.register(unique("carol"))
    url = synapse.url

    synapse.restart()

    assert synapse.url == url
    with urllib.request.urlopen(f"{url}/_matrix/client/versions", timeout=5) as response:
        assert response.status == 200
    carol = await logged_in(synapse, carol_id)
    try:
        whoami = await carol.whoami()
        assert isinstance(whoami, nio.WhoamiResponse), whoami
        assert whoami.user_id == carol_id
    finally:
        await carol.close()
