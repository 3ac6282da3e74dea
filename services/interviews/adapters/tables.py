"""The interview service's own tables beside the event store, in one place: what
the interviews migrations (``services/interviews/migrations``) produce. A change
here needs a new revision there.

The event store's tables are not here: they belong to ``eventsourcing``.
"""

from __future__ import annotations

import sqlalchemy as sa

from ...common.db import UtcDateTime

metadata = sa.MetaData()

# One row per topic: how far the relay has published it, and who may publish it.
# ``epoch`` grows by one at every change of leader; the position moves only for the
# holder of the current epoch (fencing: a leader that was paused and wakes up
# records nothing).
relay_position = sa.Table(
    "relay_position",
    metadata,
    sa.Column("topic", sa.String(255), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("epoch", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("holder", sa.String(200), nullable=True),
    # The leader's last heartbeat (its own count, compared only with itself).
    sa.Column("heartbeat", sa.BigInteger, nullable=False, server_default="0"),
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

# Deadlines the scheduler could not handle, set aside for an operator
# (``interviewctl deadlines isolated``).
ISOLATED = sa.Table(
    "isolated_deadlines",
    metadata,
    sa.Column("interview_id", sa.Uuid, primary_key=True),
    sa.Column("what", sa.String(16), nullable=True),
    sa.Column("due_at", sa.String(64), nullable=True),  # as the event said it (ISO 8601)
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("stage", sa.String(16), nullable=False),  # "index" or "expire"
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("isolated_at", UtcDateTime, nullable=False),
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
