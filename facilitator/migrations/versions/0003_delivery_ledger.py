"""Delivery ledger: handled incoming messages, an outbox, adapter state

Chat platforms redeliver (Matrix after a restart from a sync token, Discord after a
reconnect), and a process can die between keeping a change and saying it. These tables let
an adapter deliver exactly once: ``handled_event`` is written with the change an incoming
message made; ``outbox`` holds what the bot will say about it until it is sent;
``adapter_state`` keeps an adapter's small values, such as Matrix's sync token.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "handled_event",
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("platform", "source"),
    )
    op.create_index("ix_handled_event_at", "handled_event", ["at"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("room", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("lines_json", sa.Text(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_outbox_key", "outbox", ["key"])
    op.create_table(
        "adapter_state",
        sa.Column("key", sa.String(length=320), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("adapter_state")
    op.drop_index("ix_outbox_key", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_handled_event_at", table_name="handled_event")
    op.drop_table("handled_event")
