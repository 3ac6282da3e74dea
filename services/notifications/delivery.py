"""The delivery worker: drains the outbox of pending webhook and e-mail deliveries.

A delivery is claimed with a lease (so several workers share the work and a
worker that dies mid-send is replaced once its lease runs out), sent, and its
attempt recorded. A failed attempt is retried after an exponential backoff
with jitter; after ``max_attempts`` the delivery is dead. Sending may repeat
after a crash between sending and recording (the receiver deduplicates by the
notification id); the inbox entry itself is never touched here.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from opentelemetry.trace import SpanKind, StatusCode

from ..common.db import in_transaction, insert_ignore
from ..common.loop import LoopWorker
from ..common.tracing import continued_span
from .adapters.tables import attempts, deliveries, notifications, webhooks
from .application import webhook_disabled_notice

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackoffPolicy:
    """Delay after failed attempt ``n`` (1-based): ``min(max, base * factor**(n-1))``,
    shortened by up to ``jitter`` (a fraction) at random so retries spread out."""

    base_seconds: float = 5.0
    factor: float = 2.0
    max_seconds: float = 3600.0
    jitter: float = 0.2
    max_attempts: int = 8

    def nominal(self, attempt: int) -> float:
        return float(min(self.max_seconds, self.base_seconds * self.factor ** (attempt - 1)))

    def delay(self, attempt: int, rand: float) -> float:
        return self.nominal(attempt) * (1.0 - self.jitter * rand)


@dataclass(frozen=True)
class OutgoingMessage:
    """One attempt of one delivery, with everything a channel needs to send it."""

    delivery_id: str
    notification_id: str
    attempt: int
    lease_token: str
    channel: str
    recipient_id: str
    title: str
    text: str
    body: bytes
    url: str | None = None
    secret: str | None = None
    address: str | None = None
    webhook_id: str | None = None
    webhook_active: bool = True
    # Within the grace period after a rotation the previous secret signs too.
    previous_secret: str | None = None
    # An e-mail's meeting invitation (``meeting_invitation``): built into an .ics.
    calendar: Mapping[str, Any] | None = None
    traceparent: str | None = None  # of the span that queued it


@dataclass(frozen=True)
class SendResult:
    """One attempt's outcome. ``final``: retrying cannot help (the delivery dies now);
    ``gone``: the receiver answered 410 Gone (the webhook is deactivated)."""

    ok: bool
    status_code: int | None
    error: str | None
    final: bool = False
    gone: bool = False


class Sender(Protocol):
    """A channel adapter (webhook, SMTP); a fake in tests remembers what it sent."""

    def send(self, message: OutgoingMessage, now: datetime) -> SendResult: ...


def meeting_invitation(row: Mapping[str, Any] | sa.RowMapping) -> dict[str, Any] | None:
    """What an e-mail's ``.ics`` is built from: the calendar event the notification's
    event left (``details["calendar"]``, see ``rules.CalendarChange``) and who meets."""
    details = row["details"] or {}
    calendar = details.get("calendar")
    if not calendar:
        return None
    return dict(calendar) | {
        "interview_id": row["interview_id"],
        "job_id": row["job_id"],
        "client_id": details.get("client_id"),
        "freelancer_id": details.get("freelancer_id"),
    }


def notification_body(row: Mapping[str, Any] | sa.RowMapping) -> bytes:
    """The JSON a webhook receives: the same bytes on every attempt."""
    payload = {
        "id": row["id"],
        "kind": row["kind"],
        "type": row["type"],
        "recipient": {"id": row["recipient_id"], "role": row["recipient_role"]},
        "title": row["title"],
        "message": row["message"],
        "interview_id": row["interview_id"],
        "job_id": row["job_id"],
        "event_id": row["event_id"],
        "occurred_at": row["occurred_at"].isoformat(),
        "created_at": row["created_at"].isoformat(),
        "details": row["details"],
        "erased_fields": list(row.get("erased_fields") or []),
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


class DeliveryWorker(LoopWorker):
    """Claims due deliveries, sends them, records each attempt. ``run_once`` for tests;
    ``start``/``stop`` run it on a thread, ``wake`` shortens the wait after new work."""

    def __init__(
        self,
        engine: sa.Engine,
        senders: Mapping[str, Sender],
        *,
        clock: Callable[[], datetime],
        policy: BackoffPolicy | None = None,
        lease_seconds: float = 60.0,
        batch_size: int = 50,
        concurrency: int = 8,
        poll_seconds: float = 1.0,
        rng: random.Random | None = None,
        disable_after_dead: int = 5,
        notify: Callable[[sa.Connection, dict[str, Any]], object] | None = None,
    ) -> None:
        self.engine = engine
        self.senders = dict(senders)
        self.clock = clock
        self.policy = policy or BackoffPolicy()
        self.lease = timedelta(seconds=lease_seconds)
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.rng = rng or random.Random()
        self.disable_after_dead = disable_after_dead
        # Records an inbox notice (NotificationRecorder.record_notice) in the given transaction.
        self.notify = notify
        self._rng_lock = threading.Lock()
        super().__init__("delivery-worker", on_error_delay=poll_seconds, logger=log)
        self._pool: ThreadPoolExecutor | None = None
        self.counts: dict[str, int] = {"delivered": 0, "failed": 0, "dead": 0, "unknown": 0}
        self.disabled = 0  # webhooks this worker disabled (410 Gone or too many dead)

    # ------------------------------------------------------------------ running

    def run_once(self) -> int:
        """Sends every delivery due now (one batch); returns how many were attempted."""
        claimed = self._claim(self.clock())
        if not claimed:
            return 0
        if self.concurrency > 1 and len(claimed) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, "delivery")
            list(self._pool.map(self._deliver, claimed))
        else:
            for message in claimed:
                self._deliver(message)
        return len(claimed)

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for sender in self.senders.values():
            close = getattr(sender, "close", None)
            if close is not None:
                close()

    def _round(self) -> float:
        return 0.0 if self.run_once() else self.poll_seconds

    # ------------------------------------------------------------------ claiming

    def _claim(self, now: datetime) -> list[OutgoingMessage]:
        claimed = in_transaction(self.engine, lambda conn: self._claim_in(conn, now))
        if not claimed:
            return []
        return self._load(claimed)

    def _claim_in(self, conn: sa.Connection, now: datetime) -> dict[str, tuple[int, str]]:
        due = sa.and_(
            deliveries.c.status == "pending",
            deliveries.c.next_attempt_at <= now,
            sa.or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until <= now),
        )
        query = (
            sa.select(deliveries.c.id, deliveries.c.attempts, deliveries.c.lease_token)
            .where(due)
            .order_by(deliveries.c.next_attempt_at)
            .limit(self.batch_size)
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        claimed: dict[str, tuple[int, str]] = {}
        for row in conn.execute(query).all():
            if row.lease_token is not None:
                # A worker claimed it and died before recording the outcome.
                self._record_attempt(
                    conn,
                    row.id,
                    row.attempts,
                    now,
                    None,
                    SendResult(False, None, "worker stopped before recording the outcome"),
                    outcome="unknown",
                )
                self.counts["unknown"] += 1
                if row.attempts >= self.policy.max_attempts:
                    conn.execute(
                        deliveries.update()
                        .where(deliveries.c.id == row.id, due)
                        .values(
                            status="dead",
                            lease_until=None,
                            lease_token=None,
                            updated_at=now,
                            last_error="worker stopped before recording the outcome",
                        )
                    )
                    continue
            token = str(uuid.uuid4())
            updated = conn.execute(
                deliveries.update()
                .where(deliveries.c.id == row.id, due)
                .values(
                    attempts=deliveries.c.attempts + 1,
                    lease_until=now + self.lease,
                    lease_token=token,
                    updated_at=now,
                )
            )
            if updated.rowcount == 1:
                claimed[row.id] = (row.attempts + 1, token)
        return claimed

    def _load(self, claimed: dict[str, tuple[int, str]]) -> list[OutgoingMessage]:
        query = (
            sa.select(
                deliveries.c.id.label("delivery_id"),
                deliveries.c.channel,
                deliveries.c.address,
                deliveries.c.webhook_id,
                deliveries.c.traceparent,
                webhooks.c.url,
                webhooks.c.secret,
                webhooks.c.active.label("webhook_active"),
                webhooks.c.previous_secret,
                webhooks.c.previous_secret_until,
                notifications,
            )
            .join(notifications, notifications.c.id == deliveries.c.notification_id)
            .outerjoin(webhooks, webhooks.c.id == deliveries.c.webhook_id)
            .where(deliveries.c.id.in_(list(claimed)))
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        now = self.clock()
        messages = []
        for row in rows:
            until = row["previous_secret_until"]
            previous = row["previous_secret"] if until is not None and until > now else None
            attempt, token = claimed[row["delivery_id"]]
            messages.append(
                OutgoingMessage(
                    delivery_id=row["delivery_id"],
                    notification_id=row["id"],
                    attempt=attempt,
                    lease_token=token,
                    channel=row["channel"],
                    recipient_id=row["recipient_id"],
                    title=row["title"],
                    text=row["message"],
                    body=notification_body(row),
                    url=row["url"],
                    secret=row["secret"],
                    address=row["address"],
                    webhook_id=row["webhook_id"],
                    webhook_active=row["webhook_active"] is not False,
                    previous_secret=previous,
                    calendar=meeting_invitation(row) if row["channel"] == "email" else None,
                    traceparent=row["traceparent"],
                )
            )
        return messages

    # ------------------------------------------------------------------ sending

    def _deliver(self, message: OutgoingMessage) -> None:
        started = self.clock()
        t0 = time.perf_counter()
        sender = self.senders.get(message.channel)
        if message.channel == "webhook" and message.url is None:
            result = SendResult(False, None, "webhook deleted", final=True)
        elif message.channel == "webhook" and not message.webhook_active:
            result = SendResult(False, None, "webhook is inactive", final=True)
        elif sender is None:
            result = SendResult(False, None, f"channel {message.channel!r} is not configured here")
        else:
            with continued_span(
                f"{message.channel} deliver",
                message.traceparent,
                # Without a trace to continue (queued outside any), a trace of its own.
                kind=SpanKind.CLIENT if message.traceparent else SpanKind.INTERNAL,
                attributes={
                    "notification.id": message.notification_id,
                    "delivery.id": message.delivery_id,
                    "delivery.attempt": message.attempt,
                },
            ) as span:
                try:
                    result = sender.send(message, started)
                except Exception as error:  # any failure is a failed attempt
                    result = SendResult(False, None, f"{type(error).__name__}: {error}"[:500])
                if not result.ok:
                    span.set_status(StatusCode.ERROR, result.error or "not delivered")
        duration_ms = (time.perf_counter() - t0) * 1000
        try:
            self._finish(message, result, started, duration_ms)
        except Exception:  # the lease runs out and the delivery is retried
            log.exception("could not record attempt %s of %s", message.attempt, message.delivery_id)

    def _finish(
        self, message: OutgoingMessage, result: SendResult, started: datetime, duration_ms: float
    ) -> None:
        now = self.clock()
        mine = sa.and_(
            deliveries.c.id == message.delivery_id,
            deliveries.c.lease_token == message.lease_token,
        )
        if result.ok:
            values: dict[str, Any] = {
                "status": "delivered",
                "delivered_at": now,
                "last_error": None,
            }
            outcome = "delivered"
        elif result.final or result.gone or message.attempt >= self.policy.max_attempts:
            values = {"status": "dead", "last_error": result.error}
            outcome = "dead"
        else:
            with self._rng_lock:
                rand = self.rng.random()
            delay = self.policy.delay(message.attempt, rand)
            values = {
                "next_attempt_at": now + timedelta(seconds=delay),
                "last_error": result.error,
            }
            outcome = "failed"

        def settle(conn: sa.Connection) -> None:
            self._record_attempt(
                conn,
                message.delivery_id,
                message.attempt,
                started,
                duration_ms,
                result,
                outcome="delivered" if result.ok else "failed",
            )
            updated = conn.execute(
                deliveries.update()
                .where(mine)
                .values(lease_until=None, lease_token=None, updated_at=now, **values)
            )
            if updated.rowcount == 1 and message.webhook_id is not None:
                self._judge_webhook(conn, message, result, outcome, now)

        in_transaction(self.engine, settle)
        self.counts["failed" if outcome == "dead" else outcome] += 1
        if outcome == "dead":
            self.counts["dead"] += 1
            # A receiver's answer may echo the notification's text: log its status
            # only; the error of a failed connection holds no user text.
            log.warning(
                "delivery %s (%s) is dead after %s attempts: %s",
                message.delivery_id,
                message.channel,
                message.attempt,
                f"status {result.status_code}" if result.status_code else result.error,
            )

    def _judge_webhook(
        self,
        conn: sa.Connection,
        message: OutgoingMessage,
        result: SendResult,
        outcome: str,
        now: datetime,
    ) -> None:
        """A delivered call clears the webhook's count of dead deliveries; 410 Gone
        deactivates it at once; ``disable_after_dead`` dead deliveries in a row
        disable it. Its owner is told in the inbox either way."""
        hook = webhooks.c
        if outcome == "delivered":
            conn.execute(
                webhooks.update()
                .where(hook.id == message.webhook_id, hook.dead_in_a_row != 0)
                .values(dead_in_a_row=0)
            )
            return
        if outcome != "dead" or (result.final and not result.gone):
            return  # a failed attempt is retried; a deleted or paused webhook is not judged
        if result.gone:
            reason = "its receiver answered 410 Gone"
        else:
            conn.execute(
                webhooks.update()
                .where(hook.id == message.webhook_id)
                .values(dead_in_a_row=hook.dead_in_a_row + 1)
            )
            dead = conn.execute(
                sa.select(hook.dead_in_a_row).where(hook.id == message.webhook_id)
            ).scalar()
            if dead is None or dead < self.disable_after_dead:
                return
            reason = f"{dead} deliveries in a row failed every attempt"
        disabled = conn.execute(
            webhooks.update()
            .where(hook.id == message.webhook_id, hook.active.is_(True))
            .values(active=False, disabled_reason=reason, updated_at=now)
        )
        if disabled.rowcount != 1:
            return  # already inactive: its owner was told then
        self.disabled += 1
        log.warning("webhook %s disabled: %s", message.webhook_id, reason)
        if self.notify is not None:
            row = conn.execute(sa.select(webhooks).where(hook.id == message.webhook_id))
            self.notify(conn, webhook_disabled_notice(row.mappings().one(), reason, now))

    @staticmethod
    def _record_attempt(
        conn: sa.Connection,
        delivery_id: str,
        attempt: int,
        started: datetime,
        duration_ms: float | None,
        result: SendResult,
        *,
        outcome: str,
    ) -> None:
        conn.execute(
            insert_ignore(conn, attempts).values(
                delivery_id=delivery_id,
                attempt=attempt,
                started_at=started,
                duration_ms=duration_ms,
                outcome=outcome,
                status_code=result.status_code,
                error=result.error,
            )
        )
