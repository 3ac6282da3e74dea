"""The notifications database: inbox, webhooks, the delivery outbox and its attempts,
the open deadlines and scheduled meetings that reminders are due for, and each
user's preferences (time zone).

These models are what the migrations (``services/notifications/migrations``)
produce; a change here needs a new revision there."""

from __future__ import annotations

import sqlalchemy as sa

from ...common.db import UtcDateTime

metadata = sa.MetaData()

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

notifications = sa.Table(
    "notifications",
    metadata,
    # seq orders the inbox and is the pagination cursor; id is the public, stable id.
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
    sa.Column("occurred_at", UtcDateTime, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("read_at", UtcDateTime, nullable=True),
    sa.Column("details", sa.JSON, nullable=False),
    # Added in the third release (migration 0003, crypto-shredding): the data key the
    # personal text in message/details was sealed with, the message without those
    # words (it replaces message on erasure), and the personal fields erased.
    sa.Column("key_id", sa.String(64), nullable=True, index=True),
    sa.Column("message_redacted", sa.Text, nullable=True),
    sa.Column("erased_fields", sa.JSON, nullable=True),
    sa.Index("ix_notifications_recipient_seq", "recipient_id", "seq"),
)

webhooks = sa.Table(
    "notification_webhooks",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("owner_id", sa.String(128), nullable=False, index=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("event_types", sa.JSON, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, default=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    # Added in the second release (migration 0002):
    # the URL as compared for duplicates (webhook_urls.normalised_url).
    sa.Column("normalized_url", sa.Text, nullable=True),
    sa.Column("owner_role", sa.String(16), nullable=True),
    # After a rotation the previous secret still signs until previous_secret_until.
    sa.Column("previous_secret", sa.Text, nullable=True),
    sa.Column("previous_secret_until", UtcDateTime, nullable=True),
    # Dead deliveries since the last delivered one: at the limit the webhook is disabled.
    sa.Column("dead_in_a_row", sa.Integer, nullable=False, server_default="0", default=0),
    sa.Column("disabled_reason", sa.Text, nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=True),
    sa.UniqueConstraint("owner_id", "url", name="uq_webhook_owner_url"),
)

deliveries = sa.Table(
    "notification_deliveries",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("notification_id", sa.String(36), nullable=False, index=True),
    sa.Column("recipient_id", sa.String(128), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("webhook_id", sa.String(36), nullable=True, index=True),
    sa.Column("address", sa.Text, nullable=True),
    # pending -> delivered | dead
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    # A worker holds a delivery while it sends; an expired lease means it died mid-send.
    sa.Column("lease_until", UtcDateTime, nullable=True),
    sa.Column("lease_token", sa.String(36), nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("delivered_at", UtcDateTime, nullable=True),
    # The W3C traceparent of the span that queued it: its sending continues that trace.
    sa.Column("traceparent", sa.String(55), nullable=True),
    sa.Index("ix_deliveries_due", "status", "next_attempt_at"),
)

attempts = sa.Table(
    "notification_delivery_attempts",
    metadata,
    sa.Column("delivery_id", sa.String(36), primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("duration_ms", sa.Float, nullable=True),
    # delivered | failed | unknown (the worker died before recording the outcome)
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
)


reminder_deadlines = sa.Table(
    "reminder_deadlines",
    metadata,
    # One row per interview and deadline: a revised offer replaces the previous offer's
    # row, a reschedule the meeting's.
    sa.Column("interview_id", sa.String(36), primary_key=True),
    sa.Column("what", sa.String(16), primary_key=True),  # invitation | offer | meeting
    # The interview version of the last event that opened or closed the row: an
    # older (stale or duplicate) event never changes it, so it cannot reopen it.
    sa.Column("version", sa.Integer, nullable=False),
    # pending -> sent | skipped | closed (answered, cancelled or expired first)
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("due_at", UtcDateTime, nullable=True),
    # The invitation's or offer's expiry; for a meeting, when it starts.
    sa.Column("expires_at", UtcDateTime, nullable=True),
    # The party who must answer (a meeting's reminder goes to both parties).
    sa.Column("recipient_id", sa.String(128), nullable=False),
    sa.Column("job_id", sa.Text, nullable=False),
    sa.Column("client_id", sa.String(128), nullable=False),
    sa.Column("freelancer_id", sa.String(128), nullable=False),
    sa.Column("notification_id", sa.String(36), nullable=True),  # the reminder, once sent
    sa.Column("reason", sa.Text, nullable=True),  # why it was skipped or closed
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("duration_minutes", sa.Integer, nullable=True),  # a meeting's length
    # A meeting's calendar SEQUENCE as last e-mailed (0 at the start, +1 per reschedule,
    # +1 on cancellation); NULL where unknown (a row of an earlier release).
    sa.Column("calendar_sequence", sa.Integer, nullable=True),
    sa.Index("ix_reminder_deadlines_due", "status", "due_at"),
)

preferences = sa.Table(
    "notification_preferences",
    metadata,
    sa.Column("user_id", sa.String(128), primary_key=True),
    # An IANA time zone name: every text the user receives shows times in it.
    sa.Column("time_zone", sa.String(64), nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
