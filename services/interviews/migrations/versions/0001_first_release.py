"""The first release's tables of the interview service beside the event store
(release 6a515ff): the relay's position, the scheduler's deadlines, positions
and leases, the audit checkpoints. Each is created only if missing (the first
release created them lazily, so a database may have some of them).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

Ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "relay_position",
        sa.Column("topic", sa.String(255), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
        if_not_exists=True,
    )
    op.create_table(
        "deadlines",
        sa.Column("interview_id", sa.Uuid, primary_key=True),
        sa.Column("what", sa.String(16), nullable=False),
        sa.Column("due_at", Ts, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        if_not_exists=True,
    )
    op.create_index("deadlines_due_at_idx", "deadlines", ["due_at"], if_not_exists=True)
    op.create_table(
        "scheduler_positions",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        if_not_exists=True,
    )
    op.create_table(
        "scheduler_leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        if_not_exists=True,
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column(
            "position",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("events", sa.BigInteger, nullable=False),
        sa.Column("digest", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        if_not_exists=True,
    )


def downgrade() -> None:
    for table in (
        "audit_checkpoints",
        "scheduler_leases",
        "scheduler_positions",
        "deadlines",
        "relay_position",
    ):
        op.drop_table(table)
