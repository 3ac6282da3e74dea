"""The notifications consumer's writes.

``NotificationRecorder`` is the consumer handler: inside the runner's open
transaction it records each recipient's inbox entry and, in the same
transaction, one pending delivery per extra channel (the outbox the delivery
worker drains). Texts are written then, in each recipient's time zone as
stored at that moment (``preferences``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import sqlalchemy as sa

from ..common.db import insert_ignore, write_rows
from ..common.tracing import current_traceparent
from ..contracts import EventEnvelope
from .adapters.tables import (
    deliveries,
    notifications,
    webhooks,
)
from .preferences import time_zones
from .rules import CalendarChange, Draft, inbox_rows_for_event, uuid5_text, uuid_text

DELIVERY_ID_NAMESPACE = uuid5(NAMESPACE_URL, "urn:interviews:notification-delivery")
_LOCAL_PART = re.compile(r"^[A-Za-z0-9._%+-]{1,64}$")


def delivery_id(notification_id: UUID | str, channel: str, target: str) -> str:
    return uuid5_text(_DELIVERY_ID_PREFIX, f"{notification_id}:{channel}:{target}")


_DELIVERY_ID_PREFIX = DELIVERY_ID_NAMESPACE.bytes


def email_address(user_id: str, domain: str | None) -> str | None:
    """``{user_id}@{domain}``, or None when e-mail is off or the id is no valid local part."""
    if not domain or not _LOCAL_PART.match(user_id):
        return None
    return f"{user_id}@{domain}"


class NotificationRecorder:
    """The consumer handler for every event type (see ``rules.RULES``)."""

    def __init__(self, clock: Callable[[], datetime], email_domain: str | None = None) -> None:
        self.clock = clock
        self.email_domain = email_domain
        self.recorded = 0
        self.queued = 0  # deliveries this process queued (the delivery worker is woken)

    def __call__(self, conn: sa.Connection, event: EventEnvelope) -> None:
        self.record_events(conn, [event])

    def record_events(
        self,
        conn: sa.Connection,
        events: Sequence[EventEnvelope],
        calendars: Mapping[UUID, CalendarChange] | None = None,
        traceparents: Mapping[str, str | None] | None = None,
    ) -> int:
        """The drafts of many events (a consumer batch), in a few statements, each
        written in its recipient's time zone as stored now.

        ``calendars`` (by event id, from ``ReminderIndex.apply``): the meeting's
        calendar event as that event left it, stored in the details so the e-mail
        carries it as an ``.ics``. ``traceparents``: by event id, the span that
        applied it (its deliveries continue that trace); else the current span's."""
        zones = time_zones(conn, {u for e in events for u in (e.client_id, e.freelancer_id)})
        calendars = calendars or {}
        now = self.clock()
        rows = [
            row
            for event in events
            for row in inbox_rows_for_event(event, now, zones, calendars.get(event.id))
        ]
        return self._record(conn, rows, now, traceparents)

    def record(
        self,
        conn: sa.Connection,
        drafts: Sequence[Draft],
        traceparents: Mapping[str, str | None] | None = None,
    ) -> int:
        """Records drafts not yet recorded (by their stable id); returns how many were new.

        One statement in the common case: the inbox rows, which also say whether
        their recipient has webhooks (only then are the webhooks read).
        """
        now = self.clock()
        return self._record(
            conn,
            [
                {
                    "id": d.id,
                    "recipient_id": d.recipient_id,
                    "recipient_role": d.recipient_role,
                    "kind": d.kind,
                    "type": d.type,
                    "title": d.title,
                    "message": d.message,
                    "interview_id": uuid_text(d.interview_id),
                    "job_id": d.job_id,
                    "event_id": uuid_text(d.event_id) if d.event_id else None,
                    "position": d.position,
                    "occurred_at": d.occurred_at,
                    "created_at": now,
                    "read_at": None,
                    "details": d.details,
                    "key_id": d.key_id,
                    "message_redacted": d.message_redacted,
                    "erased_fields": list(d.erased_fields),
                }
                for d in drafts
            ],
            now,
            traceparents,
        )

    def record_notice(self, conn: sa.Connection, notice: dict[str, Any]) -> bool:
        """Records a system notice (``webhook_disabled_notice``) with its e-mail; True if new."""
        return self._record(conn, [notice], self.clock()) == 1

    def _record(
        self,
        conn: sa.Connection,
        rows: list[dict[str, Any]],
        now: datetime,
        traceparents: Mapping[str, str | None] | None = None,
    ) -> int:
        if not rows:
            return 0
        inserted = write_rows(conn, self._insert(conn), rows)
        if not self.email_domain and not any(row.has_webhooks for row in inserted):
            self.recorded += len(inserted)
            return len(inserted)  # no channel but the inbox: no deliveries
        by_id = {row["id"]: row for row in rows}
        # Rows already recorded return nothing: their deliveries were recorded with them.
        new = [by_id[row.id] for row in inserted]
        with_hooks = {row.recipient_id for row in inserted if row.has_webhooks}
        hooks: Sequence[sa.Row[Any, Any, Any]] = []
        if with_hooks:
            hooks = conn.execute(
                sa.select(webhooks.c.id, webhooks.c.owner_id, webhooks.c.event_types).where(
                    webhooks.c.owner_id.in_(with_hooks), webhooks.c.active.is_(True)
                )
            ).all()
        outbox = []
        current = current_traceparent()
        for draft in new:
            traceparent = (traceparents or {}).get(draft.get("event_id") or "", current)
            targets: list[tuple[str, str | None, str | None]] = [
                ("webhook", hook.id, None)
                for hook in hooks
                if hook.owner_id == draft["recipient_id"]
                and draft["type"] in (hook.event_types or [])
            ]
            address = email_address(draft["recipient_id"], self.email_domain)
            if address is not None:
                targets.append(("email", None, address))
            outbox += [
                {
                    "id": delivery_id(draft["id"], channel, hook_id or address or ""),
                    "notification_id": draft["id"],
                    "recipient_id": draft["recipient_id"],
                    "channel": channel,
                    "webhook_id": hook_id,
                    "address": address,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "lease_until": None,
                    "lease_token": None,
                    "last_error": None,
                    "created_at": now,
                    "updated_at": now,
                    "delivered_at": None,
                    "traceparent": traceparent,
                }
                for channel, hook_id, address in targets
            ]
        if outbox:
            write_rows(conn, insert_ignore(conn, deliveries), outbox)
            self.queued += len(outbox)
        self.recorded += len(new)
        return len(new)

    _inserts: dict[str, Any] = {}

    @classmethod
    def _insert(cls, conn: sa.Connection) -> Any:
        statement = cls._inserts.get(conn.dialect.name)
        if statement is None:
            # The inserted row's recipient (a RETURNING expression may read the new row).
            recipient: sa.ColumnClause[Any] = sa.literal_column(
                f"{notifications.name}.recipient_id"
            )
            has_webhooks = sa.exists().where(
                webhooks.c.owner_id == recipient, webhooks.c.active.is_(True)
            )
            statement = cls._inserts[conn.dialect.name] = insert_ignore(
                conn, notifications
            ).returning(
                notifications.c.id,
                notifications.c.recipient_id,
                has_webhooks.label("has_webhooks"),
            )
        return statement


# ---------------------------------------------------------------------- queries
