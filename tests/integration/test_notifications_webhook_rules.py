"""Webhook rules at delivery time, against a real receiver: the URL is checked
again before each call, 410 Gone deactivates, deliveries that keep dying
disable the webhook and tell its owner, a rotated secret signs beside the new
one for the grace period, one notification can be redelivered, and a database
of the previous release is upgraded in place."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.common.db import create_engine
from services.notifications.adapters.tables import attempts, deliveries, metadata, webhooks
from services.notifications.adapters.webhooks import verify
from services.notifications.application import DuplicateWebhookError
from services.notifications.bootstrap import NotificationsContainer
from tests.conftest import FakeClock
from tests.support.notifications import (
    FakeDns,
    Interview,
    WebhookReceiver,
    apply,
    inbox_of,
    settings_for,
)

pytestmark = pytest.mark.integration

Make = Callable[..., NotificationsContainer]
SECRET = "whsec-" + "k" * 24
INVITED = ["interview.invited"]


def hook_of(c: NotificationsContainer, owner: str = "f-1") -> dict:  # type: ignore[type-arg]
    (hook,) = c.inbox().list_webhooks(owner, 50)
    return hook


def test_a_name_that_now_resolves_to_an_internal_address_is_not_called(
    make_container: Make, receiver: WebhookReceiver
) -> None:
    dns = FakeDns({"hooks.example.com": ["93.184.216.34"]})
    c = make_container(resolver=dns, webhook_allowed_hosts="")
    port = receiver.url.split(":")[2].split("/")[0]
    c.inbox().register_webhook("f-1", f"http://hooks.example.com:{port}/hook", SECRET, INVITED)
    # After registration the name is re-pointed at the receiver on loopback (DNS rebinding).
    dns.point("hooks.example.com", "127.0.0.1")
    apply(c, Interview().event("interview.invited", "client"))
    assert c.delivery_worker().run_once() == 1

    assert receiver.received == []
    (delivery,) = hook_of(c)["deliveries"]
    assert delivery["status"] == "pending"  # a failed attempt, retried (and checked) later
    (attempt,) = delivery["attempt_log"]
    assert attempt["outcome"] == "failed" and attempt["status_code"] is None
    assert attempt["error"].startswith("url_not_allowed") and "127.0.0.1" in attempt["error"]


def test_a_receiver_answering_410_gone_deactivates_the_webhook_at_once(
    make_container: Make, receiver: WebhookReceiver
) -> None:
    receiver.statuses = [410]
    c = make_container()
    c.inbox().register_webhook("f-1", receiver.url, SECRET, INVITED, owner_role="freelancer")
    apply(c, Interview().event("interview.invited", "client"))
    c.delivery_worker().run_until_idle()

    hook = hook_of(c)
    assert hook["active"] is False and "410" in hook["disabled_reason"]
    (delivery,) = hook["deliveries"]
    assert delivery["status"] == "dead" and delivery["attempts"] == 1
    notice = next(n for n in inbox_of(c, "f-1") if n["type"] == "webhook.disabled")
    assert receiver.url in notice["message"] and "410" in notice["message"]
    # Nothing more is queued for it, nor sent.
    apply(c, Interview("job-2").event("interview.invited", "client"))
    assert c.delivery_worker().run_until_idle() == 0
    assert len(receiver.received) == 1


def test_a_webhook_whose_deliveries_keep_dying_is_disabled_and_its_owner_told(
    make_container: Make, receiver: WebhookReceiver
) -> None:
    # Three dead deliveries in a row disable it; one delivered in between starts the count again.
    receiver.statuses = [500, 200, 500, 500, 500]
    c = make_container(delivery_max_attempts=1, webhook_disable_after_dead=3)
    c.inbox().register_webhook("f-1", receiver.url, SECRET, INVITED, owner_role="freelancer")
    worker = c.delivery_worker()
    for n in range(4):
        apply(c, Interview(f"job-{n}").event("interview.invited", "client"))
        worker.run_until_idle()
        assert hook_of(c)["active"] is True, n
        assert not [x for x in inbox_of(c, "f-1") if x["type"] == "webhook.disabled"]
    assert hook_of(c)["dead_in_a_row"] == 2

    apply(c, Interview("job-4").event("interview.invited", "client"))
    worker.run_until_idle()
    hook = hook_of(c)
    assert hook["active"] is False and hook["disabled_reason"].startswith("3 deliveries")
    (notice,) = [x for x in inbox_of(c, "f-1") if x["type"] == "webhook.disabled"]
    assert notice["kind"] == "system" and notice["details"]["webhook_id"] == hook["id"]
    assert worker.disabled == 1

    # Resuming it clears the count; it is called again.
    c.inbox().update_webhook("f-1", hook["id"], active=True)
    assert hook_of(c)["dead_in_a_row"] == 0
    receiver.statuses = [200]
    apply(c, Interview("job-5").event("interview.invited", "client"))
    worker.run_until_idle()
    assert len(receiver.received) == 6


def test_both_signatures_are_sent_during_the_grace_period_then_only_the_new(
    make_container: Make, receiver: WebhookReceiver, clock: FakeClock
) -> None:
    c = make_container(webhook_secret_grace_hours=24)
    hook = c.inbox().register_webhook("f-1", receiver.url, SECRET, INVITED)
    new = "whsec-" + "n" * 24
    c.inbox().rotate_secret("f-1", hook["id"], new)
    apply(c, Interview().event("interview.invited", "client"))
    c.delivery_worker().run_until_idle()
    clock.advance(hours=24, seconds=1)
    apply(c, Interview("job-2").event("interview.invited", "client"))
    c.delivery_worker().run_until_idle()

    during, after = receiver.received
    for call, signatures, now in ((during, 2, clock.now.timestamp() - 86401), (after, 1, None)):
        header = call.headers["X-Signature"]
        assert len(header.split(",")) == signatures
        ts = call.headers["X-Timestamp"]
        at = now if now is not None else clock.now.timestamp()
        assert verify(new, ts, call.body, header, now=at)
        assert verify(SECRET, ts, call.body, header, now=at) is (signatures == 2)


def test_redeliver_sends_one_notification_again_under_its_stable_id(
    make_container: Make, receiver: WebhookReceiver
) -> None:
    c = make_container()
    hook = c.inbox().register_webhook("f-1", receiver.url, SECRET, INVITED)
    apply(c, Interview().event("interview.invited", "client"))
    apply(c, Interview("job-2").event("interview.invited", "client"))
    c.delivery_worker().run_until_idle()
    assert len(receiver.received) == 2
    first = inbox_of(c, "f-1")[-1]

    again = c.inbox().redeliver("f-1", hook["id"], first["id"])
    assert c.delivery_worker().run_until_idle() == 1

    original, _, repeat = receiver.received
    assert repeat.headers["X-Notification-Id"] == first["id"]
    assert repeat.headers["X-Delivery-Id"] == again["id"] != original.headers["X-Delivery-Id"]
    assert repeat.body == next(
        r.body for r in receiver.received if r.headers["X-Notification-Id"] == first["id"]
    )


def test_deleting_or_pausing_a_webhook_stops_its_waiting_deliveries(
    make_container: Make, receiver: WebhookReceiver
) -> None:
    c = make_container()
    kept = c.inbox().register_webhook("f-1", receiver.url, SECRET, INVITED)
    gone = c.inbox().register_webhook("f-1", receiver.url + "/2", SECRET, INVITED)
    apply(c, Interview().event("interview.invited", "client"))
    c.inbox().update_webhook("f-1", kept["id"], active=False)
    c.inbox().delete_webhook("f-1", gone["id"])
    c.delivery_worker().run_until_idle()

    assert receiver.received == []
    with c.engine().connect() as conn:
        rows = dict(conn.execute(sa.select(deliveries.c.webhook_id, deliveries.c.last_error)).all())
    assert rows == {kept["id"]: "webhook is inactive", gone["id"]: "webhook deleted"}
    paused = hook_of(c)
    assert paused["dead_in_a_row"] == 0 and paused["disabled_reason"] == "paused by its owner"


def previous_release_webhooks(md: sa.MetaData) -> sa.Table:
    """The webhooks table as the previous release created it."""
    return sa.Table(
        webhooks.name,
        md,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("owner_id", sa.String(128), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("event_types", sa.JSON, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("owner_id", "url", name="uq_webhook_owner_url"),
    )


def test_a_database_of_the_previous_release_keeps_working(
    database_url: str | None, tmp_path: Path, clock: FakeClock
) -> None:
    settings = settings_for(database_url, tmp_path)
    engine = create_engine(settings.resolved_database_url(), settings.sqlite_path)
    old = sa.MetaData()
    old_hooks = previous_release_webhooks(old)
    old.create_all(engine)
    metadata.create_all(engine, tables=[t for t in metadata.sorted_tables if t is not webhooks])
    at = datetime(2026, 11, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            old_hooks.insert().values(
                id="h-1",
                owner_id="f-1",
                url="HTTP://127.0.0.1:8080/In?x=1",
                secret=SECRET,
                event_types=INVITED,
                active=True,
                created_at=at,
            )
        )
        conn.execute(
            attempts.insert().values(
                delivery_id="d-1",
                attempt=1,
                started_at=at,
                outcome="failed",
                status_code=500,
                error="HTTP 500: db-password=hunter2",
            )
        )
    engine.dispose()

    c = NotificationsContainer(settings, clock=clock)
    try:
        (hook,) = c.inbox().list_webhooks("f-1", 20)
        assert hook["normalized_url"] == "http://127.0.0.1:8080/In"
        assert hook["active"] is True and hook["dead_in_a_row"] == 0
        with c.engine().connect() as conn:
            assert conn.execute(sa.select(attempts.c.error)).scalar() == "HTTP 500"
        # The upgraded table takes part in the new rules (a duplicate is detected).
        c.inbox().register_webhook("f-1", "http://127.0.0.1:1/x", SECRET, INVITED)
        with pytest.raises(DuplicateWebhookError):
            c.inbox().register_webhook("f-1", "http://127.0.0.1:8080/In/", SECRET, INVITED)
    finally:
        c.close()
    # Starting again changes nothing.
    c = NotificationsContainer(settings, clock=clock)
    try:
        assert len(c.inbox().list_webhooks("f-1", 20)) == 2
    finally:
        c.close()
