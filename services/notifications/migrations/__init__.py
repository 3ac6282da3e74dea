"""The notifications database's migration history (``alembic_version_notifications``)."""

from __future__ import annotations

from ...common.migrations import History
from ..adapters.tables import metadata

HISTORY = History(
    name="notifications",
    package=__name__,
    metadata=metadata,
    first_release_tables=(
        "notifications",
        "notification_webhooks",
        "notification_deliveries",
        "notification_delivery_attempts",
        "reminder_deadlines",
    ),
)
