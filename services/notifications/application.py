"""Use cases of the notifications service.

``NotificationRecorder`` is the consumer handler: inside the runner's open
transaction it records each recipient's inbox entry and, in the same
transaction, one pending delivery per extra channel (the outbox the delivery
worker drains). Texts are written then, in each recipient's time zone as
stored at that moment (``preferences``). ``Inbox`` answers the HTTP API: a
caller's own notifications and webhooks, never anyone else's.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import sqlalchemy as sa

from ..contracts import EventEnvelope
from .adapters.tables import (
    attempts,
    deliveries,
    insert_ignoring_duplicates,
    notifications,
    webhooks,
)
from .preferences import time_zones
from .rules import Draft, drafts_for_event

DELIVERY_ID_NAMESPACE = uuid5(NAMESPACE_URL, "urn:interviews:notification-delivery")
_LOCAL_PART = re.compile(r"^[A-Za-z0-9._%+-]{1,64}$")


def delivery_id(notification_id: UUID | str, channel: str, target: str) -> str:
    return str(uuid5(DELIVERY_ID_NAMESPACE, f"{notification_id}:{channel}:{target}"))


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

    def __call__(self, conn: sa.Connection, event: EventEnvelope) -> None:
        self.record_events(conn, [event])

    def record_events(self, conn: sa.Connection, events: Sequence[EventEnvelope]) -> int:
        """The drafts of many events (a consumer batch), in a few statements, each
        written in its recipient's time zone as stored now."""
        zones = time_zones(conn, {u for e in events for u in (e.client_id, e.freelancer_id)})
        return self.record(conn, [d for event in events for d in drafts_for_event(event, zones)])

    def record(self, conn: sa.Connection, drafts: Sequence[Draft]) -> int:
        """Records drafts not yet recorded (by their stable id); returns how many were new.

        One statement in the common case: the inbox rows, which also say whether
        their recipient has webhooks (only then are the webhooks read).
        """
        if not drafts:
            return 0
        now = self.clock()
        by_id = {str(d.id): d for d in drafts}
        inserted = conn.execute(
            self._insert(conn),
            [
                {
                    "id": str(d.id),
                    "recipient_id": d.recipient_id,
                    "recipient_role": d.recipient_role,
                    "kind": d.kind,
                    "type": d.type,
                    "title": d.title,
                    "message": d.message,
                    "interview_id": str(d.interview_id),
                    "job_id": d.job_id,
                    "event_id": str(d.event_id) if d.event_id else None,
                    "position": d.position,
                    "occurred_at": d.occurred_at,
                    "created_at": now,
                    "read_at": None,
                    "details": d.details,
                }
                for d in drafts
            ],
        ).all()
        # Rows already recorded return nothing: their deliveries were recorded with them.
        new = [by_id[row.id] for row in inserted]
        with_hooks = {row.recipient_id for row in inserted if row.has_webhooks}
        hooks = []
        if with_hooks:
            hooks = conn.execute(
                sa.select(webhooks.c.id, webhooks.c.owner_id, webhooks.c.event_types).where(
                    webhooks.c.owner_id.in_(with_hooks), webhooks.c.active.is_(True)
                )
            ).all()
        outbox = []
        for draft in new:
            targets: list[tuple[str, str | None, str | None]] = [
                ("webhook", hook.id, None)
                for hook in hooks
                if hook.owner_id == draft.recipient_id and draft.type in (hook.event_types or [])
            ]
            address = email_address(draft.recipient_id, self.email_domain)
            if address is not None:
                targets.append(("email", None, address))
            outbox += [
                {
                    "id": delivery_id(draft.id, channel, hook_id or address or ""),
                    "notification_id": str(draft.id),
                    "recipient_id": draft.recipient_id,
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
                }
                for channel, hook_id, address in targets
            ]
        if outbox:
            conn.execute(insert_ignoring_duplicates(conn, deliveries), outbox)
        self.recorded += len(new)
        return len(new)

    _inserts: dict[str, Any] = {}

    @classmethod
    def _insert(cls, conn: sa.Connection) -> Any:
        statement = cls._inserts.get(conn.dialect.name)
        if statement is None:
            # The inserted row's recipient (a RETURNING expression may read the new row).
            recipient = sa.literal_column(f"{notifications.name}.recipient_id")
            has_webhooks = sa.exists().where(
                webhooks.c.owner_id == recipient, webhooks.c.active.is_(True)
            )
            statement = cls._inserts[conn.dialect.name] = insert_ignoring_duplicates(
                conn, notifications
            ).returning(
                notifications.c.id,
                notifications.c.recipient_id,
                has_webhooks.label("has_webhooks"),
            )
        return statement


# ---------------------------------------------------------------------- queries


class NotFoundError(Exception):
    """No such notification or webhook for this caller (someone else's counts as none)."""


class DuplicateWebhookError(Exception):
    """The caller already registered this URL."""


class InvalidCursorError(ValueError):
    """A pagination cursor this service did not issue."""


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"n:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = raw.partition(":")
        if prefix != "n" or not number.isdigit() or len(number) > 18:
            raise ValueError(raw)
        return int(number)
    except (ValueError, UnicodeDecodeError):
        raise InvalidCursorError("cursor is not one this API issued") from None


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


_ATTEMPT_COLUMNS = (
    attempts.c.attempt,
    attempts.c.started_at,
    attempts.c.duration_ms,
    attempts.c.outcome,
    attempts.c.status_code,
    attempts.c.error,
)


class Inbox:
    """What a caller may see and change: their own notifications and webhooks."""

    def __init__(self, engine: sa.Engine, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.clock = clock

    def list_notifications(
        self, recipient_id: str, *, unread: bool | None, limit: int, cursor: str | None
    ) -> Page:
        """Newest first; ``cursor`` continues after the last item of the previous page."""
        query = sa.select(notifications).where(notifications.c.recipient_id == recipient_id)
        if unread is True:
            query = query.where(notifications.c.read_at.is_(None))
        elif unread is False:
            query = query.where(notifications.c.read_at.is_not(None))
        if cursor:
            query = query.where(notifications.c.seq < decode_cursor(cursor))
        query = query.order_by(notifications.c.seq.desc()).limit(limit + 1)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
            more = len(rows) > limit
            rows = rows[:limit]
            channels = self._deliveries_of(conn, [r["id"] for r in rows])
        items = [dict(r) | {"deliveries": channels.get(r["id"], [])} for r in rows]
        next_cursor = encode_cursor(rows[-1]["seq"]) if more and rows else None
        return Page(items, next_cursor)

    def mark_read(self, recipient_id: str, notification_id: UUID) -> dict[str, Any]:
        """Idempotent: the first read time stays."""
        mine = sa.and_(
            notifications.c.id == str(notification_id),
            notifications.c.recipient_id == recipient_id,
        )
        with self.engine.begin() as conn:
            conn.execute(
                notifications.update()
                .where(mine, notifications.c.read_at.is_(None))
                .values(read_at=self.clock())
            )
            row = conn.execute(sa.select(notifications).where(mine)).mappings().first()
            if row is None:
                raise NotFoundError(f"no notification {notification_id}")
            channels = self._deliveries_of(conn, [row["id"]])
        return dict(row) | {"deliveries": channels.get(row["id"], [])}

    def register_webhook(
        self, owner_id: str, url: str, secret: str, event_types: Iterable[str]
    ) -> dict[str, Any]:
        row = {
            "id": str(uuid.uuid4()),
            "owner_id": owner_id,
            "url": url,
            "secret": secret,
            "event_types": list(dict.fromkeys(event_types)),
            "active": True,
            "created_at": self.clock(),
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(webhooks.insert().values(**row))
        except sa.exc.IntegrityError:
            raise DuplicateWebhookError(f"you already registered a webhook for {url}") from None
        return row | {"deliveries": [], "delivery_counts": {}}

    def list_webhooks(self, owner_id: str, deliveries_limit: int) -> list[dict[str, Any]]:
        """The caller's webhooks, each with its latest deliveries and their attempts."""
        with self.engine.connect() as conn:
            hooks = (
                conn.execute(
                    sa.select(webhooks)
                    .where(webhooks.c.owner_id == owner_id)
                    .order_by(webhooks.c.created_at, webhooks.c.id)
                )
                .mappings()
                .all()
            )
            result = []
            for hook in hooks:
                counts = dict(
                    conn.execute(
                        sa.select(deliveries.c.status, sa.func.count())
                        .where(deliveries.c.webhook_id == hook["id"])
                        .group_by(deliveries.c.status)
                    ).all()
                )
                rows = (
                    conn.execute(
                        sa.select(deliveries, notifications.c.type)
                        .join(notifications, notifications.c.id == deliveries.c.notification_id)
                        .where(deliveries.c.webhook_id == hook["id"])
                        .order_by(notifications.c.seq.desc(), deliveries.c.id)
                        .limit(deliveries_limit)
                    )
                    .mappings()
                    .all()
                )
                tried = self._attempts_of(conn, [r["id"] for r in rows])
                result.append(
                    dict(hook)
                    | {
                        "delivery_counts": counts,
                        "deliveries": [
                            dict(r) | {"attempt_log": tried.get(r["id"], [])} for r in rows
                        ],
                    }
                )
        return result

    def _deliveries_of(
        self, conn: sa.Connection, notification_ids: list[str]
    ) -> dict[str, list[dict[str, Any]]]:
        if not notification_ids:
            return {}
        rows = (
            conn.execute(
                sa.select(deliveries)
                .where(deliveries.c.notification_id.in_(notification_ids))
                .order_by(deliveries.c.channel, deliveries.c.id)
            )
            .mappings()
            .all()
        )
        tried = self._attempts_of(conn, [r["id"] for r in rows])
        out: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            out.setdefault(r["notification_id"], []).append(
                dict(r) | {"attempt_log": tried.get(r["id"], [])}
            )
        return out

    def _attempts_of(
        self, conn: sa.Connection, delivery_ids: list[str]
    ) -> dict[str, list[dict[str, Any]]]:
        if not delivery_ids:
            return {}
        rows = conn.execute(
            sa.select(attempts.c.delivery_id, *_ATTEMPT_COLUMNS)
            .where(attempts.c.delivery_id.in_(delivery_ids))
            .order_by(attempts.c.delivery_id, attempts.c.attempt)
        ).mappings()
        out: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            out.setdefault(r["delivery_id"], []).append(dict(r))
        return out
