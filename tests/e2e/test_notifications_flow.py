"""The whole way through: HTTP commands on the interview service, its events
brought to the notifications consumer either straight from the event store's
log (embedded) or by the relay over real Kafka, and each party's inbox,
webhook and e-mail over the notifications API. Every transition of DESIGN's
table gives exactly the rules table's notifications."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient

from services.common.consumer import ConsumerSpec
from services.common.runner.kafka_source import kafka_runner
from services.common.runner.loop import ConsumerRunner
from services.interviews.bootstrap import InterviewsContainer, RelayProcess
from services.interviews.bootstrap import create_app as interviews_app
from services.interviews.settings import RelaySettings
from services.notifications.bootstrap import NotificationsContainer
from services.notifications.bootstrap import create_app as notifications_app
from tests.conftest import FakeClock
from tests.e2e.inbox_platform import Platform, Token, report_commits, store_runner
from tests.integration.eventflow import TEST_LAYOUT
from tests.support.notifications import SmtpSink, WebhookReceiver, delete_topics, settings_for
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def platform(
    request: pytest.FixtureRequest,
    database_url: str | None,
    tmp_path: Path,
    clock: FakeClock,
    token: Token,
    interviews_container: InterviewsContainer,
    smtp: SmtpSink,
) -> Iterator[Platform]:
    source = request.param
    kafka: dict[str, Any] = {"kafka_bootstrap_servers": None}
    if source == "kafka":
        topic = f"notifications-flow-{uuid4().hex[:8]}"
        kafka = {
            "kafka_bootstrap_servers": request.getfixturevalue("kafka_bootstrap"),
            "topic": topic,
            "notifications_consumer_group": f"notifications-{topic}",
        }
    notifications = NotificationsContainer(
        settings_for(
            database_url,
            tmp_path,
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            email_domain="example.test",
            **kafka,
        ),
        clock=clock,
        key_service=interviews_container.key_store(),
    )
    platform: Platform | None = None

    def runner(spec: ConsumerSpec, registry: Any) -> ConsumerRunner:
        """What `interviewctl up` passes (embedded: the event store's own log), or
        the Kafka runner that `serve notifications` builds, told to report in."""
        assert platform is not None
        report_commits(spec, platform.on_committed)
        if source == "kafka":
            return kafka_runner(
                spec, kafka["kafka_bootstrap_servers"], kafka["topic"], layout=TEST_LAYOUT
            )
        return store_runner(spec, interviews_container, registry)

    with TestClient(interviews_app(interviews_container)) as commands:
        relay = None
        if source == "kafka":
            relay = RelayProcess(
                interviews_container.interviews(),
                RelaySettings(
                    kafka_bootstrap_servers=kafka["kafka_bootstrap_servers"],
                    topic=kafka["topic"],
                    database_url=database_url,
                    data_dir=tmp_path,
                    metrics_port=0,
                ),
            ).start()
        inbox_app = notifications_app(notifications, workers=True, runner_factory=runner)
        platform = Platform(commands, TestClient(inbox_app), token)
        try:
            with platform.inbox:
                yield platform
        finally:
            if relay is not None:
                relay.stop()
                delete_topics(kafka["kafka_bootstrap_servers"], kafka["topic"])


def test_every_transition_tells_exactly_whom_the_rules_say(
    platform: Platform, clock: FakeClock, receiver: WebhookReceiver, smtp: SmtpSink
) -> None:
    p = platform
    hook = p.inbox.post(
        "/webhooks",
        json={"url": receiver.url, "secret": "s" * 16, "event_types": ["interview.started"]},
        headers=p.token("c-1", "client"),
    )
    assert hook.status_code == 201
    client = ("c-1", "client")

    hired = p.do(*client, "/interviews", {"job_id": "job-1", "freelancer_id": "f-1"})["id"]
    p.do("f-1", "freelancer", f"/interviews/{hired}/accept")
    when = (clock.now + timedelta(days=2)).replace(hour=15, minute=0).isoformat()
    p.do(*client, f"/interviews/{hired}/start", {"scheduled_at": when})
    offer = {"amount": "1200", "currency": "EUR", "rate_type": "fixed"}
    p.do(*client, f"/interviews/{hired}/offer", offer)
    p.do("f-1", "freelancer", f"/interviews/{hired}/offer/decline", {"reason": "low"})
    p.do(*client, f"/interviews/{hired}/offer", offer | {"amount": "1500"})
    p.do("f-1", "freelancer", f"/interviews/{hired}/offer/accept")

    declined = p.do(*client, "/interviews", {"job_id": "job-2", "freelancer_id": "f-2"})["id"]
    p.do("f-2", "freelancer", f"/interviews/{declined}/decline", {"reason": "busy"})

    left = p.do(*client, "/interviews", {"job_id": "job-3", "freelancer_id": "f-3"})["id"]
    p.do("f-3", "freelancer", f"/interviews/{left}/cancel", {"reason": "took another job"})

    dropped = p.do(*client, "/interviews", {"job_id": "job-4", "freelancer_id": "f-4"})["id"]
    p.do(*client, f"/interviews/{dropped}/cancel", {"reason": "position filled"})

    soon = (clock.now + timedelta(hours=1)).isoformat()
    lapsed = p.do(
        *client, "/interviews", {"job_id": "job-5", "freelancer_id": "f-5", "expires_at": soon}
    )["id"]
    unanswered = p.do(*client, "/interviews", {"job_id": "job-6", "freelancer_id": "f-6"})["id"]
    p.do("f-6", "freelancer", f"/interviews/{unanswered}/accept")
    p.do(*client, f"/interviews/{unanswered}/offer", offer | {"expires_at": soon})
    clock.advance(hours=2)
    app = p.commands.app.state.container.interviews()  # the scheduler's call
    for interview in (lapsed, unanswered):
        p.wait_for(app.expire(UUID(interview)).position)

    assert p.told("c-1") == [
        ("accepted", "job-1"),
        ("started", "job-1"),
        ("offer_declined", "job-1"),
        ("offer_accepted", "job-1"),
        ("declined", "job-2"),
        ("cancelled", "job-3"),
        ("accepted", "job-6"),
        ("expired", "job-5"),
        ("expired", "job-6"),
    ]
    assert p.told("f-1") == [
        ("invited", "job-1"),
        ("started", "job-1"),
        ("offer_extended", "job-1"),
        ("offer_extended", "job-1"),
    ]
    assert p.told("f-2") == [("invited", "job-2")]
    assert p.told("f-3") == [("invited", "job-3")]
    assert p.told("f-4") == [("invited", "job-4"), ("cancelled", "job-4")]
    assert p.told("f-5") == [("invited", "job-5"), ("expired", "job-5")]
    assert p.told("f-6") == [
        ("invited", "job-6"),
        ("offer_extended", "job-6"),
        ("expired", "job-6"),
    ]

    f1 = p.inbox.get("/notifications", headers=p.token("f-1", "freelancer")).json()["items"]
    started = next(n for n in f1 if n["type"] == "interview.started")
    assert "It is scheduled for Friday 27 November 2026 at 15:00 UTC." in started["message"]
    assert started["message"].startswith("Your interview with client c-1 for job job-1")

    def settled() -> bool:
        hooks = p.inbox.get("/webhooks", headers=p.token("c-1", "client")).json()
        return hooks[0]["delivery_counts"] == {"delivered": 1} and len(smtp.messages) == 22

    wait_until(settled, what="the webhook delivered and 22 e-mails sent")
    (call,) = receiver.received
    assert call.json()["type"] == "interview.started" and call.json()["job_id"] == "job-1"
    mails = Counter(mail["To"] for mail in smtp.parsed())
    assert mails == {
        "c-1@example.test": 9,
        "f-1@example.test": 4,
        "f-2@example.test": 1,
        "f-3@example.test": 1,
        "f-4@example.test": 2,
        "f-5@example.test": 2,
        "f-6@example.test": 3,
    }
