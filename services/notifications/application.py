"""Use cases of the notifications service's API.

``Inbox`` answers the HTTP API: a caller's own notifications and webhooks, never
anyone else's. (The consumer's writes are ``recorder.NotificationRecorder``.)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import sqlalchemy as sa

from ..common.tracing import current_traceparent
from .adapters.tables import (
    attempts,
    deliveries,
    notifications,
    webhooks,
)
from .webhook_urls import UrlGuard, normalised_url


class NotFoundError(Exception):
    """No such notification or webhook for this caller (someone else's counts as none)."""


class DuplicateWebhookError(Exception):
    """The caller already registered this URL (compared as ``normalised_url``)."""


class WebhookLimitError(Exception):
    """The caller already has the most webhooks a user may register."""


class WebhookStateError(Exception):
    """The webhook cannot do this now (e.g. redeliver while it is inactive)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


WEBHOOK_DISABLED = "webhook.disabled"
NOTICE_ID_NAMESPACE = uuid5(NAMESPACE_URL, "urn:interviews:notice")


def webhook_disabled_notice(
    hook: Mapping[str, Any] | sa.RowMapping, reason: str, at: datetime
) -> dict[str, Any]:
    """The inbox row telling a webhook's owner that it was disabled and why. Its id is
    stable per webhook and moment, so recording it twice keeps one."""
    return {
        "id": str(uuid5(NOTICE_ID_NAMESPACE, f"{WEBHOOK_DISABLED}:{hook['id']}:{at.isoformat()}")),
        "recipient_id": hook["owner_id"],
        "recipient_role": hook.get("owner_role") or "client",
        "kind": "system",
        "type": WEBHOOK_DISABLED,
        "title": "Webhook disabled",
        "message": f"Your webhook {hook['url']} was disabled: {reason}. Once the receiver"
        f" works again, resume it with PATCH /webhooks/{hook['id']} and active true.",
        # Not about an interview: the columns are NOT NULL in older databases.
        "interview_id": "",
        "job_id": "",
        "event_id": None,
        "position": None,
        "occurred_at": at,
        "created_at": at,
        "read_at": None,
        "details": {"webhook_id": hook["id"], "url": hook["url"], "reason": reason},
    }


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

    def __init__(
        self,
        engine: sa.Engine,
        clock: Callable[[], datetime],
        guard: UrlGuard | None = None,
        *,
        max_webhooks: int = 10,
        secret_grace: timedelta = timedelta(hours=24),
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.guard = guard or UrlGuard()
        self.max_webhooks = max_webhooks
        self.secret_grace = secret_grace
        self.on_queued = on_queued

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
        self,
        owner_id: str,
        url: str,
        secret: str,
        event_types: Iterable[str],
        owner_role: str | None = None,
    ) -> dict[str, Any]:
        """A new webhook to a public address (``UrlNotAllowedError`` otherwise), unless
        the owner has one for the same normalised URL or already has the most allowed."""
        self.guard.check(url, must_resolve=False)
        now = self.clock()
        row = {
            "id": str(uuid.uuid4()),
            "owner_id": owner_id,
            "owner_role": owner_role,
            "url": url,
            "normalized_url": normalised_url(url),
            "secret": secret,
            "event_types": list(dict.fromkeys(event_types)),
            "active": True,
            "dead_in_a_row": 0,
            "created_at": now,
            "updated_at": now,
        }
        try:
            with self.engine.begin() as conn:
                _serialise_owner(conn, owner_id)
                theirs = conn.execute(
                    sa.select(webhooks.c.url, webhooks.c.normalized_url).where(
                        webhooks.c.owner_id == owner_id
                    )
                ).all()
                if any(
                    (h.normalized_url or normalised_url(h.url)) == row["normalized_url"]
                    for h in theirs
                ):
                    raise DuplicateWebhookError(f"you already registered a webhook for {url}")
                if len(theirs) >= self.max_webhooks:
                    raise WebhookLimitError(
                        f"you already have {len(theirs)} webhooks, the most a user may have;"
                        " delete one first"
                    )
                conn.execute(webhooks.insert().values(**row))
        except sa.exc.IntegrityError:
            raise DuplicateWebhookError(f"you already registered a webhook for {url}") from None
        return row | {"deliveries": [], "delivery_counts": {}}

    def delete_webhook(self, owner_id: str, webhook_id: UUID) -> None:
        """Removes the webhook; its pending deliveries die with it (their history stays)."""
        now = self.clock()
        with self.engine.begin() as conn:
            deleted = conn.execute(
                webhooks.delete().where(
                    webhooks.c.id == str(webhook_id), webhooks.c.owner_id == owner_id
                )
            )
            if deleted.rowcount != 1:
                raise NotFoundError(f"no webhook {webhook_id}")
            conn.execute(
                deliveries.update()
                .where(deliveries.c.webhook_id == str(webhook_id), deliveries.c.status == "pending")
                .values(status="dead", last_error="webhook deleted", updated_at=now)
            )

    def update_webhook(
        self,
        owner_id: str,
        webhook_id: UUID,
        *,
        active: bool | None = None,
        event_types: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Pauses or resumes a webhook, or changes its types. Resuming checks the URL
        again and forgets the dead deliveries counted against it."""
        with self.engine.begin() as conn:
            hook = self._own_hook(conn, owner_id, webhook_id, for_update=True)
            values: dict[str, Any] = {"updated_at": self.clock()}
            if event_types is not None:
                values["event_types"] = list(dict.fromkeys(event_types))
            if active is True and not hook["active"]:
                self.guard.check(hook["url"], must_resolve=False)
                values |= {"active": True, "dead_in_a_row": 0, "disabled_reason": None}
            elif active is False and hook["active"]:
                values |= {"active": False, "disabled_reason": "paused by its owner"}
            conn.execute(webhooks.update().where(webhooks.c.id == hook["id"]).values(**values))
        return self.get_webhook(owner_id, webhook_id)

    def rotate_secret(self, owner_id: str, webhook_id: UUID, secret: str) -> dict[str, Any]:
        """The new secret signs from now on; the previous one also signs (a second
        signature in ``X-Signature``) until the grace period ends, so the receiver
        can switch without losing a call."""
        now = self.clock()
        with self.engine.begin() as conn:
            hook = self._own_hook(conn, owner_id, webhook_id, for_update=True)
            if hmac_equal(hook["secret"], secret):
                raise WebhookStateError("same_secret", "the new secret is the current one")
            conn.execute(
                webhooks.update()
                .where(webhooks.c.id == hook["id"])
                .values(
                    secret=secret,
                    previous_secret=hook["secret"],
                    previous_secret_until=now + self.secret_grace,
                    updated_at=now,
                )
            )
        return self.get_webhook(owner_id, webhook_id)

    def redeliver(self, owner_id: str, webhook_id: UUID, notification_id: UUID) -> dict[str, Any]:
        """Queues one of the caller's notifications (of a type the webhook receives)
        to the webhook again. A redelivery already waiting is returned, not doubled."""
        now = self.clock()
        with self.engine.begin() as conn:
            hook = self._own_hook(conn, owner_id, webhook_id, for_update=True)
            if not hook["active"]:
                raise WebhookStateError(
                    "webhook_inactive", "the webhook is inactive: activate it first"
                )
            note = conn.execute(
                sa.select(notifications.c.id, notifications.c.type).where(
                    notifications.c.id == str(notification_id),
                    notifications.c.recipient_id == owner_id,
                )
            ).first()
            if note is None:
                raise NotFoundError(f"no notification {notification_id}")
            if note.type not in (hook["event_types"] or []):
                raise WebhookStateError(
                    "type_not_subscribed",
                    f"the webhook does not receive {note.type} notifications",
                )
            waiting = conn.execute(
                sa.select(deliveries.c.id).where(
                    deliveries.c.webhook_id == hook["id"],
                    deliveries.c.notification_id == note.id,
                    deliveries.c.status == "pending",
                )
            ).first()
            if waiting is not None:
                new_id = waiting.id
            else:
                new_id = str(uuid.uuid4())
                conn.execute(
                    deliveries.insert().values(
                        id=new_id,
                        notification_id=note.id,
                        recipient_id=owner_id,
                        channel="webhook",
                        webhook_id=hook["id"],
                        address=None,
                        status="pending",
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                        updated_at=now,
                        traceparent=current_traceparent(),
                    )
                )
            row = conn.execute(sa.select(deliveries).where(deliveries.c.id == new_id)).mappings()
            tried = self._attempts_of(conn, [new_id]).get(new_id, [])
            delivery = dict(row.one()) | {"type": note.type, "attempt_log": tried}
        if self.on_queued is not None:
            self.on_queued()
        return delivery

    def get_webhook(self, owner_id: str, webhook_id: UUID) -> dict[str, Any]:
        for hook in self.list_webhooks(owner_id, 20):
            if hook["id"] == str(webhook_id):
                return hook
        raise NotFoundError(f"no webhook {webhook_id}")

    @staticmethod
    def _own_hook(
        conn: sa.Connection, owner_id: str, webhook_id: UUID, *, for_update: bool = False
    ) -> dict[str, Any]:
        query = sa.select(webhooks).where(
            webhooks.c.id == str(webhook_id), webhooks.c.owner_id == owner_id
        )
        if for_update and conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).mappings().first()
        if row is None:
            raise NotFoundError(f"no webhook {webhook_id}")
        return dict(row)

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
                counts: dict[str, int] = dict(
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


def hmac_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _serialise_owner(conn: sa.Connection, owner_id: str) -> None:
    """Holds one owner's registrations back to back, so two at once cannot both pass
    the duplicate and limit checks: a transaction lock on PostgreSQL; on SQLite a write
    that takes the database's write lock before the checks read."""
    if conn.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.blake2b(owner_id.encode(), digest_size=8).digest(), "big")
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key - (1 << 63))))
    else:
        conn.execute(webhooks.update().where(sa.false()).values(owner_id=webhooks.c.owner_id))
