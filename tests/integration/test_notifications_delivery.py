"""Webhook and e-mail delivery against a real HTTP receiver and a real SMTP
server on loopback: signed, stable ids, retried on the backoff schedule, dead."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta

import pytest
import sqlalchemy as sa

from services.notifications.adapters.tables import attempts, deliveries
from services.notifications.adapters.webhooks import verify
from services.notifications.bootstrap import NotificationsContainer
from tests.conftest import FakeClock
from tests.support.notifications import Interview, SmtpSink, WebhookReceiver, apply, inbox_of
from tests.support.reminders import drain_together, feed

pytestmark = pytest.mark.integration

Make = Callable[..., NotificationsContainer]
SECRET = "whsec-" + "k" * 24


def test_a_webhook_call_is_signed_and_carries_the_stable_notification_id(
    make_container: Make, receiver: WebhookReceiver, clock: FakeClock
) -> None:
    c = make_container()
    c.inbox().register_webhook("f-1", receiver.url, SECRET, ["interview.invited"])
    apply(c, Interview().event("interview.invited", "client"))
    worker = c.delivery_worker()
    assert worker.run_until_idle() == 1

    (call,) = receiver.received
    (entry,) = inbox_of(c, "f-1")
    headers = {k.lower(): v for k, v in call.headers.items()}
    assert headers["x-notification-id"] == entry["id"]
    assert headers["x-delivery-attempt"] == "1"
    assert headers["x-timestamp"] == str(int(clock.now.timestamp()))
    assert verify(
        SECRET, headers["x-timestamp"], call.body, headers["x-signature"], now=clock.now.timestamp()
    )
    assert not verify(
        "wrong-secret-0000",
        headers["x-timestamp"],
        call.body,
        headers["x-signature"],
        now=clock.now.timestamp(),
    )
    assert call.json()["id"] == entry["id"]
    assert call.json()["message"] == entry["message"]
    (delivery,) = inbox_of(c, "f-1")[0]["deliveries"]
    assert delivery["status"] == "delivered" and delivery["attempts"] == 1
    assert [a["outcome"] for a in delivery["attempt_log"]] == ["delivered"]
    assert worker.run_until_idle() == 0  # nothing is sent twice


def test_the_consumer_wakes_the_delivery_worker_only_after_a_batch_that_queued_a_delivery(
    make_container: Make, receiver: WebhookReceiver
) -> None:
    """An inbox entry with no channel to send it on leaves the worker asleep (it has
    nothing to send); a webhook call queued wakes it once the batch is committed."""
    c = make_container()
    worker = c.delivery_worker()
    wakes: list[int] = []
    worker.wake = lambda *_: wakes.append(1)  # type: ignore[method-assign]
    interview = Interview()
    feed(c, interview.event("interview.invited", "client"))
    assert len(inbox_of(c, "f-1")) == 1
    assert wakes == [], "nothing queued for the worker, yet it was woken"

    c.inbox().register_webhook("c-1", receiver.url, SECRET, ["interview.accepted"])
    feed(c, interview.event("interview.accepted", "freelancer"))
    assert len(wakes) == 1
    assert worker.run_until_idle() == 1
    assert [call.json()["type"] for call in receiver.received] == ["interview.accepted"]


def test_an_email_goes_to_the_user_address_over_smtp(make_container: Make, smtp: SmtpSink) -> None:
    c = make_container(
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        email_domain="example.test",
        smtp_sender="hiring@example.test",
    )
    interview = Interview()
    apply(
        c, interview.event("interview.started", "client", {"scheduled_at": "2026-11-30T09:00:00Z"})
    )
    assert c.delivery_worker().run_until_idle() == 2
    by_recipient = {m["To"]: m for m in smtp.parsed()}
    assert set(by_recipient) == {"c-1@example.test", "f-1@example.test"}
    mail = by_recipient["f-1@example.test"]
    (entry,) = inbox_of(c, "f-1")
    assert mail["From"] == "hiring@example.test"
    assert mail["Subject"] == "Interview started"
    assert mail["X-Notification-Id"] == entry["id"]
    assert mail["Message-ID"] == f"<{entry['id']}@example.test>"
    assert "Monday 30 November 2026 at 09:00 UTC" in mail.get_content()
    assert [d["status"] for d in entry["deliveries"]] == ["delivered"]


def test_a_failing_receiver_is_retried_on_the_backoff_schedule_then_dead(
    make_container: Make, receiver: WebhookReceiver, clock: FakeClock
) -> None:
    receiver.statuses = [500]
    c = make_container(
        delivery_max_attempts=4,
        delivery_backoff_base_seconds=10,
        delivery_backoff_factor=3,
        delivery_backoff_jitter=0.5,
    )
    c._rng = random.Random(7)
    c.inbox().register_webhook("c-1", receiver.url, SECRET, ["interview.accepted"])
    apply(c, Interview().event("interview.accepted", "freelancer"))
    worker = c.delivery_worker()

    def state() -> sa.Row:  # type: ignore[type-arg]
        with c.engine().connect() as conn:
            return conn.execute(sa.select(deliveries)).one()

    gaps = []
    for attempt in (1, 2, 3):
        assert worker.run_once() == 1
        row = state()
        assert (row.status, row.attempts) == ("pending", attempt)
        gap = row.next_attempt_at - clock.now
        nominal = timedelta(seconds=10 * 3 ** (attempt - 1))
        assert nominal * 0.5 <= gap <= nominal, (attempt, gap)
        gaps.append(gap)
        clock.advance(seconds=gap.total_seconds() - 0.5)
        assert worker.run_once() == 0, "retried before its time"
        clock.advance(seconds=0.5)
    assert worker.run_once() == 1
    row = state()
    assert (row.status, row.attempts) == ("dead", 4)
    assert row.last_error.startswith("HTTP 500")
    clock.advance(days=30)
    assert worker.run_once() == 0, "a dead delivery is never retried"

    assert [r.headers["X-Delivery-Attempt"] for r in receiver.received] == ["1", "2", "3", "4"]
    assert len({r.headers["X-Notification-Id"] for r in receiver.received}) == 1
    with c.engine().connect() as conn:
        log = conn.execute(sa.select(attempts).order_by(attempts.c.attempt)).all()
    assert [(a.attempt, a.outcome, a.status_code) for a in log] == [
        (n, "failed", 500) for n in (1, 2, 3, 4)
    ]
    assert [
        b - a
        for a, b in zip([x.started_at for x in log], [x.started_at for x in log][1:], strict=False)
    ] == gaps
    (hook,) = c.inbox().list_webhooks("c-1", 20)
    assert hook["delivery_counts"] == {"dead": 1}
    assert len(hook["deliveries"][0]["attempt_log"]) == 4


def test_a_receiver_that_recovers_gets_the_notification_once(
    make_container: Make, receiver: WebhookReceiver, clock: FakeClock
) -> None:
    receiver.statuses = [503, 500, 204]
    c = make_container(delivery_backoff_base_seconds=1, delivery_backoff_jitter=0)
    c.inbox().register_webhook("f-1", receiver.url, SECRET, ["interview.invited"])
    apply(c, Interview().event("interview.invited", "client"))
    worker = c.delivery_worker()
    for _ in range(3):
        worker.run_once()
        clock.advance(seconds=5)
    assert worker.run_once() == 0
    (entry,) = inbox_of(c, "f-1")
    (delivery,) = entry["deliveries"]
    assert delivery["status"] == "delivered" and delivery["attempts"] == 3
    assert [a["status_code"] for a in delivery["attempt_log"]] == [503, 500, 204]


def test_an_unreachable_receiver_is_a_failed_attempt_not_a_crash(
    make_container: Make, clock: FakeClock
) -> None:
    from tests.support.notifications import free_port

    c = make_container(delivery_timeout_seconds=1)
    c.inbox().register_webhook(
        "f-1", f"http://127.0.0.1:{free_port()}/nobody", SECRET, ["interview.invited"]
    )
    apply(c, Interview().event("interview.invited", "client"))
    assert c.delivery_worker().run_once() == 1
    (delivery,) = inbox_of(c, "f-1")[0]["deliveries"]
    assert delivery["status"] == "pending"
    assert "ConnectError" in delivery["last_error"]


def test_a_worker_that_died_mid_send_is_replaced_after_its_lease(
    make_container: Make, receiver: WebhookReceiver, clock: FakeClock
) -> None:
    c = make_container(delivery_lease_seconds=30)
    c.inbox().register_webhook("f-1", receiver.url, SECRET, ["interview.invited"])
    apply(c, Interview().event("interview.invited", "client"))
    worker = c.delivery_worker()
    assert worker._claim(clock.now)  # claimed, then the process "dies"
    assert worker.run_once() == 0, "the lease still holds"
    clock.advance(seconds=31)
    assert worker.run_once() == 1
    (delivery,) = inbox_of(c, "f-1")[0]["deliveries"]
    assert delivery["status"] == "delivered" and delivery["attempts"] == 2
    assert [a["outcome"] for a in delivery["attempt_log"]] == ["unknown", "delivered"]
    assert [r.headers["X-Delivery-Attempt"] for r in receiver.received] == ["2"]


def test_two_workers_share_the_outbox_without_sending_anything_twice(
    make_container: Make, receiver: WebhookReceiver
) -> None:
    c = make_container(delivery_concurrency=4, delivery_batch_size=7)
    c.inbox().register_webhook("f-1", receiver.url, SECRET, ["interview.invited"])
    for n in range(60):
        apply(c, Interview(f"job-{n}").event("interview.invited", "client"))
    other = make_container(delivery_concurrency=4, delivery_batch_size=7)
    workers = [c.delivery_worker(), other.delivery_worker()]
    done = drain_together(workers)
    assert sum(done) == 60
    ids = [r.headers["X-Notification-Id"] for r in receiver.received]
    assert len(ids) == len(set(ids)) == 60
