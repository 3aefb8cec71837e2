"""The store's write statements, built once, and a batch that runs them grouped.

Building a statement per row (``update(t).where(...).values(...)``) makes SQLAlchemy coerce,
bind and cache-key it every time, which costs far more than the database running it. These
statements take their values at execution, so a batch of like rows runs as one
``executemany``; :class:`Batch` keeps the order of the rows and groups consecutive rows for
the same statement (an attendance row is always inserted before its turns are counted).
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Boolean, bindparam, case, func, insert, literal_column, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert, Update

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
    handled_table as handled,
)
from facilitator.storage.tables import (
    outbox_table as outbox,
)
from facilitator.storage.tables import (
    prompt_use_table as prompt_use,
)

_OPEN_SEAT = (
    attendance.c.circle_id == bindparam("b_circle"),
    attendance.c.seat.in_([bindparam("b_seat"), bindparam("b_seat_anonymous")]),  # one row is open at a time
    attendance.c.left_at.is_(None),
)

UPDATE_CIRCLE: Update = (
    update(circles)
    .where(circles.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        state_json=bindparam("b_state"),
        next_deadline=bindparam("b_deadline"),
        updated_at=bindparam("b_at"),
        started_at=func.coalesce(bindparam("b_started"), circles.c.started_at),
        ended_at=func.coalesce(bindparam("b_ended"), circles.c.ended_at),
        seat_salt=case((bindparam("b_drop_salt", type_=Boolean), None), else_=circles.c.seat_salt),
    )
)
"""A circle's new state; started/ended times only when given; the seat salt dropped at the end."""

INSERT_CONSENT: Insert = insert(consent)
INSERT_ATTENDANCE: Insert = insert(attendance)
INSERT_PROMPT_USE: Insert = insert(prompt_use)
INSERT_AUDIT: Insert = insert(audit)
INSERT_HANDLED: Insert = insert(handled)
INSERT_OUTBOX: Insert = insert(outbox)
_NOT_BEFORE_JOINING = case(
    (attendance.c.joined_at > bindparam("b_at"), attendance.c.joined_at), else_=bindparam("b_at")
)

CAP_ATTENDANCE: Update = (
    update(attendance)
    .where(attendance.c.circle_id == bindparam("b_circle"), attendance.c.left_at > bindparam("b_at"))
    .values(left_at=_NOT_BEFORE_JOINING)
)
"""A circle closed for being left open ended at ``b_at``: no attendance of it runs past that
(someone who left during the pause is not credited with the idle hours), none before it began."""

UNLINK_UNNAMED: Update = (
    update(attendance)
    .where(
        attendance.c.circle_id == bindparam("b_circle"),
        attendance.c.seat == bindparam("b_seat"),
        attendance.c.member_id.is_(None),
        attendance.c.left_at.is_not(None),
    )
    .values(seat=bindparam("b_new_seat"))
)
"""Before someone's named attendance starts again in a circle: their earlier rows there that are
no longer named (they withdrew, or were forgotten) get a seat of their own, so nothing links them."""
END_ATTENDANCE: Update = update(attendance).where(*_OPEN_SEAT).values(left_at=_NOT_BEFORE_JOINING)
"""An attendance ends at ``b_at``, never before it began (a circle closed as of when it stopped
meeting, after someone came)."""
COUNT_SPOKEN: Update = (
    update(attendance).where(*_OPEN_SEAT).values(turns_spoken=attendance.c.turns_spoken + literal_column("1"))
)
COUNT_PASSED: Update = (
    update(attendance).where(*_OPEN_SEAT).values(turns_passed=attendance.c.turns_passed + literal_column("1"))
)


def _encode(state: dict[str, Any]) -> str:
    """Compact JSON (orjson: a fraction of the stdlib's time, on the hot path of every batch)."""
    return orjson.dumps(state).decode("utf-8")


class Batch:
    """Rows to write, in order; consecutive rows for one statement run as one executemany."""

    def __init__(self) -> None:
        self._runs: list[tuple[Insert | Update, list[dict[str, Any]]]] = []
        self._circles: dict[str, dict[str, Any]] = {}

    def add(self, statement: Insert | Update, row: dict[str, Any]) -> None:
        """Queue ``row`` for ``statement`` after everything queued so far."""
        if self._runs and self._runs[-1][0] is statement:
            self._runs[-1][1].append(row)
        else:
            self._runs.append((statement, [row]))

    def circle(self, circle_id: str, row: dict[str, Any]) -> None:
        """A circle's new state; within one batch only its latest state is written."""
        earlier = self._circles.get(circle_id)
        if earlier is not None:  # keep times and the salt drop that an earlier event in the batch set
            row["b_started"] = row["b_started"] or earlier["b_started"]
            row["b_ended"] = row["b_ended"] or earlier["b_ended"]
            row["b_drop_salt"] = row["b_drop_salt"] or earlier["b_drop_salt"]
        self._circles[circle_id] = row

    def run(self, conn: Connection) -> None:
        """Execute everything queued, in order, then the circles' states."""
        for statement, rows in self._runs:
            _execute_many(conn, statement, rows)
        if self._circles:
            rows = list(self._circles.values())
            for row in rows:
                row["b_state"] = _encode(row["b_state"])
            _execute_many(conn, UPDATE_CIRCLE, rows)


_COMPILED: dict[tuple[str, int, tuple[str, ...]], tuple[str, tuple[str, ...] | None]] = {}


def _execute_many(conn: Connection, statement: Insert | Update, rows: list[dict[str, Any]]) -> None:
    """Run ``statement`` for every row as one DB-API executemany.

    The statement is compiled once per dialect and set of columns; the rows go to the driver as
    they are. (``conn.execute(statement, rows)`` would build each row's parameters in Python,
    which costs more than SQLite writing the row.) Every row of one statement has the same keys.
    """
    keys = tuple(rows[0])
    cache_key = (conn.dialect.name, id(statement), keys)
    compiled = _COMPILED.get(cache_key)
    if compiled is None:
        form = statement.compile(dialect=conn.dialect, column_keys=list(keys))
        order = tuple(form.positiontup) if form.positional and form.positiontup is not None else None
        compiled = _COMPILED[cache_key] = (str(form), order)
    sql, order = compiled
    if order is None:
        conn.exec_driver_sql(sql, rows)
    else:
        conn.exec_driver_sql(sql, [tuple(row[name] for name in order) for row in rows])
