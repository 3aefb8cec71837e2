"""Script text in its own table, once per text

The circle row is rewritten after every event; carrying the whole script text (a few KB,
in overflow pages) made every one of those writes several times larger than needed, and
stored the same text once per circle. Circles now refer to ``script`` by hash.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "script",
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("hash"),
    )
    op.execute(
        "INSERT INTO script (hash, name, text) "
        "SELECT script_hash, MIN(script_name), MIN(script_text) FROM circle GROUP BY script_hash"
    )
    # A plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+ and PostgreSQL): no table rebuild, which
    # SQLite would refuse anyway while attendance and the consent ledger refer to circles.
    op.drop_column("circle", "script_text")


def downgrade() -> None:
    op.add_column("circle", sa.Column("script_text", sa.Text(), nullable=False, server_default=""))
    op.execute("UPDATE circle SET script_text = (SELECT text FROM script WHERE script.hash = circle.script_hash)")
    op.drop_table("script")
