"""The store: everything the runtime keeps, written one accepted event per transaction.

Synchronous on purpose: the runtime calls it from one writer thread (see
:mod:`facilitator.runtime.writer`), batching the events that arrive while a commit is
under way into the next transaction (group commit). Each event's state and records are
always in the same transaction as each other, never split.

SQLite is the default (WAL, foreign keys on, ``synchronous=NORMAL``); any SQLAlchemy URL
works, PostgreSQL included. The schema comes from Alembic migrations, run at open.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, delete, event, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.pool import StaticPool

from facilitator.engine import actions as A
from facilitator.storage import DEFAULT_URL
from facilitator.storage.migrate import upgrade
from facilitator.storage.statements import (
    CAP_ATTENDANCE,
    COUNT_PASSED,
    COUNT_SPOKEN,
    END_ATTENDANCE,
    INSERT_ATTENDANCE,
    INSERT_AUDIT,
    INSERT_CONSENT,
    INSERT_HANDLED,
    INSERT_OUTBOX,
    INSERT_PROMPT_USE,
    UNLINK_UNNAMED,
    Batch,
)
from facilitator.storage.tables import (
    adapter_state_table as adapter_state,
)
from facilitator.storage.tables import (
    attendance_table as attendance,
)
from facilitator.storage.tables import (
    audit_table as audit,
)
from facilitator.storage.tables import (
    circles_table as circles,
)
from facilitator.storage.tables import (
    consent_table as consent,
)
from facilitator.storage.tables import (
    groups_table as groups,
)
from facilitator.storage.tables import (
    handled_table as handled,
)
from facilitator.storage.tables import (
    members_table as members,
)
from facilitator.storage.tables import (
    outbox_table as outbox,
)
from facilitator.storage.tables import (
    prompt_use_table as prompt_use,
)
from facilitator.storage.tables import (
    scripts_table as scripts,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NewCircle:
    """What the store needs to create a circle row."""

    id: str
    group_id: int
    script_name: str
    title: str
    script_hash: str
    script_text: str
    facilitator: str
    facilitator_name: str
    seat_salt: str
    at: float


@dataclass(frozen=True, slots=True)
class Outgoing:
    """Lines to say in a room, kept in the outbox until sent (``lines`` as plain dicts)."""

    platform: str
    room: str
    key: str
    lines: list[dict[str, Any]]
    at: float = 0.0
    """When the change these lines are about was made (the runtime's clock)."""


@dataclass(frozen=True, slots=True)
class Write:
    """One accepted event's effect on one circle: its new state and the records it implies."""

    circle_id: str
    group_id: int
    platform: str
    status: str
    state: dict[str, Any]
    next_deadline: float | None
    at: float
    records: tuple[A.Record, ...]
    new: NewCircle | None = None
    source: str | None = None
    """The platform id of the incoming message that made this change (kept as handled)."""
    outgoing: Outgoing | None = None
    """What the bot will say about it, for a platform that delivers through the outbox."""


@dataclass(frozen=True, slots=True)
class OpenCircle:
    """A circle that has not ended, as stored: what resuming it needs."""

    id: str
    group_id: int
    platform: str
    room: str
    script_name: str
    script_text: str
    script_hash: str
    state: dict[str, Any]
    updated_at: float


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An SQLAlchemy engine for ``url``, with SQLite tuned for a single writer."""
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False},
            poolclass=StaticPool if memory else None,
            hide_parameters=True,  # an error's log line must not carry names, ids or circle state
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, hide_parameters=True)


def seat_of(salt: str, member: str, anonymous: bool = False) -> str:
    """The salted hash that links one person's attendance rows within one live circle: named and
    anonymous stints of the same person get different seats, so neither points at the other."""
    said = f"{salt}:{member}:anonymous" if anonymous else f"{salt}:{member}"
    return hashlib.sha256(said.encode()).hexdigest()[:32]


class Store:
    """Reads and writes for the runtime. Call from one thread at a time."""

    def __init__(self, url: str = DEFAULT_URL, *, lawful_basis: str = "consent") -> None:
        self.url = url
        self.lawful_basis = lawful_basis
        """Recorded with every consent entry (the deployment's ``privacy.lawful_basis``)."""
        self.engine = make_engine(url)
        with self.engine.begin() as conn:
            upgrade(conn)
        # Caches, changed only once a transaction has committed (see apply): a rolled-back
        # transaction must not leave a member id or a seat salt behind that the database lacks.
        self._member_ids: dict[str, tuple[int, str | None]] = {}
        self._salts: dict[str, str] = {}
        self._tx_members: dict[str, tuple[int, str | None]] = {}
        self._tx_salts: dict[str, str | None] = {}

    def forget_cached(self, key: str) -> None:
        """Drop what the store remembers in memory about ``key`` (after it was erased)."""
        self._member_ids.pop(key, None)

    def close(self) -> None:
        """Release the connections."""
        self.engine.dispose()

    # ------------------------------------------------------------------ groups and prompts

    def ensure_group(
        self,
        platform: str,
        room: str,
        name: str | None = None,
        region: str | None = None,
        sector: str | None = None,
        timezone: str | None = None,
    ) -> int:
        """The id of the group for ``room`` on ``platform``, created if new."""
        with self.engine.begin() as conn:
            row = conn.execute(select(groups.c.id).where(groups.c.platform == platform, groups.c.room == room)).first()
            said = (("name", name), ("region", region), ("sector", sector), ("timezone", timezone))
            if row is not None:
                given = {k: v for k, v in said if v}
                if given:  # only what is said changes: naming a group keeps its region and sector
                    conn.execute(update(groups).where(groups.c.id == row[0]).values(**given))
                return int(row[0])
            result = conn.execute(insert(groups).values(platform=platform, room=room, **{k: v for k, v in said if v}))
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def sync_groups(self, config: Any) -> None:
        """Write a serve configuration's groups (names, regions, sectors, time zones) for every room it lists."""
        for group in config.groups:
            for platform, rooms in (("matrix", group.matrix_rooms), ("discord", group.discord_channels)):
                for room in rooms:
                    self.ensure_group(platform, str(room), group.name, group.region, group.sector, group.timezone)

    def prompt_history(self, group_id: int, bank: str) -> list[str]:
        """Prompt ids this group was given from ``bank``, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(prompt_use.c.prompt_id)
                .where(prompt_use.c.group_id == group_id, prompt_use.c.bank == bank)
                .order_by(prompt_use.c.at, prompt_use.c.id)
            )
            return [r[0] for r in rows]

    # ------------------------------------------------------------------ circles

    def open_circles(self) -> list[OpenCircle]:
        """Every circle that has not ended, for resuming after a restart."""
        query = (
            select(
                circles.c.id,
                circles.c.group_id,
                groups.c.platform,
                groups.c.room,
                circles.c.script_name,
                scripts.c.text.label("script_text"),
                circles.c.script_hash,
                circles.c.state_json,
                circles.c.updated_at,
                circles.c.seat_salt,
            )
            .join(groups, groups.c.id == circles.c.group_id)
            .join(scripts, scripts.c.hash == circles.c.script_hash)
            .where(circles.c.status != "ended")
        )
        found = []
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                if row.seat_salt:
                    self._salts[row.id] = row.seat_salt
                found.append(
                    OpenCircle(
                        row.id,
                        row.group_id,
                        row.platform,
                        row.room,
                        row.script_name,
                        row.script_text,
                        row.script_hash,
                        orjson.loads(row.state_json),
                        row.updated_at,
                    )
                )
        return found

    def apply(self, writes: Sequence[Write], sent: Sequence[str] = ()) -> None:
        """Write a batch of accepted events in one transaction (all or nothing); ``sent`` are
        outbox keys whose lines have been delivered since the last batch (deleted)."""
        self._tx_members, self._tx_salts = {}, {}
        try:
            with self.engine.begin() as conn:
                batch = Batch()
                for write in writes:
                    self._apply_one(conn, batch, write)
                batch.run(conn)
                if sent:
                    conn.execute(delete(outbox).where(outbox.c.key.in_(list(sent))))
        finally:
            members, salts = self._tx_members, self._tx_salts
            self._tx_members, self._tx_salts = {}, {}
        # Committed: now the caches may learn what the transaction did.
        self._member_ids.update(members)
        for circle_id, salt in salts.items():
            if salt is None:
                self._salts.pop(circle_id, None)
            else:
                self._salts[circle_id] = salt
        if any(w.status == "ended" for w in writes):
            try:
                self.checkpoint()
            except Exception:  # the batch is kept; the next ended circle checkpoints again
                log.warning("WAL checkpoint after a circle ended did not complete", exc_info=True)

    def checkpoint(self) -> bool:
        """Fold the SQLite WAL back into the database file and empty it.

        With ``secure_delete`` on, the bytes of a scrubbed state are zeroed in the file, but
        the WAL keeps old copies of pages until a checkpoint: so an ended circle's live state
        (who was there, anonymous attendees' platform ids) does not linger on disk. False if a
        reader (an export under way, a backup) kept it from completing.
        """
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect() as conn:
                busy = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()
            if busy is not None and busy[0]:
                log.warning("WAL checkpoint was blocked by a reader; it will be retried")
                return False
        return True

    def _apply_one(self, conn: Connection, batch: Batch, write: Write) -> None:
        if write.new is not None:
            self._create_circle(conn, write)
        if write.source is not None:
            batch.add(INSERT_HANDLED, {"platform": write.platform, "source": write.source, "at": write.at})
        if write.outgoing is not None:
            out = write.outgoing
            row = {
                "platform": out.platform,
                "room": out.room,
                "key": out.key,
                "lines_json": orjson.dumps(out.lines).decode("utf-8"),
                "at": write.at,
            }
            batch.add(INSERT_OUTBOX, row)
        ended = write.status == "ended"
        started_at = ended_at = None
        capped: list[dict[str, Any]] = []
        for record in write.records:
            if isinstance(record, A.CircleStarted):
                started_at = record.at
            elif isinstance(record, A.CircleFinished):
                ended_at = record.at
                if record.idle:  # after this write's own attendance ends (the batch keeps order)
                    capped.append({"b_circle": write.circle_id, "b_at": record.at})
            else:
                self._record(conn, batch, write, record)
        for row in capped:
            batch.add(CAP_ATTENDANCE, row)
        state = _scrubbed(write.state) if ended else write.state
        batch.circle(
            write.circle_id,
            {
                "b_id": write.circle_id,
                "b_status": write.status,
                "b_state": state,  # encoded once per circle per batch, in Batch.run
                "b_deadline": write.next_deadline,
                "b_at": write.at,
                "b_started": started_at,
                "b_ended": ended_at,
                "b_drop_salt": ended,
            },
        )
        if ended:
            self._tx_salts[write.circle_id] = None

    def _create_circle(self, conn: Connection, write: Write) -> None:
        new = write.new
        assert new is not None
        facilitator_id = self._member_id(conn, new.facilitator, write.platform, new.facilitator_name, new.at)
        if conn.execute(select(scripts.c.hash).where(scripts.c.hash == new.script_hash)).first() is None:
            conn.execute(insert(scripts).values(hash=new.script_hash, name=new.script_name, text=new.script_text))
        conn.execute(
            insert(circles).values(
                id=new.id,
                group_id=new.group_id,
                script_name=new.script_name,
                title=new.title,
                script_hash=new.script_hash,
                facilitator_id=facilitator_id,
                status=write.status,
                opened_at=new.at,
                updated_at=new.at,
                seat_salt=new.seat_salt,
                state_json="{}",
            )
        )
        self._tx_salts[new.id] = new.seat_salt

    def _record(self, conn: Connection, batch: Batch, write: Write, record: A.Record) -> None:
        cid = write.circle_id
        if isinstance(record, A.ConsentGiven):
            batch.add(
                INSERT_CONSENT,
                {
                    "member_id": self._named_member(conn, write, record),
                    "anonymous": record.anonymous,
                    "scope": record.scope,
                    "decision": "given",
                    "text_hash": record.text_hash,
                    "text_version": record.version,
                    "at": record.at,
                    "circle_id": cid,
                    "group_id": write.group_id,
                    "via": write.platform,
                    "lawful_basis": self.lawful_basis,
                },
            )
        elif isinstance(record, A.AttendanceStarted):
            seat = self._seat(conn, cid, record.member, record.anonymous)
            if not record.anonymous:
                batch.add(UNLINK_UNNAMED, {"b_circle": cid, "b_seat": seat, "b_new_seat": secrets.token_hex(16)})
            batch.add(
                INSERT_ATTENDANCE,
                {
                    "circle_id": cid,
                    "member_id": self._named_member(conn, write, record),
                    "anonymous": record.anonymous,
                    "seat": seat,
                    "joined_at": record.at,
                    "left_at": None,
                    "turns_spoken": 0,
                    "turns_passed": 0,
                },
            )
        elif isinstance(record, A.AttendanceEnded):
            batch.add(END_ATTENDANCE, {**self._seats(conn, cid, record.member), "b_at": record.at})
        elif isinstance(record, A.TurnRecorded):
            statement = COUNT_PASSED if record.outcome == "passed" else COUNT_SPOKEN
            batch.add(statement, self._seats(conn, cid, record.member))
        elif isinstance(record, A.PromptUsed):
            row = {"group_id": write.group_id, "bank": record.bank, "prompt_id": record.prompt_id, "at": record.at}
            batch.add(INSERT_PROMPT_USE, row)
        elif isinstance(record, A.Audit):
            actor = self._member_id(conn, record.actor, write.platform, None, record.at)
            row = {
                "circle_id": cid,
                "actor_id": actor,
                "action": record.action,
                "detail": record.detail,
                "at": record.at,
            }
            batch.add(INSERT_AUDIT, row)

    def _salt(self, conn: Connection, circle_id: str) -> str:
        salt = self._tx_salts.get(circle_id) or self._salts.get(circle_id)
        if salt is None:
            salt = conn.execute(select(circles.c.seat_salt).where(circles.c.id == circle_id)).scalar()
            if not salt:
                raise RuntimeError(f"circle {circle_id} has no seat salt: it has ended, or is not stored")
            self._tx_salts[circle_id] = salt
        return salt

    def _seat(self, conn: Connection, circle_id: str, member: str, anonymous: bool) -> str:
        return seat_of(self._salt(conn, circle_id), member, anonymous)

    def _seats(self, conn: Connection, circle_id: str, member: str) -> dict[str, str]:
        """The parameters that find ``member``'s open attendance row, named or anonymous."""
        salt = self._salt(conn, circle_id)
        return {"b_circle": circle_id, "b_seat": seat_of(salt, member), "b_seat_anonymous": seat_of(salt, member, True)}

    def _named_member(self, conn: Connection, write: Write, record: A.ConsentGiven | A.AttendanceStarted) -> int | None:
        """The member row for a named person; None for an anonymous one (never stored)."""
        if record.anonymous:
            return None
        return self._member_id(conn, record.member, write.platform, record.name, record.at)

    def _member_id(self, conn: Connection, key: str, platform: str, name: str | None, at: float) -> int:
        """The member row for ``key``, created if new; its display name kept up to date."""
        cached = self._tx_members.get(key) or self._member_ids.get(key)
        if cached is not None and (name is None or cached[1] == name):
            return cached[0]
        row = conn.execute(select(members.c.id, members.c.display_name).where(members.c.key == key)).first()
        if row is None:
            result = conn.execute(insert(members).values(key=key, platform=platform, display_name=name, created_at=at))
            member_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            shown = name
        else:
            member_id, shown = int(row.id), row.display_name
            if name is not None and shown != name:
                conn.execute(update(members).where(members.c.id == member_id).values(display_name=name))
                shown = name
        self._tx_members[key] = (member_id, shown)
        return member_id

    # ------------------------------------------------------------------ reading records

    def attendance_of(self, circle_id: str) -> list[dict[str, Any]]:
        """Attendance rows of a circle with display names (None for anonymous)."""
        query = (
            select(
                members.c.display_name,
                attendance.c.anonymous,
                attendance.c.joined_at,
                attendance.c.left_at,
                attendance.c.turns_spoken,
                attendance.c.turns_passed,
            )
            .select_from(attendance.outerjoin(members, members.c.id == attendance.c.member_id))
            .where(attendance.c.circle_id == circle_id)
            .order_by(attendance.c.id)
        )
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def consent_log(self, circle_id: str | None = None) -> list[dict[str, Any]]:
        """Consent ledger entries (optionally of one circle), oldest first."""
        query = (
            select(consent, members.c.display_name)
            .select_from(consent.outerjoin(members, members.c.id == consent.c.member_id))
            .order_by(consent.c.id)
        )
        if circle_id is not None:
            query = query.where(consent.c.circle_id == circle_id)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def circle_row(self, circle_id: str) -> dict[str, Any] | None:
        """The stored circle row, as a dict."""
        with self.engine.connect() as conn:
            row = conn.execute(select(circles).where(circles.c.id == circle_id)).first()
            return dict(row._mapping) if row else None

    def audit_of(self, circle_id: str) -> list[tuple[str, str]]:
        """(action, detail) of the facilitator audit of a circle, in order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(audit.c.action, audit.c.detail).where(audit.c.circle_id == circle_id).order_by(audit.c.id)
            )
            return [(r[0], r[1]) for r in rows]

    # ------------------------------------------------------------------ delivery ledger

    def is_handled(self, platform: str, source: str) -> bool:
        """Whether the incoming message ``source`` already made a change that is kept."""
        with self.engine.connect() as conn:
            query = select(handled.c.at).where(handled.c.platform == platform, handled.c.source == source)
            return conn.execute(query).first() is not None

    def forget_handled_before(self, at: float) -> int:
        """Drop handled-message ids older than ``at`` (platforms stop redelivering long before)."""
        with self.engine.begin() as conn:
            return int(conn.execute(delete(handled).where(handled.c.at < at)).rowcount)

    def pending_outbox(self, platforms: Sequence[str]) -> list[Outgoing]:
        """Lines kept but not yet sent for ``platforms``, oldest first."""
        query = select(outbox).where(outbox.c.platform.in_(list(platforms))).order_by(outbox.c.id)
        with self.engine.connect() as conn:
            return [Outgoing(r.platform, r.room, r.key, orjson.loads(r.lines_json), r.at) for r in conn.execute(query)]

    def get_value(self, key: str) -> str | None:
        """An adapter's kept value (None if never set)."""
        with self.engine.connect() as conn:
            return conn.execute(select(adapter_state.c.value).where(adapter_state.c.key == key)).scalar()

    def set_value(self, key: str, value: str) -> None:
        """Keep an adapter's value (insert or replace)."""
        self.set_values({key: value})

    def set_values(self, values: dict[str, str]) -> None:
        """Keep several of an adapter's values in one transaction."""
        with self.engine.begin() as conn:
            for key, value in values.items():
                changed = conn.execute(update(adapter_state).where(adapter_state.c.key == key).values(value=value))
                if not changed.rowcount:
                    conn.execute(insert(adapter_state).values(key=key, value=value))


def _scrubbed(state: dict[str, Any]) -> dict[str, Any]:
    """An ended circle keeps no people in its state: the attendance table has what is kept."""
    clean = dict(state)
    clean["participants"] = {}
    clean["facilitators"] = []
    clean["round"] = None
    return clean
