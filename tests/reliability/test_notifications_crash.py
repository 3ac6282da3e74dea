"""SIGKILL mid-stream: a notifications consumer on real Kafka and a delivery
worker, each a real subprocess, are killed while events and deliveries flow;
after restarts every notification exists exactly once and every webhook
delivery arrived (retries carry the same notification id)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from services.common.kafka import ensure_topics, producer_settings
from services.contracts import EventEnvelope
from services.notifications.adapters.tables import deliveries, notifications
from services.notifications.bootstrap import NotificationsContainer
from services.notifications.rules import NOTIFICATION_TYPES, drafts_for_event
from tests.conftest import TEST_SECRET
from tests.support.notifications import (
    OFFER,
    Interview,
    WebhookReceiver,
    delete_topics,
    settings_for,
)
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.reliability, pytest.mark.kafka]

ROOT = Path(__file__).resolve().parents[2]
INTERVIEWS = 150  # x 5 events, 6 notifications each


def life_of(n: int) -> list[EventEnvelope]:
    i = Interview(f"job-{n}", f"c-{n % 10}", f"f-{n % 20}")
    return [
        i.event("interview.invited", "client"),
        i.event("interview.accepted", "freelancer"),
        i.event("interview.started", "client", {"scheduled_at": "2026-12-01T10:00:00Z"}),
        i.event("interview.offer_extended", "client", OFFER),
        i.event("interview.offer_accepted", "freelancer"),
    ]


class Proc:
    """One worker subprocess, restartable, logs kept for a failing test."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args, self.env, self.log = args, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.notifications.entrypoints.worker", *self.args],
            cwd=ROOT,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def test_killed_consumer_and_delivery_worker_lose_nothing_and_duplicate_no_inbox_entry(
    postgres_url: str, kafka_bootstrap: str, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    from kafka import KafkaProducer

    topic = f"notifications-crash-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, {topic: (3, {})})
    container = NotificationsContainer(settings_for(postgres_url, tmp_path))
    engine = container.engine()
    users = [f"c-{n}" for n in range(10)] + [f"f-{n}" for n in range(20)]
    for user in users:
        container.inbox().register_webhook(user, receiver.url, "s" * 20, list(NOTIFICATION_TYPES))
    events = [e for n in range(INTERVIEWS) for e in life_of(n)]
    expected = {(str(d.event_id), d.recipient_id) for e in events for d in drafts_for_event(e)}
    expected_ids = {str(d.id) for e in events for d in drafts_for_event(e)}

    env = os.environ | {
        "NOTIFICATIONS_DATABASE_URL": postgres_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "EVENTS_TOPIC": topic,
        "NOTIFICATIONS_CONSUMER_GROUP": f"notifications-{topic}",
        "AUTH_SECRET": TEST_SECRET,
        "DATA_DIR": str(tmp_path),
        "LOG_LEVEL": "WARNING",
        "DELIVERY_LEASE_SECONDS": "2",
        "DELIVERY_POLL_SECONDS": "0.1",
        "DELIVERY_CONCURRENCY": "2",
        "DELIVERY_BATCH_SIZE": "10",
        "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",  # the receiver listens on loopback
    }
    consumer = Proc(["--no-delivery"], env, tmp_path / "consumer.log")
    worker = Proc(["--no-consumer"], env, tmp_path / "worker.log")

    def count(table: sa.Table) -> int:
        with engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() or 0)

    def delivered() -> int:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).where(deliveries.c.status == "delivered")
                ).scalar()
                or 0
            )

    producer = KafkaProducer(**producer_settings(kafka_bootstrap, client_id="crash-test"))

    def produce() -> None:  # a steady stream, ~7 s long
        for k, event in enumerate(events):
            producer.send(topic, key=str(event.interview_id).encode(), value=event.to_bytes())
            if k % 25 == 24:
                producer.flush()
                time.sleep(0.2)
        producer.flush()

    feeder = threading.Thread(target=produce, daemon=True)
    try:
        consumer.start()
        worker.start()
        feeder.start()
        total = len(expected)
        wait_until(lambda: count(notifications) >= total // 4, 60, what="a quarter of the inbox")
        consumer.kill()
        killed_at = count(notifications)
        consumer.start()
        wait_until(lambda: len(receiver.received) >= 50, 60, what="some deliveries")
        worker.kill()
        progress = {"inbox at first kill": killed_at, "sent at worker kill": len(receiver.received)}
        worker.start()
        wait_until(lambda: count(notifications) >= killed_at + total // 4, 60, what="more inbox")
        consumer.kill()
        progress["inbox at second kill"] = count(notifications)
        consumer.start()
        feeder.join(30)
        wait_until(lambda: count(notifications) >= total, 90, what="the whole inbox")
        wait_until(lambda: delivered() >= total, 90, what="every delivery")
    finally:
        consumer.stop()
        worker.stop()
        producer.close(timeout=5)
        container.close()
        delete_topics(kafka_bootstrap, topic)

    with engine.connect() as conn:
        rows = conn.execute(sa.select(notifications.c.event_id, notifications.c.recipient_id)).all()
        statuses = Counter(conn.execute(sa.select(deliveries.c.status)).scalars())
    engine.dispose()
    print(progress | {"total": total, "webhook calls": len(receiver.received)})
    assert 0 < progress["inbox at first kill"] < total, "the consumer was not killed mid-stream"
    assert 0 < progress["sent at worker kill"] < total, "the worker was not killed mid-stream"
    assert len(rows) == len(expected), "an inbox entry was lost or duplicated"
    assert {(r.event_id, r.recipient_id) for r in rows} == expected
    assert statuses == {"delivered": total}
    got: Counter[Any] = Counter(r.headers["X-Notification-Id"] for r in receiver.received)
    assert set(got) == expected_ids, "a webhook delivery was lost"
    resent = sum(n - 1 for n in got.values())
    assert resent <= 2 * 10, f"{resent} re-sends: more than the killed worker's claimed batch"
