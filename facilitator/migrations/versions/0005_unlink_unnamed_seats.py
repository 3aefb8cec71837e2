"""Unlink unnamed attendance from named attendance that shares its seat

Within one circle, one person's attendance rows share a "seat" so that the circle's size
counts people, not stints. Before this revision a person's named and anonymous stints in a
circle got the same seat, and a row that stopped being named (its person withdrew, or was
forgotten) kept it: an unnamed row beside a named row with the same seat shows, in the
circle's counts (size, named, anonymous), which named person the unnamed one was. The code
no longer writes such pairs; this revision mends the rows written before it.

For every circle, each seat held both by a named row (``member_id`` set) and by closed
unnamed rows (``member_id`` NULL, ``left_at`` set) gets one fresh random seat for those
unnamed rows: they are unlinked from the named ones, and the unnamed stints of one person stay
counted once. Unnamed rows whose seat no named row holds are left as they are.

Unnamed rows left open in a circle that has ended (its salt dropped: nothing will look for
them) are re-seated too. Unnamed rows still open in a circle running at upgrade time keep their
seat, because the running circle finds its open row by seat (``Store._seats``). They are
unlinked when the circle closes the row and the person's next named stint in that circle
starts (``UNLINK_UNNAMED`` re-seats that person's closed unnamed rows there); if the person
does not come back to that circle by name, they stay linked.

The downgrade does nothing: the old seats are not kept, so the rows cannot be linked again
(and should not be).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

LINKED = sa.text(
    "SELECT DISTINCT u.circle_id, u.seat, c.seat_salt IS NULL AS ended FROM attendance u"
    " JOIN circle c ON c.id = u.circle_id"
    " WHERE u.member_id IS NULL AND u.seat IS NOT NULL AND (u.left_at IS NOT NULL OR c.seat_salt IS NULL)"
    " AND EXISTS (SELECT 1 FROM attendance n"
    " WHERE n.circle_id = u.circle_id AND n.seat = u.seat AND n.member_id IS NOT NULL)"
)
"""Each (circle, seat) held by unnamed rows that no running circle will look for (closed, or in
a circle that has ended: its salt is gone) and by a named row of the same circle."""

RESEAT = sa.text(
    "UPDATE attendance SET seat = :new_seat"
    " WHERE circle_id = :circle_id AND seat = :seat AND member_id IS NULL AND (left_at IS NOT NULL OR :ended)"
).bindparams(sa.bindparam("ended", type_=sa.Boolean))
"""The unnamed rows of one such pair get its new seat (``ix_attendance_seat`` finds them)."""

CHUNK = 10_000


def upgrade() -> None:
    conn = op.get_bind()
    pairs = conn.execute(LINKED).all()
    for start in range(0, len(pairs), CHUNK):
        conn.execute(
            RESEAT,
            [
                {"circle_id": circle_id, "seat": seat, "ended": bool(ended), "new_seat": secrets.token_hex(16)}
                for circle_id, seat, ended in pairs[start : start + CHUNK]
            ],
        )


def downgrade() -> None:
    """Nothing: the seats this revision replaced are gone, and must not link the rows again."""
