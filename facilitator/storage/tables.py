"""The database tables (SQLAlchemy Core). Attendance and consent, never what anybody said.

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

from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()
"""All the tables: what the migrations must build (``tests/test_migrations.py`` compares them)."""


def _column(name: str, *args: Any, **kwargs: Any) -> Column[Any]:
    """A column named by a plain ``str``, as the sqlmodel tables' columns were.

    ``Column("name", ...)`` would make the name a ``quoted_name`` (a ``str`` subclass), and so the
    keys of every result row too: orjson refuses those as dict keys (``rights.my_data``'s rows).
    """
    column: Column[Any] = Column(*args, **kwargs)
    column.name = column.key = name
    return column


# A room on a platform where circles meet.
groups_table = Table(
    "group",
    metadata,
    _column("id", Integer, primary_key=True),
    _column("platform", String(32), nullable=False),
    _column("room", String(255), nullable=False),
    _column("name", String(255), nullable=True),
    _column("region", String(120), nullable=True),
    _column("sector", String(120), nullable=True),
    _column("timezone", String(64), nullable=False, default="UTC"),
    UniqueConstraint("platform", "room"),
)

# A named participant or facilitator, by platform-neutral key (``console:sam``).
members_table = Table(
    "member",
    metadata,
    _column("id", Integer, primary_key=True),
    _column("key", String(320), nullable=False, unique=True),
    _column("platform", String(32), nullable=False),
    _column("display_name", String(255), nullable=True),
    _column("created_at", Float, nullable=False),
)

# The exact text of a script some circle ran, once per text (circles refer to it by hash).
scripts_table = Table(
    "script",
    metadata,
    _column("hash", String(64), primary_key=True),
    _column("name", String(120), nullable=False),
    _column("text", Text, nullable=False),
)

# One circle: a run of a script in a group. ``script_hash`` is the script it ran, a row of
# ``script`` (no declared foreign key: SQLite cannot add one in place).
circles_table = Table(
    "circle",
    metadata,
    _column("id", String(32), primary_key=True),
    _column("group_id", Integer, ForeignKey("group.id"), nullable=False, index=True),
    _column("script_name", String(120), nullable=False),
    _column("title", String(255), nullable=False),
    _column("script_hash", String(64), nullable=False),
    _column("facilitator_id", Integer, ForeignKey("member.id"), nullable=True),
    _column("status", String(16), nullable=False),
    _column("opened_at", Float, nullable=False),
    _column("started_at", Float, nullable=True),
    _column("ended_at", Float, nullable=True),
    _column("updated_at", Float, nullable=False),
    _column("next_deadline", Float, nullable=True),
    _column("seat_salt", String(64), nullable=True),
    _column("state_json", Text, nullable=False),
    Index("ix_circle_open", "status", "next_deadline"),
    Index("ix_circle_started_at", "started_at"),
)

# A span of time someone was in a circle; counts of turns, never words.
attendance_table = Table(
    "attendance",
    metadata,
    _column("id", Integer, primary_key=True),
    _column("circle_id", String(32), ForeignKey("circle.id"), nullable=False),
    _column("member_id", Integer, ForeignKey("member.id"), nullable=True, index=True),
    _column("anonymous", Boolean, nullable=False, default=False),
    _column("seat", String(32), nullable=True),
    _column("joined_at", Float, nullable=False),
    _column("left_at", Float, nullable=True),
    _column("turns_spoken", Integer, nullable=False, default=0),
    _column("turns_passed", Integer, nullable=False, default=0),
    Index("ix_attendance_seat", "circle_id", "seat"),
    Index("ix_attendance_joined_at", "joined_at"),
)

# One line of the append-only consent ledger. ``lawful_basis`` is the lawful basis the
# deployment relied on when the entry was made (None before it was kept).
consent_table = Table(
    "consent",
    metadata,
    _column("id", Integer, primary_key=True),
    _column("member_id", Integer, ForeignKey("member.id"), nullable=True, index=True),
    _column("anonymous", Boolean, nullable=False, default=False),
    _column("scope", String(32), nullable=False),
    _column("decision", String(16), nullable=False),
    _column("text_hash", String(64), nullable=False),
    _column("text_version", String(40), nullable=False),
    _column("at", Float, nullable=False),
    _column("circle_id", String(32), ForeignKey("circle.id"), nullable=True),
    _column("group_id", Integer, ForeignKey("group.id"), nullable=True),
    _column("via", String(32), nullable=False),
    _column("lawful_basis", String(40), nullable=True),
)

# A facilitator's accepted action.
audit_table = Table(
    "audit",
    metadata,
    _column("id", Integer, primary_key=True),
    _column("circle_id", String(32), ForeignKey("circle.id"), nullable=False, index=True),
    _column("actor_id", Integer, ForeignKey("member.id"), nullable=True),
    _column("action", String(32), nullable=False),
    _column("detail", String(255), nullable=False, default=""),
    _column("at", Float, nullable=False),
)

# A prompt put to a group, for rotation.
prompt_use_table = Table(
    "prompt_use",
    metadata,
    _column("id", Integer, primary_key=True),
    _column("group_id", Integer, ForeignKey("group.id"), nullable=False),
    _column("bank", String(64), nullable=False),
    _column("prompt_id", String(64), nullable=False),
    _column("at", Float, nullable=False),
    Index("ix_prompt_use_group_bank", "group_id", "bank", "at"),
)

# An incoming message whose effect is kept (its platform id only, never its content).
handled_table = Table(
    "handled_event",
    metadata,
    _column("platform", String(32), primary_key=True),
    _column("source", String(255), primary_key=True),
    _column("at", Float, nullable=False, index=True),
)

# Lines the bot will say, kept until they are sent (then deleted).
outbox_table = Table(
    "outbox",
    metadata,
    _column("id", Integer, primary_key=True),
    _column("platform", String(32), nullable=False),
    _column("room", String(255), nullable=False),
    _column("key", String(255), nullable=False, index=True),
    _column("lines_json", Text, nullable=False),
    _column("at", Float, nullable=False),
)

# A value an adapter keeps across restarts, by key (``matrix:@bot:example.org:sync``).
adapter_state_table = Table(
    "adapter_state",
    metadata,
    _column("key", String(320), primary_key=True),
    _column("value", Text, nullable=False),
)
