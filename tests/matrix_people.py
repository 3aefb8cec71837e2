"""People on a real Synapse, with real matrix-nio clients (encryption on), and the bot beside them.

A :class:`Person` logs in, syncs in the background, joins the direct rooms the bot opens with
them, and collects every ``m.notice`` and every ``m.file`` it sees (files are downloaded, and
decrypted, with :meth:`Person.download`). Tests wait for what a person would see (a
notice in the room, a private one in the direct room): waiting on a server, never on a timer.
:class:`ServeProcess` runs the bot as people run it, ``facilitator serve`` in a child process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import nio
from nio.crypto import decrypt_attachment

from adapters.matrix.adapter import MatrixAdapter
from facilitator.config import GroupConfig, MatrixConfig, ServeConfig
from facilitator.runtime.clock import Clock
from facilitator.runtime.host import Runtime
from facilitator.storage.store import Store
from tests.synapse_server import SynapseServer

PICKLE = "a test pickle passphrase"
WAIT = 60.0


def unique(name: str) -> str:
    """A localpart no other test on the shared server uses."""
    return f"{name}-{secrets.token_hex(3)}"


@dataclass
class Notice:
    room_id: str
    sender: str
    body: str
    content: dict[str, Any]
    event_id: str


@dataclass
class Person:
    """Someone in the circle, on their own Matrix client."""

    server: SynapseServer
    localpart: str
    store_dir: Path
    user_id: str = ""
    client: nio.AsyncClient = field(init=False)
    notices: list[Notice] = field(default_factory=list)
    files: list[Notice] = field(default_factory=list)
    """``m.file`` events (``body`` is the file's name; ``content`` has its ``url``, or ``file`` if encrypted)."""
    _task: asyncio.Task[None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self, display_name: str | None = None) -> Person:
        self.user_id = self.server.register(self.localpart)
        self.store_dir.mkdir(parents=True, exist_ok=True)
        config = nio.AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False, pickle_key=PICKLE)
        self.client = nio.AsyncClient(self.server.url, self.user_id, store_path=str(self.store_dir), config=config)
        logged = await self.client.login("pw")
        assert isinstance(logged, nio.LoginResponse), logged
        if display_name is not None:
            await self.client.set_displayname(display_name)
        self.client.add_event_callback(self._on_notice, nio.RoomMessageNotice)
        self.client.add_event_callback(self._on_invite, nio.InviteMemberEvent)
        self.client.add_event_callback(self._on_file, (nio.RoomMessageFile, nio.RoomEncryptedFile))
        await self.client.sync(timeout=0)
        if self.client.should_upload_keys:
            await self.client.keys_upload()
        self._task = asyncio.get_running_loop().create_task(self.client.sync_forever(timeout=5_000))
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.client.close()

    async def _on_notice(self, room: nio.MatrixRoom, event: nio.RoomMessageNotice) -> None:
        self.notices.append(Notice(room.room_id, event.sender, event.body, event.source["content"], event.event_id))
        self._changed.set()

    async def _on_file(self, room: nio.MatrixRoom, event: nio.RoomMessageFile | nio.RoomEncryptedFile) -> None:
        self.files.append(Notice(room.room_id, event.sender, event.body, event.source["content"], event.event_id))
        self._changed.set()

    async def download(self, file: Notice) -> bytes:
        """The bytes of an ``m.file`` this person received, decrypted if it came encrypted."""
        encrypted = file.content.get("file")
        url = encrypted["url"] if encrypted else file.content["url"]
        got = await self.client.download(mxc=url)
        assert isinstance(got, nio.MemoryDownloadResponse), got
        if not encrypted:
            return bytes(got.body)
        plain = decrypt_attachment(got.body, encrypted["key"]["k"], encrypted["hashes"]["sha256"], encrypted["iv"])
        return bytes(plain)

    async def _on_invite(self, room: nio.MatrixRoom, event: nio.InviteMemberEvent) -> None:
        if event.state_key == self.user_id and event.membership == "invite":
            await self.client.join(room.room_id)  # the bot's direct room: accept, as Element users do
        self._changed.set()

    async def create_room(self, *, encrypted: bool, invite: list[str]) -> str:
        initial = [nio.event_builders.EnableEncryptionBuilder().as_dict()] if encrypted else []
        created = await self.client.room_create(name="Circle", invite=invite, initial_state=initial)
        assert isinstance(created, nio.RoomCreateResponse), created
        await self.until(lambda: created.room_id in self.client.rooms)
        return str(created.room_id)

    async def join(self, room_id: str) -> None:
        joined = await self.client.join(room_id)
        assert isinstance(joined, nio.JoinResponse), joined
        await self.until(lambda: room_id in self.client.rooms)

    async def say(self, room_id: str, text: str) -> str:
        """Type ``text`` in the room; returns the event id."""
        sent = await self.client.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": text}, ignore_unverified_devices=True
        )
        assert isinstance(sent, nio.RoomSendResponse), sent
        return str(sent.event_id)

    async def until(self, condition: Callable[[], object], timeout: float = WAIT) -> None:
        """Wait (on the server, not a timer) until ``condition()`` is true."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.localpart}: timed out waiting; notices: {[n.body for n in self.notices]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 0.2)

    async def expect(self, text: str, *, room_id: str | None = None, after: int = 0) -> Notice:
        """The first notice (from index ``after``) containing ``text`` (in ``room_id``, if given)."""
        found: list[Notice] = []

        def seen() -> bool:
            found[:] = [n for n in self.notices[after:] if text in n.body and (room_id is None or n.room_id == room_id)]
            return bool(found)

        await self.until(seen)
        return found[0]

    def private(self, room_id: str) -> list[Notice]:
        """Notices this person saw outside the circle's room (the bot's direct room)."""
        return [n for n in self.notices if n.room_id != room_id]


def bot_config(server: SynapseServer, store_dir: Path, **overrides: Any) -> MatrixConfig:
    """A new bot account on ``server`` (registered here) and its configuration.

    Its password and pickle key are in TEST_BOT_PASSWORD ("pw") and TEST_BOT_PICKLE: set them
    with ``monkeypatch.setenv`` (see :func:`bot_env`)."""
    values: dict[str, Any] = {
        "homeserver": server.url,
        "user_id": server.register(unique("facilitator-bot")),
        "password_env": "TEST_BOT_PASSWORD",
        "pickle_key_env": "TEST_BOT_PICKLE",
        "store_dir": store_dir,
        "allowed_inviters": (":localhost",),
        "max_backoff_seconds": 1.0,
    }
    values.update(overrides)
    return MatrixConfig(**values)


BOT_ENV = {"TEST_BOT_PASSWORD": "pw", "TEST_BOT_PICKLE": "the bot's own pickle passphrase"}


@dataclass
class Bot:
    runtime: Runtime
    store: Store
    adapter: MatrixAdapter

    async def stop(self) -> None:
        await self.runtime.stop()
        self.store.close()


async def start_bot(config: MatrixConfig, db_url: str, clock: Clock, groups: tuple[GroupConfig, ...] = ()) -> Bot:
    """The bot, its runtime holding the configuration serve would give it (coordinators under ``groups``)."""

    def group_of(room: str) -> GroupConfig | None:
        return next((g for g in groups if room in g.matrix_rooms), None)

    store = Store(db_url)
    adapter = MatrixAdapter(config, group_of)
    runtime = Runtime(store, clock=clock, adapters=[adapter], config=ServeConfig(matrix=config, groups=groups))
    await runtime.start()
    await adapter.wait_ready()
    return Bot(runtime, store, adapter)


async def people_in_a_room(
    server: SynapseServer, base: Path, bot_user: str, *, encrypted: bool, names: tuple[str, ...] = ("Ada", "Bea", "Cy")
) -> tuple[Person, list[Person], str]:
    """Fran (the room's creator) and ``names``, on their own clients, in a new room with the bot invited."""
    fran = await Person(server, unique("fran"), base / "fran").start("Fran")
    people = [await Person(server, unique(n.lower()), base / n).start(n) for n in names]
    room = await fran.create_room(encrypted=encrypted, invite=[bot_user] + [p.user_id for p in people])
    for person in people:
        await person.join(room)
    return fran, people, room


async def everyone_sees(people: list[Person], room: str, count: int, bot_user: str) -> None:
    """Until every client knows all ``count`` members (and so their devices), the bot among them
    as joined (the bot never acts on what was said before it joined), before anyone speaks."""

    def ready(p: Person) -> bool:
        joined = p.client.rooms.get(room)
        return joined is not None and len(joined.users) == count and bot_user not in joined.invited_users

    for person in people:
        await person.until(partial(ready, person))


def write_config(path: Path, config: MatrixConfig, db_url: str) -> Path:
    """A serve configuration file for ``config`` (secrets stay in the environment)."""
    import yaml

    matrix = config.model_dump(mode="json", exclude_defaults=False)
    path.write_text(yaml.safe_dump({"database": db_url, "matrix": matrix}), encoding="utf-8")
    return path


class ServeProcess:
    """``facilitator serve --config FILE`` in a child process."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path, self.log_path = config_path, log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, **BOT_ENV}
        command = [sys.executable, "-m", "facilitator.cli", "serve", "--config", str(self.config_path), "-v"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)

    def kill(self) -> None:
        """SIGKILL: no goodbye, nothing flushed."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)

    def exited(self, timeout: float) -> int:
        """Its exit status, once it has exited by itself (waiting at most ``timeout`` seconds)."""
        assert self.process is not None
        return self.process.wait(timeout)

    def output(self) -> str:
        """Everything it has written (stdout and stderr)."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")
