"""Privacy and exports: the lawful basis on every consent entry; indexes for retention

Consent entries now say which lawful basis the deployment relied on when they were made
(``consent``, ``legitimate_interests``, ``public_task``...): an auditor reads it beside the
text's hash. Entries made before this revision have none (shown as "not recorded"): the
ledger is append-only, so they are not rewritten. Attendance gets an index on when it
started, which retention (anonymise after N days) and dated exports read.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ADD COLUMN in place (no batch copy): a copy would drop and recreate the append-only table.
    op.add_column("consent", sa.Column("lawful_basis", sa.String(length=40), nullable=True))
    op.create_index("ix_attendance_joined_at", "attendance", ["joined_at"])
    op.create_index("ix_circle_started_at", "circle", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_circle_started_at", table_name="circle")
    op.drop_index("ix_attendance_joined_at", table_name="attendance")
    with op.batch_alter_table("consent") as batch_op:
        batch_op.drop_column("lawful_basis")
