"""Reminders on a real database (SQLite file and PostgreSQL): the party who must
answer an invitation or offer is reminded once, ``REMINDER_LEAD_HOURS`` before its
deadline; an answer, cancellation or expiry first means no reminder; two workers,
or a worker restarted after a crash, send it once. Time is a FakeClock moved by hand."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from services.common.consumer import Batch
from services.notifications.adapters.tables import notifications, reminder_deadlines
from services.notifications.bootstrap import NotificationsContainer, Workers, consumer_spec
from services.notifications.settings import NotificationsSettings
from tests.conftest import FakeClock
from tests.support.notifications import OFFER, Interview, WebhookReceiver, inbox_of
from tests.support.reminders import crash_mid_round, drain_together, feed, reminders
from tests.support.waiting import Ticks

pytestmark = pytest.mark.integration

Make = Callable[..., NotificationsContainer]
SECRET = "whsec-" + "r" * 24


def deadline_at(clock: FakeClock, hours: float) -> dict[str, Any]:
    return {"expires_at": (clock.now + timedelta(hours=hours)).isoformat()}


def rows(container: NotificationsContainer) -> dict[tuple[str, str], Any]:
    with container.engine().connect() as conn:
        found = conn.execute(sa.select(reminder_deadlines)).all()
    return {(r.interview_id, r.what): r for r in found}


def at(clock: FakeClock, when: datetime) -> None:
    clock.now = when


def test_the_freelancer_is_reminded_once_24_hours_before_the_invitation_expires(
    make_container: Make, clock: FakeClock, receiver: WebhookReceiver
) -> None:
    c = make_container()
    c.inbox().register_webhook("f-1", receiver.url, SECRET, ["interview.reminder"])
    start = clock.now
    interview = Interview()
    feed(c, interview.event("interview.invited", "client", deadline_at(clock, 72)))
    worker = c.reminder_worker()

    assert worker.run_once() == 0
    at(clock, start + timedelta(hours=48) - timedelta(seconds=1))
    assert worker.run_once() == 0, "reminded before its time"
    assert reminders(c) == []

    at(clock, start + timedelta(hours=48))
    assert worker.run_once() == 1
    (reminder,) = reminders(c)
    assert reminder["type"] == "interview.reminder"
    assert reminder["title"] == "Reminder: invitation awaiting your answer"
    assert reminder["message"] == (
        "Client c-1 is waiting for your answer to the invitation to interview for job job-1."
        " It expires on Saturday 28 November 2026 at 12:00 UTC."
    )
    assert reminder["interview_id"] == str(interview.id)
    assert reminder["details"]["what"] == "invitation"
    assert reminders(c, "c-1") == [], "the client has nothing to answer"
    (row,) = rows(c).values()
    assert (row.status, row.notification_id) == ("sent", reminder["id"])

    # The webhook delivery was recorded with the inbox entry: it goes out once.
    assert c.delivery_worker().run_until_idle() == 1
    (call,) = receiver.received
    assert call.headers["X-Notification-Id"] == reminder["id"]
    assert call.json()["kind"] == "reminder"

    for hours in (1, 12, 23.9):
        at(clock, start + timedelta(hours=48 + hours))
        assert worker.run_once() == 0
    assert len(reminders(c)) == 1
    assert c.delivery_worker().run_until_idle() == 0


def test_the_lead_time_is_configurable(
    make_container: Make, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMINDER_LEAD_HOURS", "2")
    assert NotificationsSettings().reminder_lead_hours == 2
    c = make_container(reminder_lead_hours=2)
    start = clock.now
    feed(c, Interview().event("interview.invited", "client", deadline_at(clock, 30)))
    at(clock, start + timedelta(hours=27, minutes=59))
    assert c.reminder_worker().run_once() == 0
    at(clock, start + timedelta(hours=28))
    assert c.reminder_worker().run_once() == 1
    assert len(reminders(c)) == 1


INVITATION_ENDINGS = [
    ("interview.accepted", "freelancer", {}),
    ("interview.declined", "freelancer", {"reason": "busy"}),
    ("interview.cancelled", "client", {"reason": "filled", "cancelled_by": "client"}),
    ("interview.expired", "system", {"what": "invitation"}),
]
OFFER_ENDINGS = [
    ("interview.offer_accepted", "freelancer", {}),
    ("interview.offer_declined", "freelancer", {"reason": "low"}),
    ("interview.cancelled", "freelancer", {"reason": "busy", "cancelled_by": "freelancer"}),
    ("interview.expired", "system", {"what": "offer"}),
]


def test_no_invitation_reminder_once_it_was_answered_cancelled_or_expired(
    make_container: Make, clock: FakeClock
) -> None:
    c = make_container()
    start = clock.now
    ended = {}
    for answer, _, _ in INVITATION_ENDINGS:
        interview = ended[answer] = Interview(f"job-{answer}")
        feed(c, interview.event("interview.invited", "client", deadline_at(clock, 72)))
    clock.advance(hours=10)
    for answer, actor, data in INVITATION_ENDINGS:
        feed(c, ended[answer].event(answer, actor, data))
    at(clock, start + timedelta(hours=60))
    assert c.reminder_worker().run_once() == 0
    assert reminders(c) == [] and reminders(c, "c-1") == []
    deadlines = rows(c)
    for answer, interview in ended.items():
        row = deadlines[(str(interview.id), "invitation")]
        assert (row.status, row.reason) == ("closed", answer)


def test_no_offer_reminder_once_it_was_answered_cancelled_or_expired(
    make_container: Make, clock: FakeClock
) -> None:
    c = make_container()
    start = clock.now
    for answer, actor, data in OFFER_ENDINGS:
        interview = Interview(f"job-{answer}")
        feed(
            c,
            interview.event("interview.invited", "client", deadline_at(clock, 72)),
            interview.event("interview.accepted", "freelancer"),
            interview.event("interview.offer_extended", "client", OFFER | deadline_at(clock, 96)),
            interview.event(answer, actor, data),
        )
    at(clock, start + timedelta(hours=80))
    assert c.reminder_worker().run_once() == 0
    assert reminders(c) == []
    assert {r.status for r in rows(c).values()} == {"closed"}


def test_a_revised_offer_replaces_the_reminder_of_the_declined_one(
    make_container: Make, clock: FakeClock
) -> None:
    c = make_container()
    start = clock.now
    interview = Interview()
    feed(
        c,
        interview.event("interview.invited", "client"),  # no deadline: nothing to remind of
        interview.event("interview.accepted", "freelancer"),
        interview.event("interview.offer_extended", "client", OFFER | deadline_at(clock, 48)),
    )
    worker = c.reminder_worker()
    at(clock, start + timedelta(hours=24))
    assert worker.run_once() == 1  # the first offer's reminder
    clock.advance(hours=1)
    feed(
        c,
        interview.event("interview.offer_declined", "freelancer", {"reason": "low"}),
        interview.event("interview.offer_extended", "client", OFFER | deadline_at(clock, 120)),
    )
    row = rows(c)[(str(interview.id), "offer")]
    assert (row.status, row.version, row.notification_id) == ("pending", 5, None)
    assert row.expires_at == start + timedelta(hours=145)

    at(clock, start + timedelta(hours=120) + timedelta(seconds=-1))
    assert worker.run_once() == 0
    at(clock, start + timedelta(hours=121))
    assert worker.run_once() == 1
    first, second = reversed(reminders(c))
    assert first["id"] != second["id"]
    assert "Friday 27 November 2026 at 12:00 UTC" in first["message"]
    assert "Tuesday 1 December 2026 at 13:00 UTC" in second["message"]
    assert all(r["title"] == "Reminder: offer awaiting your answer" for r in (first, second))
    assert worker.run_once() == 0


def test_a_stale_or_duplicate_event_never_reopens_a_deadline(
    make_container: Make, clock: FakeClock
) -> None:
    c = make_container()
    start = clock.now
    answered = Interview("job-1")
    invited = answered.event("interview.invited", "client", deadline_at(clock, 72))
    feed(c, invited, answered.event("interview.accepted", "freelancer"))
    feed(c, invited)  # a redelivery that got past the runner's dedupe

    out_of_order = Interview("job-2")
    first = out_of_order.event("interview.invited", "client", deadline_at(clock, 72))
    cancelled = out_of_order.event(
        "interview.cancelled", "client", {"reason": "filled", "cancelled_by": "client"}
    )
    feed(c, cancelled, first)  # the closing event leaves a tombstone the older one cannot beat

    at(clock, start + timedelta(hours=60))
    assert c.reminder_worker().run_once() == 0
    assert reminders(c) == []
    assert rows(c)[(str(answered.id), "invitation")].version == 2
    assert rows(c)[(str(out_of_order.id), "invitation")].status == "closed"


def test_a_batch_in_one_transaction_leaves_what_event_by_event_leaves(
    make_container: Make, clock: FakeClock
) -> None:
    """The consumer writes a whole batch at once (rows touched several times in
    it change in rounds, in order): the same inbox and deadlines as one by one."""
    offer_twice, answered, out_of_order = Interview("job-1"), Interview("job-2"), Interview("job-3")
    short = Interview("job-4")  # a deadline within the lead time: "skipped", then answered
    invited = out_of_order.event("interview.invited", "client", deadline_at(clock, 72))
    cancelled = out_of_order.event(
        "interview.cancelled", "client", {"reason": "filled", "cancelled_by": "client"}
    )
    history = [
        cancelled,
        short.event("interview.invited", "client", deadline_at(clock, 12)),
        short.event("interview.accepted", "freelancer"),
        offer_twice.event("interview.invited", "client", deadline_at(clock, 72)),
        answered.event("interview.invited", "client", deadline_at(clock, 72)),
        offer_twice.event("interview.accepted", "freelancer"),
        offer_twice.event("interview.offer_extended", "client", OFFER | deadline_at(clock, 48)),
        answered.event("interview.accepted", "freelancer"),
        offer_twice.event("interview.offer_declined", "freelancer", {"reason": "low"}),
        offer_twice.event("interview.offer_extended", "client", OFFER | deadline_at(clock, 120)),
        invited,
    ]
    one_by_one, batched = make_container(), make_container()
    feed(one_by_one, *history)
    spec = consumer_spec(batched)
    with batched.engine().begin() as conn:
        spec.apply(conn, Batch(history))

    def state(c: NotificationsContainer) -> tuple[Any, ...]:
        deadlines = {
            key: (r.status, r.version, r.due_at, r.expires_at, r.reason)
            for key, r in rows(c).items()
        }
        inbox = sorted(
            (n["id"], n["title"], n["message"])
            for user in ("c-1", "f-1")
            for n in inbox_of(c, user)
        )
        return deadlines, inbox

    expected = state(one_by_one)
    assert expected[0][(str(offer_twice.id), "offer")][:2] == ("pending", 5)
    assert expected[0][(str(answered.id), "invitation")][0] == "closed"
    assert expected[0][(str(out_of_order.id), "invitation")][0] == "closed"
    assert expected[0][(str(short.id), "invitation")][:2] == ("skipped", 2)
    assert len(expected[1]) >= len(history)
    assert state(batched) == expected


def test_two_workers_send_each_reminder_once(
    make_container: Make, clock: FakeClock, receiver: WebhookReceiver
) -> None:
    c = make_container()
    other = make_container()  # a second process: its own engine, same database
    c.inbox().register_webhook("f-1", receiver.url, SECRET, ["interview.reminder"])
    start = clock.now
    for n in range(40):
        feed(c, Interview(f"job-{n}").event("interview.invited", "client", deadline_at(clock, 72)))
    at(clock, start + timedelta(hours=50))
    workers = [c.reminder_worker(), other.reminder_worker()]
    for w in workers:
        w.batch_size = 7
    done = drain_together(workers)
    assert sum(done) == 40
    assert len(reminders(c)) == 40
    assert {r.status for r in rows(c).values()} == {"sent"}
    assert c.delivery_worker().run_until_idle() == 40
    sent = [r.headers["X-Notification-Id"] for r in receiver.received]
    assert len(sent) == len(set(sent)) == 40


def test_a_restarted_or_crashed_worker_sends_a_reminder_once(
    make_container: Make, clock: FakeClock
) -> None:
    c = make_container()
    start = clock.now
    crashed, sent = Interview("job-1"), Interview("job-2")
    feed(c, crashed.event("interview.invited", "client", deadline_at(clock, 72)))
    feed(c, sent.event("interview.invited", "client", deadline_at(clock, 73)))
    at(clock, start + timedelta(hours=48, minutes=30))

    # The process dies after marking the row sent, before committing the inbox entry.
    worker = c.reminder_worker()
    crash_mid_round(worker)
    assert reminders(c) == []
    assert {r.status for r in rows(c).values()} == {"pending"}
    c.close()

    restarted = make_container()
    at(clock, start + timedelta(hours=49, minutes=30))
    assert restarted.reminder_worker().run_once() == 2
    restarted.close()
    again = make_container()
    assert again.reminder_worker().run_once() == 0
    clock.advance(hours=12)
    assert again.reminder_worker().run_until_idle() == 0
    assert sorted(r["job_id"] for r in reminders(again)) == ["job-1", "job-2"]

    # Even a row put back to pending (a worker that lost its update) records nothing new:
    # the reminder's id is stable and unique.
    with again.engine().begin() as conn:
        conn.execute(reminder_deadlines.update().values(status="pending"))
    at(clock, start + timedelta(hours=50))
    assert again.reminder_worker().run_once() == 2
    with again.engine().connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(notifications)).scalar() == 4
    assert len(reminders(again)) == 2


def test_no_reminder_once_the_deadline_has_passed(make_container: Make, clock: FakeClock) -> None:
    c = make_container()
    start = clock.now
    interview = Interview()
    feed(c, interview.event("interview.invited", "client", deadline_at(clock, 72)))
    at(clock, start + timedelta(hours=72))  # the worker was down all through the lead time
    assert c.reminder_worker().run_once() == 1
    assert reminders(c) == []
    row = rows(c)[(str(interview.id), "invitation")]
    assert (row.status, row.notification_id) == ("skipped", None)
    assert c.reminder_worker().counts == {"sent": 0, "skipped": 1}


def test_a_deadline_set_within_the_lead_time_gets_no_separate_reminder(
    make_container: Make, clock: FakeClock
) -> None:
    c = make_container()
    interview = Interview()
    feed(c, interview.event("interview.invited", "client", deadline_at(clock, 6)))
    clock.advance(hours=1)
    assert c.reminder_worker().run_once() == 0
    (invitation,) = inbox_of(c, "f-1")
    assert "Please answer by Wednesday 25 November 2026 at 18:00 UTC" in invitation["message"]
    assert rows(c)[(str(interview.id), "invitation")].status == "skipped"


def test_expired_interviews_and_their_notifications_appear_in_the_inboxes(
    make_container: Make, clock: FakeClock
) -> None:
    c = make_container()
    invitation, offer = Interview("job-1"), Interview("job-2")
    feed(
        c,
        invitation.event("interview.invited", "client", deadline_at(clock, 72)),
        offer.event("interview.invited", "client", deadline_at(clock, 72)),
        offer.event("interview.accepted", "freelancer"),
        offer.event("interview.offer_extended", "client", OFFER | deadline_at(clock, 72)),
    )
    clock.advance(hours=72)
    feed(
        c,
        invitation.event("interview.expired", "system", {"what": "invitation"}),
        offer.event("interview.expired", "system", {"what": "offer"}),
    )
    for user, whose in (("f-1", "from client c-1"), ("c-1", "to freelancer f-1")):
        expired = {n["job_id"]: n for n in inbox_of(c, user) if n["type"] == "interview.expired"}
        assert set(expired) == {"job-1", "job-2"}
        assert expired["job-1"]["title"] == "Invitation expired"
        assert expired["job-2"]["title"] == "Offer expired"
        assert expired["job-2"]["details"]["what"] == "offer"
        assert whose in expired["job-1"]["message"] and "expired" in expired["job-1"]["message"]
    assert c.reminder_worker().run_once() == 0
    assert {r.status for r in rows(c).values()} == {"closed"}


def test_the_worker_sleeps_until_the_next_reminder_is_due_never_longer_than_the_maximum(
    make_container: Make, clock: FakeClock
) -> None:
    c = make_container(reminder_max_sleep_seconds=30)
    worker = c.reminder_worker()
    assert worker.sleep_seconds() == 30, "nothing pending: the maximum"
    feed(c, Interview().event("interview.invited", "client", deadline_at(clock, 24 + 10 / 3600)))
    assert worker.sleep_seconds() == pytest.approx(10)
    worker.max_sleep_seconds = 4
    assert worker.sleep_seconds() == 4


def test_the_running_worker_sends_a_due_reminder_within_moments(
    make_container: Make, clock: FakeClock
) -> None:
    """Driven through its own loop, round by round: a round a second before the
    reminder is due sends nothing, the round at that moment sends it; a worker
    asleep for ten minutes is woken by the consumer, or by ``wake``."""
    c = make_container(reminder_max_sleep_seconds=0.2)
    worker = c.reminder_worker()
    rounds = Ticks.install(worker, "run_once", clock)  # what each round saw and settled
    sleeps = Ticks.install(worker, "sleep_seconds")  # how long each round then slept
    workers = Workers(c, consumer=False, delivery=False).start()
    try:
        start = clock.now
        feed(c, Interview().event("interview.invited", "client", deadline_at(clock, 72)))
        at(clock, start + timedelta(hours=48, seconds=-1))
        early = rounds.wait_for(len(rounds), where=lambda tick: tick.at == clock.now)
        assert early.result == 0, "reminded before its time"
        assert reminders(c) == []
        at(clock, start + timedelta(hours=48))  # no wake: the capped sleep finds it
        due = rounds.wait_for(len(rounds), where=lambda tick: tick.at == clock.now)
        assert due.result == 1
        assert len(reminders(c)) == 1

        # A long maximum: the consumer wakes the worker when it opens a deadline (this
        # invitation was sent 48 hours ago, the consumer is late: its reminder is due now).
        worker.max_sleep_seconds = 600
        asleep = sleeps.wait_for(len(sleeps), where=lambda tick: tick.result == 600)
        feed(c, Interview("job-2").event("interview.invited", "client", deadline_at(clock, 12)))
        woken = rounds.wait_for(asleep.number)  # well within the ten minutes it meant to sleep
        assert woken.result == 1
        assert sorted(r["job_id"] for r in reminders(c)) == ["job-1", "job-2"]

        # A round after the next deadline was opened, half an hour before it is due:
        # nothing. Moving the clock past it, then waking the worker, sends that one too.
        feed(c, Interview("job-3").event("interview.invited", "client", deadline_at(clock, 24.5)))
        clock.advance(seconds=1)
        worker.wake()
        before = rounds.wait_for(len(rounds), where=lambda tick: tick.at == clock.now)
        assert before.result == 0
        assert len(reminders(c)) == 2
        clock.advance(hours=1)
        worker.wake()
        after = rounds.wait_for(len(rounds), where=lambda tick: tick.at == clock.now)
        assert after.result == 1
        assert sorted(r["job_id"] for r in reminders(c)) == ["job-1", "job-2", "job-3"]
    finally:
        workers.stop()


def test_the_consumer_wakes_the_worker_only_for_a_reminder_due_before_its_next_round(
    make_container: Make, clock: FakeClock
) -> None:
    """Under load most deadlines opened are days ahead: the sleeping worker is left
    alone (its next round finds them); one due before that round wakes it."""
    c = make_container(reminder_max_sleep_seconds=600)
    worker = c.reminder_worker()
    sleeps = Ticks.install(worker, "sleep_seconds")
    wakes: list[datetime] = []
    wake = worker.wake

    def counted(*_: object) -> None:
        wakes.append(clock.now)
        wake()

    worker.wake = counted  # type: ignore[method-assign]
    workers = Workers(c, consumer=False, delivery=False).start()
    try:
        sleeps.wait_for(0, where=lambda tick: tick.result == 600)
        feed(c, Interview().event("interview.invited", "client", deadline_at(clock, 72)))
        assert wakes == [], "a reminder due in two days woke the worker"
        assert rows(c) and all(r.status == "pending" for r in rows(c).values())

        soon = deadline_at(clock, 24 + 60 / 3600)  # its reminder is due in a minute
        feed(c, Interview("job-2").event("interview.invited", "client", soon))
        assert wakes == [clock.now]
        woken = sleeps.wait_for(len(sleeps))
        assert woken.result == pytest.approx(60), "the woken worker sleeps until it is due"
    finally:
        workers.stop()


def test_a_batch_over_stored_rows_leaves_every_column_as_event_by_event_does(
    make_container: Make, clock: FakeClock
) -> None:
    """A row changed several times in one batch is written once, in its final state:
    over rows earlier batches stored, with a stale redelivery and a meeting's
    reschedule and cancellation in it, the same rows and inbox as one by one."""
    declined, met = Interview("job-1"), Interview("job-2")
    soon = {"scheduled_at": (clock.now + timedelta(hours=30)).isoformat()}
    later = {"scheduled_at": (clock.now + timedelta(hours=50)).isoformat(), "duration_minutes": 45}
    invited = met.event("interview.invited", "client", deadline_at(clock, 72))
    before = [
        declined.event("interview.invited", "client", deadline_at(clock, 72)),
        invited,
        met.event("interview.accepted", "freelancer"),
        met.event("interview.started", "client", soon),
    ]
    after = [
        declined.event("interview.declined", "freelancer", {"reason": "busy"}),
        declined.event("interview.cancelled", "client", {"reason": "x", "cancelled_by": "client"}),
        invited,  # a redelivery: older than the stored invitation row
        met.event("interview.rescheduled", "client", later),
        met.event("interview.offer_extended", "client", OFFER | deadline_at(clock, 48)),
        met.event("interview.rescheduled", "freelancer", soon),
        met.event(
            "interview.cancelled", "freelancer", {"reason": "y", "cancelled_by": "freelancer"}
        ),
    ]
    one_by_one, batched = make_container(), make_container()
    feed(one_by_one, *before, *after)
    feed(batched, *before)
    with batched.engine().begin() as conn:
        consumer_spec(batched).apply(conn, Batch(after))

    def state(c: NotificationsContainer) -> tuple[Any, ...]:
        deadlines = {key: tuple(r) for key, r in rows(c).items()}
        inbox = sorted(
            (n["id"], n["message"], repr(sorted(n["details"].items())))
            for user in ("c-1", "f-1")
            for n in inbox_of(c, user)
        )
        return deadlines, inbox

    expected = state(one_by_one)
    meeting = rows(one_by_one)[(str(met.id), "meeting")]
    assert (meeting.status, meeting.version, meeting.calendar_sequence) == ("closed", 7, 3)
    assert rows(one_by_one)[(str(declined.id), "invitation")].reason == "interview.declined"
    assert state(batched) == expected
