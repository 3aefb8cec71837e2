"""The database tables (sqlmodel). Attendance and consent, never what anybody said.

- ``group``: a room on a platform that holds circles, with its region and sector.
- ``member``: a person by platform id and display name; anonymous attendees never get a row.
- ``script``: the exact text of each script a circle ran, once per text, by its SHA-256.
- ``circle``: one run of a script: the script's hash, who opened it, when it started and
  ended, and the engine's state with its next deadline (so a restarted host resumes it).
  The state is scrubbed of people when the circle ends. (The script text lives apart so
  that the row rewritten after every event stays small.)
- ``attendance``: who was in a circle from when to when, and how many turns they spoke or
  passed. ``seat`` links the rows of one person within one live circle (a salted hash, the
  salt is dropped when the circle ends), so anonymous attendance is counted, never named.
- ``consent``: the append-only ledger: who (or "anonymous") agreed to the group agreement or to
  attendance being recorded (``scope``), or withdrew, or was erased (``decision``), for which
  exact text (its SHA-256), when, where, in which circle and group, on which lawful basis.
  Triggers refuse updates and deletes. An erased person's entries stay, naming nobody: the
  member row they point at is emptied of name and platform id.
- ``audit``: each facilitator action that changed a circle.
- ``prompt_use``: which prompt a group was given, so it does not get it again too soon.
- ``handled_event``: the platform ids of incoming messages whose effect is kept, written in
  the same transaction as that effect: a message seen again after a crash is not acted on twice.
- ``outbox``: what the bot is about to say for a platform that can deduplicate sends, written
  with the change it reports and deleted once sent: a crash between the two loses nothing.
- ``adapter_state``: small values an adapter keeps across restarts (Matrix's sync token).
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


class Group(SQLModel, table=True):
    """A room on a platform where circles meet."""

    __tablename__ = "group"
    __table_args__ = (UniqueConstraint("platform", "room"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=32)
    room: str = Field(max_length=255)
    name: str | None = Field(default=None, max_length=255)
    region: str | None = Field(default=None, max_length=120)
    sector: str | None = Field(default=None, max_length=120)
    timezone: str = Field(default="UTC", max_length=64)


class Member(SQLModel, table=True):
    """A named participant or facilitator, by platform-neutral key (``console:sam``)."""

    __tablename__ = "member"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=320, unique=True)
    platform: str = Field(max_length=32)
    display_name: str | None = Field(default=None, max_length=255)
    created_at: float


class ScriptRow(SQLModel, table=True):
    """The exact text of a script some circle ran, once per text (circles refer to it by hash)."""

    __tablename__ = "script"

    hash: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=120)
    text: str = Field(sa_column=Column(Text, nullable=False))


class CircleRow(SQLModel, table=True):
    """One circle: a run of a script in a group."""

    __tablename__ = "circle"
    __table_args__ = (Index("ix_circle_open", "status", "next_deadline"), Index("ix_circle_started_at", "started_at"))

    id: str = Field(primary_key=True, max_length=32)
    group_id: int = Field(foreign_key="group.id", index=True)
    script_name: str = Field(max_length=120)
    title: str = Field(max_length=255)
    script_hash: str = Field(max_length=64)
    """The script it ran, a row of ``script`` (no declared foreign key: SQLite cannot add one in place)."""
    facilitator_id: int | None = Field(default=None, foreign_key="member.id")
    status: str = Field(max_length=16)
    opened_at: float
    started_at: float | None = None
    ended_at: float | None = None
    updated_at: float
    next_deadline: float | None = None
    seat_salt: str | None = Field(default=None, max_length=64)
    state_json: str = Field(sa_column=Column(Text, nullable=False))


class Attendance(SQLModel, table=True):
    """A span of time someone was in a circle; counts of turns, never words."""

    __tablename__ = "attendance"
    __table_args__ = (
        Index("ix_attendance_seat", "circle_id", "seat"),
        Index("ix_attendance_joined_at", "joined_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    circle_id: str = Field(foreign_key="circle.id", max_length=32)
    member_id: int | None = Field(default=None, foreign_key="member.id", index=True)
    anonymous: bool = False
    seat: str | None = Field(default=None, max_length=32)
    joined_at: float
    left_at: float | None = None
    turns_spoken: int = 0
    turns_passed: int = 0


class ConsentEntry(SQLModel, table=True):
    """One line of the append-only consent ledger."""

    __tablename__ = "consent"

    id: int | None = Field(default=None, primary_key=True)
    member_id: int | None = Field(default=None, foreign_key="member.id", index=True)
    anonymous: bool = False
    scope: str = Field(max_length=32)
    decision: str = Field(max_length=16)
    text_hash: str = Field(max_length=64)
    text_version: str = Field(max_length=40)
    at: float
    circle_id: str | None = Field(default=None, foreign_key="circle.id", max_length=32)
    group_id: int | None = Field(default=None, foreign_key="group.id")
    via: str = Field(max_length=32)
    lawful_basis: str | None = Field(default=None, max_length=40)
    """The lawful basis the deployment relied on when the entry was made (None before it was kept)."""


class AuditEntry(SQLModel, table=True):
    """A facilitator's accepted action."""

    __tablename__ = "audit"

    id: int | None = Field(default=None, primary_key=True)
    circle_id: str = Field(foreign_key="circle.id", max_length=32, index=True)
    actor_id: int | None = Field(default=None, foreign_key="member.id")
    action: str = Field(max_length=32)
    detail: str = Field(default="", max_length=255)
    at: float


class PromptUse(SQLModel, table=True):
    """A prompt put to a group, for rotation."""

    __tablename__ = "prompt_use"
    __table_args__ = (Index("ix_prompt_use_group_bank", "group_id", "bank", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    group_id: int = Field(foreign_key="group.id")
    bank: str = Field(max_length=64)
    prompt_id: str = Field(max_length=64)
    at: float


class HandledEvent(SQLModel, table=True):
    """An incoming message whose effect is kept (its platform id only, never its content)."""

    __tablename__ = "handled_event"

    platform: str = Field(primary_key=True, max_length=32)
    source: str = Field(primary_key=True, max_length=255)
    at: float = Field(index=True)


class OutboxEntry(SQLModel, table=True):
    """Lines the bot will say, kept until they are sent (then deleted)."""

    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=32)
    room: str = Field(max_length=255)
    key: str = Field(max_length=255, index=True)
    lines_json: str = Field(sa_column=Column(Text, nullable=False))
    at: float


class AdapterState(SQLModel, table=True):
    """A value an adapter keeps across restarts, by key (``matrix:@bot:example.org:sync``)."""

    __tablename__ = "adapter_state"

    key: str = Field(primary_key=True, max_length=320)
    value: str = Field(sa_column=Column(Text, nullable=False))


# The SQLAlchemy Core tables, for the store's statements (sqlmodel declares ``__table__`` untyped).
attendance_table = Attendance.__table__  # type: ignore[attr-defined]
audit_table = AuditEntry.__table__  # type: ignore[attr-defined]
circles_table = CircleRow.__table__  # type: ignore[attr-defined]
consent_table = ConsentEntry.__table__  # type: ignore[attr-defined]
groups_table = Group.__table__  # type: ignore[attr-defined]
members_table = Member.__table__  # type: ignore[attr-defined]
prompt_use_table = PromptUse.__table__  # type: ignore[attr-defined]
scripts_table = ScriptRow.__table__  # type: ignore[attr-defined]
handled_table = HandledEvent.__table__  # type: ignore[attr-defined]
outbox_table = OutboxEntry.__table__  # type: ignore[attr-defined]
adapter_state_table = AdapterState.__table__  # type: ignore[attr-defined]
