"""The first release's runner tables (release 6a515ff): processed events,
Kafka offsets, log positions and parked events. Created only where missing, so
a first-release database is recorded at this revision with its data.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "processed_events",
        sa.Column("group", sa.String(100), primary_key=True),
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        if_not_exists=True,
    )
    op.create_table(
        "consumer_offsets",
        sa.Column("group", sa.String(100), primary_key=True),
        sa.Column("topic", sa.String(255), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
        if_not_exists=True,
    )
    op.create_table(
        "consumer_positions",
        sa.Column("group", sa.String(100), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        if_not_exists=True,
    )
    op.create_table(
        "parked_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("group", sa.String(100), nullable=False),
        sa.Column("interview_id", sa.String(36), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("source", sa.String(255), nullable=True),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("parked_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("group", "event_id", name="uq_parked_group_event"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_parked_group_interview", "parked_events", ["group", "interview_id"], if_not_exists=True
    )


def downgrade() -> None:
    for table in ("parked_events", "consumer_positions", "consumer_offsets", "processed_events"):
        op.drop_table(table)
