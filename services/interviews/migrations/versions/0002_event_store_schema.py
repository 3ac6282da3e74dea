"""Second release.

- ``event_store_schema`` records the ``eventsourcing`` version whose tables the
  event store holds (filled by ``check_event_store``);
- ``relay_position`` gains the relay's leadership: ``epoch``, ``holder`` and
  ``heartbeat`` (fencing a paused leader);
- ``isolated_deadlines``: deadlines the scheduler could not handle, set aside
  for an operator.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from services.common.migration_ops import add_missing_columns, drop_columns

revision = "0002"
down_revision = "0001"

RELAY_COLUMNS: list[sa.Column[Any]] = [
    sa.Column("epoch", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("holder", sa.String(200), nullable=True),
    sa.Column("heartbeat", sa.BigInteger, nullable=False, server_default="0"),
]


def upgrade() -> None:
    op.create_table(
        "event_store_schema",
        sa.Column("library", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        if_not_exists=True,
    )
    add_missing_columns("relay_position", RELAY_COLUMNS)
    op.create_table(
        "isolated_deadlines",
        sa.Column("interview_id", sa.Uuid, primary_key=True),
        sa.Column("what", sa.String(16), nullable=True),
        sa.Column("due_at", sa.String(64), nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("isolated_at", sa.DateTime(timezone=True), nullable=False),
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_table("isolated_deadlines")
    drop_columns("relay_position", RELAY_COLUMNS)
    op.drop_table("event_store_schema")
