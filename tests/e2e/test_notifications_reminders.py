"""Reminders the whole way through: invitations with deadlines sent over the
interview API, their events brought to the notifications consumer from the event
store's log (the embedded default), the notifications app's own workers running,
and each party's inbox read over HTTP while a FakeClock moves across the deadlines."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from services.common.consumer import ConsumerSpec
from services.common.runner.embedded import embedded_runner
from services.common.runner.loop import ConsumerRunner
from services.interviews.bootstrap import InterviewsContainer
from services.interviews.bootstrap import create_app as interviews_app
from services.interviews.feed import InterviewEventFeed, wake_on_interview_events
from services.interviews.settings import InterviewsSettings
from services.notifications.bootstrap import NotificationsContainer
from services.notifications.bootstrap import create_app as notifications_app
from tests.conftest import TEST_SECRET, FakeClock
from tests.e2e.test_notifications_flow import Platform
from tests.integration.test_notifications_support import settings_for

pytestmark = pytest.mark.e2e

Token = Callable[[str, str], dict[str, str]]


@pytest.fixture
def platform(
    database_url: str | None, tmp_path: Path, clock: FakeClock, token: Token
) -> Iterator[Platform]:
    interviews = InterviewsContainer(
        InterviewsSettings(database_url=database_url, data_dir=tmp_path, auth_secret=TEST_SECRET),
        clock=clock,
    )
    # A short maximum sleep: the reminder worker notices the moved clock by itself.
    notifications = NotificationsContainer(
        settings_for(database_url, tmp_path, reminder_max_sleep_seconds=0.1), clock=clock
    )
    platform: Platform | None = None

    def runner(spec: ConsumerSpec, registry: Any) -> ConsumerRunner:
        assert platform is not None
        recorded = spec.on_committed

        def committed(position: int) -> None:
            if recorded is not None:
                recorded(position)
            platform.on_committed(position)

        spec.on_committed = committed
        app = interviews.interviews()
        return embedded_runner(
            spec,
            InterviewEventFeed(app).read,
            wake_on_interview_events(app),
            registry=registry,
            max_position=app.max_position,
        )

    with TestClient(interviews_app(interviews)) as commands:
        inbox_app = notifications_app(notifications, workers=True, runner_factory=runner)
        platform = Platform(commands, TestClient(inbox_app), token)
        with platform.inbox:
            yield platform
    interviews.close()


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_party_who_must_answer_is_reminded_once_before_the_deadline(
    platform: Platform, clock: FakeClock
) -> None:
    p = platform
    client = ("c-1", "client")
    start = clock.now

    def by(hours: float) -> str:
        return (start + timedelta(hours=hours)).isoformat()

    waiting = p.do(
        *client, "/interviews", {"job_id": "job-1", "freelancer_id": "f-1", "expires_at": by(72)}
    )["id"]
    answered = p.do(
        *client, "/interviews", {"job_id": "job-2", "freelancer_id": "f-2", "expires_at": by(72)}
    )["id"]
    p.do("f-2", "freelancer", f"/interviews/{answered}/accept")
    lapsing = p.do(
        *client, "/interviews", {"job_id": "job-3", "freelancer_id": "f-3", "expires_at": by(30)}
    )["id"]
    offered = p.do(*client, "/interviews", {"job_id": "job-4", "freelancer_id": "f-4"})["id"]
    p.do("f-4", "freelancer", f"/interviews/{offered}/accept")
    offer = {"amount": "700", "currency": "USD", "rate_type": "fixed", "expires_at": by(60)}
    p.do(*client, f"/interviews/{offered}/offer", offer)

    clock.advance(hours=20)  # job-3 (due at 30 h) is within 24 hours of its deadline
    eventually(lambda: ("reminder", "job-3") in p.told("f-3"))
    assert p.told("f-4") == [("invited", "job-4"), ("offer_extended", "job-4")]
    assert p.told("f-1") == [("invited", "job-1")], "not yet 24 hours before"

    clock.advance(hours=16)  # 36 h: job-4's offer (due at 60 h) is
    eventually(lambda: ("reminder", "job-4") in p.told("f-4"))
    assert p.told("f-1") == [("invited", "job-1")]

    clock.advance(hours=12)  # 48 h: job-1's reminder is due; job-3 has lapsed
    eventually(lambda: ("reminder", "job-1") in p.told("f-1"))
    app = p.commands.app.state.container.interviews()  # what the expiry scheduler does
    p.wait_for(app.expire(UUID(lapsing)).position)
    p.do("f-1", "freelancer", f"/interviews/{waiting}/accept")
    clock.advance(hours=30)
    time.sleep(0.3)

    assert p.told("f-1") == [("invited", "job-1"), ("reminder", "job-1")]
    assert p.told("f-2") == [("invited", "job-2")], "answered first: no reminder"
    assert p.told("f-3") == [("invited", "job-3"), ("reminder", "job-3"), ("expired", "job-3")]
    assert p.told("f-4") == [
        ("invited", "job-4"),
        ("offer_extended", "job-4"),
        ("reminder", "job-4"),
    ]
    assert ("expired", "job-3") in p.told("c-1")
    assert not [n for n in p.told("c-1") if n[0] == "reminder"]

    items = p.inbox.get("/notifications", headers=p.token("f-4", "freelancer")).json()["items"]
    (reminder,) = [n for n in items if n["kind"] == "reminder"]
    assert reminder["title"] == "Reminder: offer awaiting your answer"
    assert reminder["message"] == (
        "Client c-1 is waiting for your answer to the offer for job job-4."
        " It expires on Saturday 28 November 2026 at 00:00 UTC."
    )
    assert reminder["event_id"] is None and reminder["interview_id"] == offered
