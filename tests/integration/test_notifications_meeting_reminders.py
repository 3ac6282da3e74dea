"""Reminders before a scheduled interview, on a real database (SQLite file and
PostgreSQL): both parties are reminded once, ``MEETING_REMINDER_LEAD_MINUTES``
before the meeting, in their own time zones; a reschedule moves the reminder, a
final state withdraws it; reordered events, two workers and a crash send nothing
twice. Time is a FakeClock moved by hand."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from services.contracts import EventEnvelope
from services.notifications.adapters.tables import reminder_deadlines
from services.notifications.bootstrap import NotificationsContainer
from services.notifications.settings import NotificationsSettings
from tests.conftest import FakeClock
from tests.support.notifications import OFFER, Interview, inbox_of
from tests.support.reminders import crash_mid_round, drain_together, feed, reminders

pytestmark = pytest.mark.integration

Make = Callable[..., NotificationsContainer]


def meeting_row(container: NotificationsContainer, interview: Interview) -> Any:
    with container.engine().connect() as conn:
        return conn.execute(
            sa.select(reminder_deadlines).where(
                reminder_deadlines.c.interview_id == str(interview.id),
                reminder_deadlines.c.what == "meeting",
            )
        ).one()


def started(interview: Interview, at: datetime, minutes: int = 30) -> EventEnvelope:
    return interview.event(
        "interview.started",
        "client",
        {"scheduled_at": at.isoformat(), "duration_minutes": minutes},
    )


def rescheduled(
    interview: Interview, at: datetime, before: datetime, actor: str = "freelancer"
) -> EventEnvelope:
    return interview.event(
        "interview.rescheduled",
        actor,
        {
            "scheduled_at": at.isoformat(),
            "duration_minutes": 45,
            "previous_scheduled_at": before.isoformat(),
        },
    )


def opened(interview: Interview) -> list[EventEnvelope]:
    return [
        interview.event("interview.invited", "client"),
        interview.event("interview.accepted", "freelancer"),
    ]


def test_both_parties_are_reminded_once_an_hour_before_the_meeting_in_their_zones(
    make_container: Make, clock: FakeClock
) -> None:
    c = make_container()
    c.preferences().set_time_zone("c-1", "Europe/Berlin")
    meeting = clock.now + timedelta(days=13, hours=2)  # Tuesday 8 December 2026, 14:00 UTC
    interview = Interview()
    feed(c, *opened(interview), started(interview, meeting, 45))
    worker = c.reminder_worker()
    assert worker.run_once() == 0

    clock.now = meeting - timedelta(minutes=60, seconds=1)
    assert worker.run_once() == 0, "reminded before its time"
    assert reminders(c, "c-1") == reminders(c, "f-1") == []

    clock.now = meeting - timedelta(minutes=60)
    assert worker.run_once() == 1
    (to_client,), (to_freelancer,) = reminders(c, "c-1"), reminders(c, "f-1")
    assert to_client["title"] == to_freelancer["title"] == "Reminder: interview coming up"
    assert to_client["message"] == (
        "Your interview with freelancer f-1 for job job-1 starts on"
        " Tuesday 8 December 2026 at 15:00 CET (45 minutes)."
    )
    assert to_freelancer["message"] == (
        "Your interview with client c-1 for job job-1 starts on"
        " Tuesday 8 December 2026 at 14:00 UTC (45 minutes)."
    )
    assert to_client["details"]["scheduled_at"] == "2026-12-08T14:00:00+00:00"
    assert meeting_row(c, interview).status == "sent"

    for minutes in (59, 30, 1, -5):
        clock.now = meeting - timedelta(minutes=minutes)
        assert worker.run_once() == 0
    assert len(reminders(c, "c-1")) == len(reminders(c, "f-1")) == 1


def test_the_lead_time_is_configurable(
    make_container: Make, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEETING_REMINDER_LEAD_MINUTES", "15")
    assert NotificationsSettings().meeting_reminder_lead_minutes == 15
    c = make_container(meeting_reminder_lead_minutes=15)
    meeting = clock.now + timedelta(days=2)
    interview = Interview()
    feed(c, *opened(interview), started(interview, meeting))
    clock.now = meeting - timedelta(minutes=16)
    assert c.reminder_worker().run_once() == 0
    clock.now = meeting - timedelta(minutes=15)
    assert c.reminder_worker().run_once() == 1
    assert len(reminders(c, "f-1")) == 1


def test_a_reschedule_moves_the_reminder_to_the_new_time(
    make_container: Make, clock: FakeClock
) -> None:
    c = make_container()
    first = clock.now + timedelta(days=2)
    later = first + timedelta(days=1, hours=3)
    interview = Interview()
    feed(c, *opened(interview), started(interview, first))
    feed(c, rescheduled(interview, later, first))
    worker = c.reminder_worker()

    clock.now = first - timedelta(minutes=60)
    assert worker.run_once() == 0, "no reminder for the old time"
    clock.now = first + timedelta(hours=1)
    assert worker.run_once() == 0
    assert reminders(c, "f-1") == []

    clock.now = later - timedelta(minutes=60)
    assert worker.run_once() == 1
    (reminder,) = reminders(c, "f-1")
    assert "starts on Saturday 28 November 2026 at 15:00 UTC (45 minutes)" in reminder["message"]
    assert len(reminders(c, "c-1")) == 1


def test_a_reschedule_after_the_reminder_went_out_gets_a_new_one(
    make_container: Make, clock: FakeClock
) -> None:
    c = make_container()
    first = clock.now + timedelta(days=1)
    interview = Interview()
    feed(c, *opened(interview), started(interview, first))
    clock.now = first - timedelta(minutes=50)
    assert c.reminder_worker().run_once() == 1
    later = first + timedelta(hours=4)
    feed(c, rescheduled(interview, later, first))
    row = meeting_row(c, interview)
    assert (row.status, row.version, row.notification_id) == ("pending", 4, None)
    clock.now = later - timedelta(minutes=60)
    assert c.reminder_worker().run_once() == 1
    old, new = reversed(reminders(c, "f-1"))
    assert old["id"] != new["id"]
    assert "at 12:00 UTC" in old["message"] and "at 16:00 UTC" in new["message"]


FINAL = [
    ("interview.cancelled", "client", {"reason": "filled", "cancelled_by": "client"}),
    (
        "interview.cancelled",
        "client",
        {"reason": "job closed", "cancelled_by": "client", "job_closed": True},
    ),
    ("interview.offer_accepted", "freelancer", {}),
    ("interview.expired", "system", {"what": "offer"}),
]


@pytest.mark.parametrize(("final", "actor", "data"), FINAL)
def test_a_final_state_withdraws_the_reminder(
    make_container: Make, clock: FakeClock, final: str, actor: str, data: dict[str, Any]
) -> None:
    c = make_container()
    meeting = clock.now + timedelta(days=2)
    interview = Interview()
    feed(c, *opened(interview), started(interview, meeting))
    if final != "interview.cancelled":
        feed(c, interview.event("interview.offer_extended", "client", OFFER))
    feed(c, interview.event(final, actor, data))
    clock.now = meeting - timedelta(minutes=30)
    assert c.reminder_worker().run_once() == 0
    assert reminders(c, "c-1") == reminders(c, "f-1") == []
    row = meeting_row(c, interview)
    assert (row.status, row.reason) == ("closed", final)


def test_an_offer_declined_or_withdrawn_keeps_the_meeting_reminder(
    make_container: Make, clock: FakeClock
) -> None:
    c = make_container()
    meeting = clock.now + timedelta(days=2)
    interview = Interview()
    feed(
        c,
        *opened(interview),
        started(interview, meeting),
        interview.event("interview.offer_extended", "client", OFFER),
        interview.event("interview.offer_withdrawn", "client", {"status": "in_progress"}),
    )
    clock.now = meeting - timedelta(minutes=60)
    assert c.reminder_worker().run_once() == 1
    assert len(reminders(c, "f-1")) == 1


def test_a_start_without_a_time_or_within_the_lead_time_gets_no_reminder(
    make_container: Make, clock: FakeClock
) -> None:
    c = make_container()
    unscheduled, soon = Interview("job-1"), Interview("job-2")
    feed(c, *opened(unscheduled), unscheduled.event("interview.started", "client", {}))
    feed(c, *opened(soon), started(soon, clock.now + timedelta(minutes=40)))
    clock.advance(minutes=39)
    assert c.reminder_worker().run_until_idle() == 0
    assert reminders(c, "f-1") == []
    assert meeting_row(c, unscheduled).status == "closed"
    assert meeting_row(c, soon).status == "skipped"
    (notice,) = [
        n for n in inbox_of(c, "f-1") if (n["job_id"], n["type"]) == ("job-2", "interview.started")
    ]
    assert "It is scheduled for" in notice["message"], "the start itself told the time"


def test_reordered_events_never_bring_back_an_older_time(
    make_container: Make, clock: FakeClock
) -> None:
    c = make_container()
    first = clock.now + timedelta(days=2)
    later = first + timedelta(days=1)
    interview = Interview()
    invited, accepted = opened(interview)
    start, move = started(interview, first), rescheduled(interview, later, first)
    cancel = interview.event(
        "interview.cancelled", "client", {"reason": "filled", "cancelled_by": "client"}
    )
    feed(c, invited, accepted, move, start)  # the reschedule overtook the start
    row = meeting_row(c, interview)
    assert (row.version, row.expires_at) == (4, later)
    feed(c, move)  # a duplicate
    assert meeting_row(c, interview).version == 4

    other = Interview("job-2")
    o_invited, o_accepted = opened(other)
    o_start = started(other, first)
    o_cancel = other.event(
        "interview.cancelled", "client", {"reason": "x", "cancelled_by": "client"}
    )
    feed(c, o_invited, o_accepted, o_cancel, o_start)  # cancelled before the start arrived
    assert meeting_row(c, other).status == "closed"
    feed(c, cancel)

    for at in (first - timedelta(minutes=60), later - timedelta(minutes=60)):
        clock.now = at
        assert c.reminder_worker().run_once() == 0
    assert reminders(c, "f-1") == []


def test_two_workers_send_each_meeting_reminder_once(
    make_container: Make, clock: FakeClock
) -> None:
    c, other = make_container(), make_container()
    meeting = clock.now + timedelta(days=1)
    for n in range(30):
        interview = Interview(f"job-{n}")
        feed(c, *opened(interview), started(interview, meeting + timedelta(minutes=n)))
    clock.now = meeting - timedelta(minutes=1)  # every one due, none started
    workers = [c.reminder_worker(), other.reminder_worker()]
    for w in workers:
        w.batch_size = 4
    done = drain_together(workers)
    assert sum(done) == 30
    assert workers[0].counts["sent"] + workers[1].counts["sent"] == 30
    for user in ("c-1", "f-1"):
        sent = reminders(c, user)
        assert len(sent) == len({n["id"] for n in sent}) == 30


def test_a_crashed_worker_sends_the_meeting_reminder_once_after_restart(
    make_container: Make, clock: FakeClock
) -> None:
    c = make_container()
    meeting = clock.now + timedelta(days=1)
    interview = Interview()
    feed(c, *opened(interview), started(interview, meeting))
    clock.now = meeting - timedelta(minutes=45)
    worker = c.reminder_worker()
    crash_mid_round(worker)
    assert meeting_row(c, interview).status == "pending"
    c.close()

    restarted = make_container()
    assert restarted.reminder_worker().run_once() == 1
    # A row put back to pending (a worker that lost its update) records nothing new.
    with restarted.engine().begin() as conn:
        conn.execute(reminder_deadlines.update().values(status="pending"))
    assert make_container().reminder_worker().run_once() == 1
    assert len(reminders(restarted, "c-1")) == len(reminders(restarted, "f-1")) == 1
