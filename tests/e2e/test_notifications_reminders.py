"""Reminders the whole way through: invitations with deadlines sent over the
interview API, their events brought to the notifications consumer from the event
store's log (the embedded default), the notifications app's own workers running,
and each party's inbox read over HTTP while a FakeClock moves across the deadlines."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from services.common.consumer import ConsumerSpec
from services.common.runner.loop import ConsumerRunner
from services.interviews.bootstrap import InterviewsContainer
from services.interviews.bootstrap import create_app as interviews_app
from services.notifications.bootstrap import NotificationsContainer
from services.notifications.bootstrap import create_app as notifications_app
from tests.conftest import FakeClock
from tests.e2e.inbox_platform import Platform, Token, report_commits, store_runner
from tests.support.notifications import settings_for
from tests.support.waiting import Ticks, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def notifications(
    database_url: str | None,
    tmp_path: Path,
    clock: FakeClock,
    interviews_container: InterviewsContainer,
) -> Iterator[NotificationsContainer]:
    # A short maximum sleep: the reminder worker notices the moved clock by itself.
    container = NotificationsContainer(
        settings_for(database_url, tmp_path, reminder_max_sleep_seconds=0.1),
        clock=clock,
        key_service=interviews_container.key_store(),
    )
    yield container
    container.close()


@pytest.fixture
def reminder_rounds(notifications: NotificationsContainer, clock: FakeClock) -> Ticks:
    """Every round of the running reminder worker: the clock it saw, what it settled."""
    return Ticks.install(notifications.reminder_worker(), "run_once", clock)


@pytest.fixture
def platform(
    database_url: str | None,
    tmp_path: Path,
    clock: FakeClock,
    token: Token,
    interviews_container: InterviewsContainer,
    notifications: NotificationsContainer,
    reminder_rounds: Ticks,
) -> Iterator[Platform]:
    platform: Platform | None = None

    def runner(spec: ConsumerSpec, registry: Any) -> ConsumerRunner:
        assert platform is not None
        report_commits(spec, platform.on_committed)
        return store_runner(spec, interviews_container, registry)

    with TestClient(interviews_app(interviews_container)) as commands:
        inbox_app = notifications_app(notifications, workers=True, runner_factory=runner)
        platform = Platform(commands, TestClient(inbox_app), token)
        with platform.inbox:
            yield platform


def test_the_party_who_must_answer_is_reminded_once_before_the_deadline(
    platform: Platform, clock: FakeClock, reminder_rounds: Ticks
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
    wait_until(lambda: ("reminder", "job-3") in p.told("f-3"))
    assert p.told("f-4") == [("invited", "job-4"), ("offer_extended", "job-4")]
    assert p.told("f-1") == [("invited", "job-1")], "not yet 24 hours before"

    clock.advance(hours=16)  # 36 h: job-4's offer (due at 60 h) is
    wait_until(lambda: ("reminder", "job-4") in p.told("f-4"))
    assert p.told("f-1") == [("invited", "job-1")]

    clock.advance(hours=12)  # 48 h: job-1's reminder is due; job-3 has lapsed
    wait_until(lambda: ("reminder", "job-1") in p.told("f-1"))
    app = p.commands.app.state.container.interviews()  # what the expiry scheduler does
    p.wait_for(app.expire(UUID(lapsing)).position)
    p.do("f-1", "freelancer", f"/interviews/{waiting}/accept")
    clock.advance(hours=30)
    # A whole round of the running worker at 78 h (past every deadline) that sends nothing.
    rounds = len(reminder_rounds)
    late = reminder_rounds.wait_for(rounds + 1, where=lambda tick: tick.at == clock.now)
    assert late.result == 0, "a round past the deadlines settled something"

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
