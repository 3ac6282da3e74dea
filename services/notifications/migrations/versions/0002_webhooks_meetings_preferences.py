"""Second release: webhook lifecycle columns, meeting reminders, time zones.

- ``notification_webhooks``: ``normalized_url`` (filled from ``url``),
  ``owner_role``, ``previous_secret`` and ``previous_secret_until`` (rotation),
  ``dead_in_a_row`` and ``disabled_reason`` (auto-disable), ``updated_at``;
- the receivers' answer bodies an earlier release kept in attempt errors are
  erased (``HTTP 500: <body>`` becomes ``HTTP 500``): a webhook's owner must
  never read them;
- ``reminder_deadlines.duration_minutes``: a meeting's length, and
  ``calendar_sequence``: the SEQUENCE its e-mailed invitation carries;
- ``notification_deliveries.traceparent``: the trace a delivery continues;
- ``notification_preferences``: each user's time zone.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.common.migration_ops import add_missing_columns, drop_columns
from services.notifications.webhook_urls import normalised_url

revision = "0002"
down_revision = "0001"

Ts = sa.DateTime(timezone=True)

NEW_COLUMNS: dict[str, list[sa.Column[object]]] = {
    "notification_webhooks": [
        sa.Column("normalized_url", sa.Text, nullable=True),
        sa.Column("owner_role", sa.String(16), nullable=True),
        sa.Column("previous_secret", sa.Text, nullable=True),
        sa.Column("previous_secret_until", Ts, nullable=True),
        sa.Column("dead_in_a_row", sa.Integer, nullable=False, server_default="0"),
        sa.Column("disabled_reason", sa.Text, nullable=True),
        sa.Column("updated_at", Ts, nullable=True),
    ],
    "reminder_deadlines": [
        sa.Column("duration_minutes", sa.Integer, nullable=True),
        sa.Column("calendar_sequence", sa.Integer, nullable=True),
    ],
    "notification_deliveries": [sa.Column("traceparent", sa.String(55), nullable=True)],
}


def upgrade() -> None:
    for table, columns in NEW_COLUMNS.items():
        add_missing_columns(table, columns)
    op.create_table(
        "notification_preferences",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
        if_not_exists=True,
    )
    _upgrade_webhook_rows(op.get_bind())


def _upgrade_webhook_rows(conn: sa.Connection) -> None:
    webhooks = sa.table("notification_webhooks", sa.column("id"), sa.column("url"),
                        sa.column("normalized_url"))  # fmt: skip
    for row in conn.execute(
        sa.select(webhooks.c.id, webhooks.c.url).where(webhooks.c.normalized_url.is_(None))
    ).all():
        conn.execute(
            webhooks.update()
            .where(webhooks.c.id == row.id)
            .values(normalized_url=normalised_url(row.url))
        )
    for name, column in (
        ("notification_delivery_attempts", "error"),
        ("notification_deliveries", "last_error"),
    ):
        table = sa.table(name, sa.column(column))
        conn.execute(
            table.update()
            .where(table.c[column].like("HTTP ___: %"))
            .values({column: sa.func.substr(table.c[column], 1, 8)})
        )


def downgrade() -> None:
    op.drop_table("notification_preferences")
    for table, columns in NEW_COLUMNS.items():
        drop_columns(table, columns)
