"""The fake gateway: a websocket speaking Discord's gateway protocol v10, JSON encoding, uncompressed.

HELLO on connect; IDENTIFY → READY then GUILD_CREATE; heartbeats answered with HEARTBEAT_ACK;
RESUME replays what the session missed, then RESUMED (an unknown or invalidated session gets
INVALID_SESSION false); REQUEST_GUILD_MEMBERS → one GUILD_MEMBERS_CHUNK. Dispatches carry a
per-session sequence number and are kept, so a resumed session receives events sent while it was
away, as on Discord. A bad token closes with 4004, a privileged intent that is not enabled with 4014.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from tests.discord_fake.state import JSON

if TYPE_CHECKING:
    from tests.discord_fake.fake import DiscordFake

HELLO, HEARTBEAT, IDENTIFY, PRESENCE, RESUME, RECONNECT = 10, 1, 2, 3, 6, 7
REQUEST_MEMBERS, INVALID_SESSION, HEARTBEAT_ACK, DISPATCH = 8, 9, 11, 0

INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15
PRIVILEGED = {
    "members": INTENT_GUILD_MEMBERS,
    "presences": INTENT_GUILD_PRESENCES,
    "message_content": INTENT_MESSAGE_CONTENT,
}


@dataclass
class Session:
    """A gateway session: what IDENTIFY created and RESUME continues."""

    id: str
    intents: int
    seq: int = 0
    sent: list[JSON] = field(default_factory=list)
    connection: Connection | None = None
    resumable: bool = True


@dataclass
class Connection:
    """One websocket the client opened, and what happened on it."""

    ws: web.WebSocketResponse
    path: str
    query: dict[str, str]
    session: Session | None = None
    kind: str | None = None  # "identify" or "resume", once the client said which
    heartbeats: int = 0
    close_code: int | None = None
    received: list[JSON] = field(default_factory=list)


class Gateway:
    """The websocket side of the fake. Tests reach it through ``DiscordFake``."""

    def __init__(self, fake: DiscordFake) -> None:
        self.fake = fake
        self.connections: list[Connection] = []
        self.sessions: dict[str, Session] = {}
        self.session: Session | None = None
        self.ack_heartbeats = True

    @property
    def live(self) -> Connection | None:
        session = self.session
        if session is None or session.connection is None or session.connection.ws.closed:
            return None
        return session.connection

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        conn = Connection(ws=ws, path=request.path, query=dict(request.query))
        self.connections.append(conn)
        self.fake._changed()
        try:
            if request.query.get("encoding", "json") != "json":
                await self._close(conn, 4002, "only JSON encoding is faked")
                return ws
            await self._send(
                conn,
                {"op": HELLO, "d": {"heartbeat_interval": self.fake.heartbeat_interval_ms, "_trace": ["fake"]}},
            )
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    await self._close(conn, 4002, "decode error")
                    break
                payload = json.loads(msg.data)
                conn.received.append(payload)
                await self._on_payload(conn, payload)
        finally:
            conn.close_code = conn.close_code or ws.close_code
            self.fake._changed()
        return ws

    async def _on_payload(self, conn: Connection, payload: JSON) -> None:
        op = payload.get("op")
        raw = payload.get("d")
        data: JSON = raw if isinstance(raw, dict) else {}
        if op == HEARTBEAT:
            conn.heartbeats += 1
            if self.ack_heartbeats:
                await self._send(conn, {"op": HEARTBEAT_ACK, "d": None})
        elif op == IDENTIFY:
            await self._identify(conn, data)
        elif op == RESUME:
            await self._resume(conn, data)
        elif conn.session is None:
            await self._close(conn, 4003, "Not authenticated.")
        elif op == REQUEST_MEMBERS:
            await self._members_chunk(conn, data)
        elif op == PRESENCE:
            pass
        else:
            await self._close(conn, 4001, "Unknown opcode.")

    async def _identify(self, conn: Connection, data: JSON) -> None:
        if conn.session is not None:
            await self._close(conn, 4005, "Already authenticated.")
            return
        if data.get("token") != self.fake.token:
            await self._close(conn, 4004, "Authentication failed.")
            return
        intents = int(data.get("intents", 0))
        for name, bit in PRIVILEGED.items():
            if intents & bit and name not in self.fake.privileged_intents:
                await self._close(conn, 4014, "Disallowed intent(s).")
                return
        if self.session is not None:
            self.session.resumable = False
        session = Session(id=secrets.token_hex(16), intents=intents)
        self.sessions[session.id] = session
        self.session = session
        conn.session, conn.kind = session, "identify"
        session.connection = conn
        ready: JSON = {
            "v": 10,
            "user": {**self.fake.bot.payload(), "verified": True, "mfa_enabled": False, "email": None},
            "guilds": [{"id": str(self.fake.guild.id), "unavailable": True}],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": f"ws://127.0.0.1:{self.fake.port}/gateway-resume",
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
            "auth": {},
            "application": {"id": str(self.fake.application_id), "flags": self.fake.application_flags},
            "_trace": ["fake"],
        }
        if "shard" in data:
            ready["shard"] = data["shard"]
        await self.dispatch("READY", ready)
        if intents & INTENT_GUILDS:
            await self.dispatch("GUILD_CREATE", self.fake.guild.payload(joined_at=self.fake.joined_at))
        self.fake.identifies += 1
        self.fake._changed()

    async def _resume(self, conn: Connection, data: JSON) -> None:
        if data.get("token") != self.fake.token:
            await self._close(conn, 4004, "Authentication failed.")
            return
        session = self.sessions.get(str(data.get("session_id")))
        if session is None or not session.resumable or session is not self.session:
            await self._send(conn, {"op": INVALID_SESSION, "d": False})
            return
        if session.connection is not None and not session.connection.ws.closed:
            await session.connection.ws.close(code=4000)
        conn.session, conn.kind = session, "resume"
        session.connection = conn
        seq = int(data.get("seq") or 0)
        for event in session.sent:
            if event["s"] > seq:
                await self._send(conn, event)
        await self.dispatch("RESUMED", {"_trace": ["fake"]})
        self.fake.resumes += 1
        self.fake._changed()

    async def _members_chunk(self, conn: Connection, data: JSON) -> None:
        members = list(self.fake.guild.members.values())
        ids = data.get("user_ids")
        if ids:
            wanted = {int(i) for i in (ids if isinstance(ids, list) else [ids])}
            members = [m for m in members if m.id in wanted]
        elif data.get("query"):
            members = [m for m in members if m.user.username.lower().startswith(str(data["query"]).lower())]
        chunk: JSON = {
            "guild_id": str(self.fake.guild.id),
            "members": [m.payload() for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
        }
        if "nonce" in data:
            chunk["nonce"] = data["nonce"]
        await self.dispatch("GUILD_MEMBERS_CHUNK", chunk)

    async def dispatch(self, event: str, data: JSON, *, intent: int = 0) -> None:
        """Send a DISPATCH on the current session (kept for a resume if the client is away).

        With ``intent``, only a session that asked for it receives the event.
        """
        session = self.session
        if session is None or (intent and not session.intents & intent):
            return
        session.seq += 1
        event_payload = {"op": DISPATCH, "t": event, "s": session.seq, "d": data}
        session.sent.append(event_payload)
        conn = session.connection
        if conn is not None and not conn.ws.closed:
            await self._send(conn, event_payload)

    async def send_op(self, op: int, data: Any) -> None:
        """Send a non-dispatch opcode (7 RECONNECT, 9 INVALID_SESSION, 1 HEARTBEAT) to the live connection."""
        conn = self.live
        if conn is None:
            raise RuntimeError("the bot has no live gateway connection")
        await self._send(conn, {"op": op, "d": data, "s": None, "t": None})

    async def close_live(self, code: int) -> None:
        conn = self.live
        if conn is None:
            raise RuntimeError("the bot has no live gateway connection")
        await self._close(conn, code, "closed by the test")

    async def close_all(self) -> None:
        for conn in self.connections:
            if not conn.ws.closed:
                await self._close(conn, 1001, "going away")

    async def _send(self, conn: Connection, payload: JSON) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await conn.ws.send_str(json.dumps(payload))

    async def _close(self, conn: Connection, code: int, reason: str) -> None:
        conn.close_code = code
        await conn.ws.close(code=code, message=reason.encode())
        self.fake._changed()
