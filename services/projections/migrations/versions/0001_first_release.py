"""The first release's fixed projection tables (release 6a515ff): the pointer
to the generation the API reads, and the generations. Created only where
missing, so a first-release database is recorded at this revision as it is.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

Ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "pv_meta",
        sa.Column("view", sa.String(32), primary_key=True),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("swapped_at", Ts),
        if_not_exists=True,
    )
    op.create_table(
        "pv_generations",
        sa.Column("generation", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("schemas", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("events_applied", sa.BigInteger, nullable=False),
        sa.Column("duplicates", sa.BigInteger, nullable=False),
        sa.Column("gaps_detected", sa.BigInteger, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("activated_at", Ts),
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_table("pv_generations")
    op.drop_table("pv_meta")
