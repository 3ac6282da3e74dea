"""The first release's notifications tables (release 6a515ff).

A database of that release has them already but no version table: each table
is created only if it is missing, which records such a database at this
revision without touching its data.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("seq", BigId, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(36), nullable=False, unique=True),
        sa.Column("recipient_id", sa.String(128), nullable=False),
        sa.Column("recipient_role", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("interview_id", sa.String(36), nullable=False),
        sa.Column("job_id", sa.Text, nullable=False),
        sa.Column("event_id", sa.String(36), nullable=True),
        sa.Column("position", sa.BigInteger, nullable=True),
        sa.Column("occurred_at", Ts, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("read_at", Ts, nullable=True),
        sa.Column("details", sa.JSON, nullable=False),
        if_not_exists=True,
    )
    op.create_index(
        "ix_notifications_recipient_seq",
        "notifications",
        ["recipient_id", "seq"],
        if_not_exists=True,
    )
    op.create_table(
        "notification_webhooks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("owner_id", sa.String(128), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("event_types", sa.JSON, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.UniqueConstraint("owner_id", "url", name="uq_webhook_owner_url"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_notification_webhooks_owner_id",
        "notification_webhooks",
        ["owner_id"],
        if_not_exists=True,
    )
    op.create_table(
        "notification_deliveries",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("notification_id", sa.String(36), nullable=False),
        sa.Column("recipient_id", sa.String(128), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("webhook_id", sa.String(36), nullable=True),
        sa.Column("address", sa.Text, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", Ts, nullable=False),
        sa.Column("lease_until", Ts, nullable=True),
        sa.Column("lease_token", sa.String(36), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
        sa.Column("delivered_at", Ts, nullable=True),
        if_not_exists=True,
    )
    for name, columns in (
        ("ix_notification_deliveries_notification_id", ["notification_id"]),
        ("ix_notification_deliveries_webhook_id", ["webhook_id"]),
        ("ix_deliveries_due", ["status", "next_attempt_at"]),
    ):
        op.create_index(name, "notification_deliveries", columns, if_not_exists=True)
    op.create_table(
        "notification_delivery_attempts",
        sa.Column("delivery_id", sa.String(36), primary_key=True),
        sa.Column("attempt", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("started_at", Ts, nullable=False),
        sa.Column("duration_ms", sa.Float, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        if_not_exists=True,
    )
    op.create_table(
        "reminder_deadlines",
        sa.Column("interview_id", sa.String(36), primary_key=True),
        sa.Column("what", sa.String(16), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("due_at", Ts, nullable=True),
        sa.Column("expires_at", Ts, nullable=True),
        sa.Column("recipient_id", sa.String(128), nullable=False),
        sa.Column("job_id", sa.Text, nullable=False),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("freelancer_id", sa.String(128), nullable=False),
        sa.Column("notification_id", sa.String(36), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("updated_at", Ts, nullable=False),
        if_not_exists=True,
    )
    op.create_index(
        "ix_reminder_deadlines_due", "reminder_deadlines", ["status", "due_at"], if_not_exists=True
    )


def downgrade() -> None:
    for table in (
        "reminder_deadlines",
        "notification_delivery_attempts",
        "notification_deliveries",
        "notification_webhooks",
        "notifications",
    ):
        op.drop_table(table)
