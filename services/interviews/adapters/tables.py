"""The interview service's own tables beside the event store, in one place: what
the interviews migrations (``services/interviews/migrations``) produce. A change
here needs a new revision there.

The event store's tables are not here: they belong to ``eventsourcing``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes on PostgreSQL and SQLite alike (SQLite stores naive UTC,
    whose text sorts in time order)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("deadlines are aware datetimes")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData()

# How far the relay has published, per topic.
relay_position = sa.Table(
    "relay_position",
    metadata,
    sa.Column("topic", sa.String(255), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# The deadline scheduler's index of open invitations and offers.
DEADLINES = sa.Table(
    "deadlines",
    metadata,
    sa.Column("interview_id", sa.Uuid, primary_key=True),
    sa.Column("what", sa.String(16), nullable=False),  # "invitation" or "offer"
    sa.Column("due_at", UtcDateTime, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),  # of the event that set the deadline
    sa.Index("deadlines_due_at_idx", "due_at"),
)

POSITIONS = sa.Table(
    "scheduler_positions",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)

# Leadership of the relay and the scheduler on SQLite (adapters/leases.py). Named for
# its first user; every lease lives here, one row per name.
LEASES = sa.Table(
    "scheduler_leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),  # epoch seconds of the lease clock
)

# The audit log's checkpoints (audit_log.LogChecker), written by adapters/audit_store.py
# with the event store's own connection.
CHECKPOINTS = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column(
        "position",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("events", sa.BigInteger, nullable=False),
    sa.Column("digest", sa.Text, nullable=False),
    sa.Column("created_at", sa.Text, nullable=False),
)

# The version of ``eventsourcing`` whose tables the event store holds
# (migrations.check_event_store).
EVENT_STORE_SCHEMA = sa.Table(
    "event_store_schema",
    metadata,
    sa.Column("library", sa.String(64), primary_key=True),
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)
