"""The notifications consumer's writes.

``NotificationRecorder`` is the consumer handler: inside the runner's open
transaction it records each recipient's inbox entry and, in the same
transaction, one pending delivery per extra channel (the outbox the delivery
worker drains). Texts are written then, in each recipient's time zone as
stored at that moment (``preferences``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from ..common.db import insert_ignore, write_rows
from ..common.sql_values import bound_values, one_of_bound
from ..common.tracing import current_traceparent
from ..contracts import EventEnvelope
from .adapters.tables import (
    deliveries,
    notifications,
    preferences,
    webhooks,
)
from .preferences import zone_named
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


# A recipient's active webhooks: (webhook id, the notification types it receives).
Hooks = Mapping[str, Sequence[tuple[str, Sequence[str]]]]


@dataclass(frozen=True)
class Audience:
    """What recording needs to know of some recipients: the time zone of each who
    chose one (the rest read UTC) and the active webhooks of each who has any."""

    zones: dict[str, ZoneInfo] = field(default_factory=dict)
    webhooks: dict[str, list[tuple[str, Sequence[str]]]] = field(default_factory=dict)


def read_audience(conn: sa.Connection, user_ids: Iterable[str]) -> Audience:
    """The ``Audience`` of ``user_ids``, in one statement in the caller's transaction
    (their preferences and their webhooks side by side), rather than one read for
    the zones and then, per inserted row, a probe for webhooks."""
    ids = sorted(set(user_ids))
    audience = Audience()
    if not ids:
        return audience
    dialect = conn.dialect.name
    rows = conn.execute(_audience_query(dialect), {"ids": bound_values(dialect, ids)})
    for user_id, time_zone, hook_id, event_types in rows:
        if hook_id is None:
            audience.zones[user_id] = zone_named(time_zone)
        else:
            audience.webhooks.setdefault(user_id, []).append((hook_id, event_types or []))
    return audience


@functools.cache
def _audience_query(dialect: str) -> sa.CompoundSelect[Any]:
    """``read_audience``'s statement, built once (the consumer runs it every batch):
    a preference row has no webhook id, a webhook row no time zone."""
    p, w = preferences, webhooks
    no_types = sa.type_coerce(sa.null(), w.c.event_types.type).label("event_types")
    return sa.union_all(
        sa.select(
            p.c.user_id,
            p.c.time_zone,
            sa.type_coerce(sa.null(), w.c.id.type).label("hook_id"),
            no_types,
        ).where(one_of_bound(dialect, p.c.user_id, "ids")),
        sa.select(
            w.c.owner_id,
            sa.type_coerce(sa.null(), p.c.time_zone.type),
            w.c.id,
            w.c.event_types,
        ).where(one_of_bound(dialect, w.c.owner_id, "ids"), w.c.active.is_(True)),
    )


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
        audience = read_audience(conn, {u for e in events for u in (e.client_id, e.freelancer_id)})
        calendars = calendars or {}
        now = self.clock()
        zones = audience.zones
        rows = [
            row
            for event in events
            for row in inbox_rows_for_event(
                event, now, zones, calendars.get(event.id) if calendars else None
            )
        ]
        return self._record(conn, rows, now, traceparents, audience.webhooks)

    def record(
        self,
        conn: sa.Connection,
        drafts: Sequence[Draft],
        traceparents: Mapping[str, str | None] | None = None,
        webhooks: Hooks | None = None,
    ) -> int:
        """Records drafts not yet recorded (by their stable id); returns how many were new.

        ``webhooks``: the recipients' active webhooks as ``read_audience`` read them in
        this transaction (None: read here)."""
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
            webhooks,
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
        hooks: Hooks | None = None,
    ) -> int:
        if not rows:
            return 0
        if hooks is None:
            hooks = read_audience(conn, {row["recipient_id"] for row in rows}).webhooks
        inserted = write_rows(conn, self._insert(conn), rows)
        if not self.email_domain and not hooks:
            self.recorded += len(inserted)
            return len(inserted)  # no channel but the inbox: no deliveries
        by_id = {row["id"]: row for row in rows}
        # Rows already recorded return nothing: their deliveries were recorded with them.
        new = [by_id[row.id] for row in inserted]
        outbox = []
        current = current_traceparent()
        for draft in new:
            traceparent = (traceparents or {}).get(draft.get("event_id") or "", current)
            targets: list[tuple[str, str | None, str | None]] = [
                ("webhook", hook_id, None)
                for hook_id, event_types in hooks.get(draft["recipient_id"], ())
                if draft["type"] in event_types
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
        """The inbox insert: a row already recorded (its stable id) stays, and only the
        new ones' ids come back (they alone get deliveries and count as recorded)."""
        statement = cls._inserts.get(conn.dialect.name)
        if statement is None:
            statement = cls._inserts[conn.dialect.name] = insert_ignore(
                conn, notifications
            ).returning(notifications.c.id)
        return statement


# ---------------------------------------------------------------------- queries
