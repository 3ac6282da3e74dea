"""Counters of a generation beside its row (``pv_generation_counters``): a live
consumer that finds the generation's row held by another process's batch adds its
batch's counts to a row of its own instead of waiting for that batch to commit.

Only a table is added. A release before it reads the generation's row alone,
which the newer release keeps current (it folds its own row into it at a later
batch), so both may run side by side during an upgrade.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "pv_generation_counters",
        sa.Column("generation", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("slot", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("events_applied", sa.BigInteger, nullable=False),
        sa.Column("duplicates", sa.BigInteger, nullable=False),
        sa.Column("gaps_detected", sa.BigInteger, nullable=False),
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_table("pv_generation_counters")
