"""A bare matrix-nio echo bot: the baseline that ``bench/matrix_latency.py`` measures the facilitator against.

It answers every ``!echo WORDS`` text message with an ``m.notice`` saying ``WORDS`` in the same room,
and joins every room it is invited to. It is as small as a Matrix bot gets, but configured like the
facilitator's own client (``adapters/matrix/login.py``), so the comparison is fair:

- encryption on, with nio's SQLite crypto store in ``--store`` encrypted with a pickle key;
- ``store_sync_tokens=False`` (the facilitator keeps its sync position in its own database);
- nio's ``sync_forever`` with a 30 s long poll (the facilitator's ``SYNC_TIMEOUT_MS``), which
  also uploads, queries and claims keys and sends to-device messages between syncs;
- each answer sent with ``ignore_unverified_devices=True`` (encrypted for every device in the room).

What it leaves out is what the benchmark measures: no database, no exactly-once bookkeeping,
no command parsing beyond a prefix, no producer/consumer hand-over.

Run (the password and pickle key come from the environment)::

    ECHO_PASSWORD=pw ECHO_PICKLE=... python -m bench.matrix_echo \\
        --homeserver http://127.0.0.1:8008 --user @echo:localhost --store /tmp/echo-store
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time

import nio

PASSWORD_ENV = "ECHO_PASSWORD"
PICKLE_ENV = "ECHO_PICKLE"
SYNC_TIMEOUT_MS = 30_000


class EchoBot:
    """Answers ``PREFIX WORDS`` with an ``m.notice`` of ``WORDS``."""

    def __init__(self, client: nio.AsyncClient, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.started_ms = int(time.time() * 1000)
        self.answered = 0

    async def on_text(self, room: nio.MatrixRoom, event: nio.RoomMessageText) -> None:
        if event.sender == self.client.user_id or event.server_timestamp < self.started_ms:
            return  # our own words, or history from before we started
        body = event.body
        if not body.startswith(self.prefix) or (len(body) > len(self.prefix) and not body[len(self.prefix)].isspace()):
            return
        content = {"msgtype": "m.notice", "body": body[len(self.prefix) :].strip()}
        response = await self.client.room_send(room.room_id, "m.room.message", content, ignore_unverified_devices=True)
        if isinstance(response, nio.ErrorResponse):
            print(f"echo: could not answer in {room.room_id}: {response}", file=sys.stderr, flush=True)
        else:
            self.answered += 1

    async def on_invite(self, room: nio.MatrixRoom, event: nio.InviteMemberEvent) -> None:
        if event.state_key == self.client.user_id and event.membership == "invite":
            await self.client.join(room.room_id)


async def run(homeserver: str, user_id: str, store: str, prefix: str) -> int:
    password = os.environ.get(PASSWORD_ENV, "")
    pickle_key = os.environ.get(PICKLE_ENV, "")
    if not password or len(pickle_key) < 16:
        print(f"echo: set {PASSWORD_ENV} and {PICKLE_ENV} (16 characters or more)", file=sys.stderr)
        return 2
    os.makedirs(store, mode=0o700, exist_ok=True)
    config = nio.AsyncClientConfig(
        encryption_enabled=True,
        store_sync_tokens=False,
        pickle_key=pickle_key,
        max_limit_exceeded=0,
        max_timeouts=0,
        request_timeout=60,
    )
    client = nio.AsyncClient(homeserver, user_id, store_path=store, config=config)
    try:
        logged = await client.login(password, device_name="echo")
        if not isinstance(logged, nio.LoginResponse):
            print(f"echo: log-in failed: {logged}", file=sys.stderr)
            return 1
        bot = EchoBot(client, prefix)
        client.add_event_callback(bot.on_text, nio.RoomMessageText)
        client.add_event_callback(bot.on_invite, nio.InviteMemberEvent)
        loop = asyncio.get_running_loop()
        syncing = loop.create_task(client.sync_forever(timeout=SYNC_TIMEOUT_MS))
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, syncing.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await syncing
        print(f"echo: answered {bot.answered} commands", file=sys.stderr, flush=True)
        return 0
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.matrix_echo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--homeserver", required=True, help="client-server API base URL")
    parser.add_argument("--user", required=True, help="the echo bot's full Matrix id")
    parser.add_argument("--store", required=True, help="directory for nio's crypto store")
    parser.add_argument("--prefix", default="!echo", help="the command prefix (default !echo)")
    args = parser.parse_args(argv)
    sys.exit(asyncio.run(run(args.homeserver, args.user, args.store, args.prefix)))


if __name__ == "__main__":
    main()
