"""Deadlines and the exclusive window, on SQLite and on PostgreSQL.

Invitations and offers that nobody answers expire exactly once, whoever races
whom (answers, a second scheduler, a crash); the exclusive window refuses new
invitations while it runs, also when an invitation races the start of another
interview. Time is a FakeClock that the tests move; the scheduler is driven
tick by tick (``run_once``) except where its loop itself is under test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from services.common.db import create_engine
from services.interviews.application import InterviewsApplication
from services.interviews.bootstrap import InterviewsContainer
from services.interviews.domain import (
    DeadlinePassedError,
    ExclusiveWindowError,
    Interview,
    Job,
)
from services.interviews.scheduler import DeadlineIndex, Scheduler, TickReport
from services.interviews.settings import InterviewsSettings
from tests.conftest import FakeClock
from tests.jobs import ensure_job, invite, register_job
from tests.support.waiting import Ticks, wait_until

from .downstream import as_party

pytestmark = pytest.mark.integration

Token = Callable[[str, str], dict[str, str]]
CLIENT, FREELANCER = "client-1", "freelancer-1"
ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ helpers


@pytest.fixture
def make_scheduler(
    interviews_container: InterviewsContainer,
) -> Iterator[Callable[..., Scheduler]]:
    """``make_scheduler()`` -> a scheduler on the test's container (or another one)."""
    made: list[Scheduler] = []

    def make(container: InterviewsContainer | None = None, **options: Any) -> Scheduler:
        options.setdefault("max_sleep", 0.05)
        options.setdefault("lease_seconds", 1.0)
        scheduler = Scheduler(container or interviews_container, **options)
        made.append(scheduler)
        return scheduler

    yield make
    for scheduler in made:
        scheduler.stop()


@pytest.fixture
def other_container(
    interviews_settings: InterviewsSettings, clock: FakeClock
) -> Iterator[InterviewsContainer]:
    """A second process's view of the same database: its own application."""
    container = InterviewsContainer(interviews_settings, clock=clock)
    yield container
    container.close()


def invite_freelancers(
    app: InterviewsApplication,
    clock: FakeClock,
    job_id: str,
    count: int,
    *,
    minutes: int,
    step: int = 0,
) -> list[UUID]:
    """``freelancer-0..count-1`` invited to ``job_id``; the n-th invitation expires
    ``minutes + step * n`` minutes from now."""
    ensure_job(app, job_id, CLIENT, clock.now)
    return [
        app.invite(
            as_party(CLIENT, "client", clock.now),
            job_id=job_id,
            freelancer_id=f"freelancer-{n}",
            expires_at=clock.now + timedelta(minutes=minutes + step * n),
        ).id
        for n in range(count)
    ]


def events(app: InterviewsApplication, interview_id: str | UUID) -> list[Interview.Event]:
    return app.interview_events(UUID(str(interview_id)))


def kinds(app: InterviewsApplication, interview_id: str | UUID) -> list[str]:
    return [type(e).__name__ for e in events(app, interview_id)]


def expired_events(app: InterviewsApplication, interview_id: str | UUID) -> list[Any]:
    return [e for e in events(app, interview_id) if isinstance(e, Interview.Expired)]


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# ----------------------------------------------------------------- expiry


def test_an_unanswered_invitation_expires_once_its_deadline_passes(
    api: TestClient,
    client: dict[str, str],
    clock: FakeClock,
    interviews_container: InterviewsContainer,
    make_scheduler: Callable[..., Scheduler],
) -> None:
    sent_at = clock.now
    iid = invite(api, client)["id"]  # the default: 7 days
    scheduler = make_scheduler()

    report = scheduler.run_once()
    [deadline] = scheduler.index().all()
    assert (report.leader, report.indexed, report.expired) == (True, 1, 0)
    assert (deadline.interview_id, deadline.what) == (UUID(iid), "invitation")
    assert deadline.due_at == sent_at + timedelta(days=7)

    clock.advance(days=7, seconds=-1)
    assert scheduler.run_once().expired == 0
    clock.advance(seconds=1)
    report = scheduler.run_once()

    assert report.expired == 1
    app = interviews_container.interviews()
    assert kinds(app, iid) == ["Invited", "Expired"]
    [expired] = expired_events(app, iid)
    assert (expired.what, expired.actor_role, expired.timestamp) == (
        "invitation",
        "system",
        clock.now,
    )
    body = api.get(f"/interviews/{iid}", headers=client).json()
    assert (body["status"], body["closed_reason"]) == ("expired", "invitation expired")
    assert scheduler.index().all() == []
    clock.advance(days=30)
    assert scheduler.run_once().expired == 0
    assert len(expired_events(app, iid)) == 1


def test_an_unanswered_offer_expires_and_the_answered_invitation_does_not(
    api: TestClient,
    client: dict[str, str],
    freelancer: dict[str, str],
    clock: FakeClock,
    interviews_container: InterviewsContainer,
    make_scheduler: Callable[..., Scheduler],
) -> None:
    scheduler = make_scheduler()
    iid = invite(api, client, expires_at=iso(clock.now + timedelta(hours=1)))["id"]
    assert api.post(f"/interviews/{iid}/accept", headers=freelancer).status_code == 200
    scheduler.run_once()
    assert scheduler.index().all() == []  # the answered invitation left the index

    offer = {"amount": "900.00", "currency": "EUR", "rate_type": "hourly"}
    offer["expires_at"] = iso(clock.now + timedelta(days=2))
    assert api.post(f"/interviews/{iid}/offer", json=offer, headers=client).status_code == 200
    clock.advance(days=1)  # well past the invitation's hour
    assert scheduler.run_once().expired == 0
    [deadline] = scheduler.index().all()
    assert (deadline.what, deadline.version) == ("offer", 3)

    clock.advance(days=1)
    assert scheduler.run_once().expired == 1

    app = interviews_container.interviews()
    assert kinds(app, iid) == ["Invited", "Accepted", "OfferExtended", "Expired"]
    assert expired_events(app, iid)[0].what == "offer"
    assert api.get(f"/interviews/{iid}", headers=client).json()["status"] == "expired"


def test_the_default_offer_deadline_is_seven_days(
    api: TestClient,
    client: dict[str, str],
    freelancer: dict[str, str],
    clock: FakeClock,
    make_scheduler: Callable[..., Scheduler],
) -> None:
    iid = invite(api, client)["id"]
    api.post(f"/interviews/{iid}/accept", headers=freelancer)
    offered_at = clock.advance(hours=5)
    offer = {"amount": "900.00", "currency": "EUR", "rate_type": "fixed"}
    assert api.post(f"/interviews/{iid}/offer", json=offer, headers=client).status_code == 200
    scheduler = make_scheduler()
    scheduler.run_once()
    [deadline] = scheduler.index().all()
    assert (deadline.what, deadline.due_at) == ("offer", offered_at + timedelta(days=7))


@pytest.mark.parametrize("same_tick", [True, False], ids=["one-batch", "two-batches"])
def test_a_reschedule_keeps_the_open_offers_deadline_and_a_withdrawal_drops_it(
    api: TestClient,
    client: dict[str, str],
    freelancer: dict[str, str],
    clock: FakeClock,
    interviews_container: InterviewsContainer,
    make_scheduler: Callable[..., Scheduler],
    same_tick: bool,
) -> None:
    scheduler = make_scheduler()
    iid = invite(api, client)["id"]
    api.post(f"/interviews/{iid}/accept", headers=freelancer)
    api.post(f"/interviews/{iid}/start", json={"scheduled_at": iso(clock.now)}, headers=client)
    offer = {"amount": "900.00", "currency": "EUR", "rate_type": "fixed"}
    offer["expires_at"] = iso(clock.now + timedelta(days=2))
    assert api.post(f"/interviews/{iid}/offer", json=offer, headers=client).status_code == 200
    if not same_tick:
        scheduler.run_once()
    moved = {"scheduled_at": iso(clock.now + timedelta(days=1))}
    assert (
        api.post(f"/interviews/{iid}/reschedule", json=moved, headers=freelancer).status_code == 200
    )

    scheduler.run_once()

    [deadline] = scheduler.index().all()
    assert (deadline.what, deadline.version) == ("offer", 4)
    withdrawn = api.post(f"/interviews/{iid}/offer/withdraw", headers=client)
    assert withdrawn.status_code == 200, withdrawn.text
    scheduler.run_once()
    assert scheduler.index().all() == []
    clock.advance(days=3)
    assert scheduler.run_once().expired == 0
    app = interviews_container.interviews()
    assert kinds(app, iid)[-3:] == ["OfferExtended", "Rescheduled", "OfferWithdrawn"]


@pytest.mark.parametrize("scheduler_first", [True, False], ids=["expired", "not-yet-recorded"])
def test_a_late_answer_is_409_expired_naming_what_expired(
    api: TestClient,
    client: dict[str, str],
    freelancer: dict[str, str],
    clock: FakeClock,
    make_scheduler: Callable[..., Scheduler],
    token: Token,
    scheduler_first: bool,
) -> None:
    scheduler = make_scheduler()
    in_an_hour = iso(clock.now + timedelta(hours=1))
    late_invitation = invite(api, client, "freelancer-1", expires_at=in_an_hour)["id"]
    offered = invite(api, client, "freelancer-2")["id"]
    freelancer_2 = token("freelancer-2", "freelancer")
    api.post(f"/interviews/{offered}/accept", headers=freelancer_2)
    offer = {"amount": "900.00", "currency": "EUR", "rate_type": "fixed"}
    offer["expires_at"] = in_an_hour
    api.post(f"/interviews/{offered}/offer", json=offer, headers=client)
    clock.advance(hours=2)
    if scheduler_first:
        assert scheduler.run_once().expired == 2

    answers = [
        (f"/interviews/{late_invitation}/accept", freelancer, "invitation"),
        (f"/interviews/{late_invitation}/decline", freelancer, "invitation"),
        (f"/interviews/{offered}/offer/accept", freelancer_2, "offer"),
        (f"/interviews/{offered}/offer/decline", freelancer_2, "offer"),
    ]
    for path, headers, what in answers:
        response = api.post(path, headers=headers)
        assert response.status_code == 409, response.text
        body = response.json()
        assert body["code"] == "expired"
        assert f"the {what} expired at" in body["detail"]

    assert scheduler.run_once().expired == (0 if scheduler_first else 2)


def test_an_answer_before_the_deadline_wins(
    api: TestClient,
    client: dict[str, str],
    freelancer: dict[str, str],
    clock: FakeClock,
    interviews_container: InterviewsContainer,
    make_scheduler: Callable[..., Scheduler],
) -> None:
    scheduler = make_scheduler()
    iid = invite(api, client, expires_at=iso(clock.now + timedelta(hours=1)))["id"]
    scheduler.run_once()  # indexed while it was open
    clock.advance(minutes=59, seconds=59)
    assert api.post(f"/interviews/{iid}/accept", headers=freelancer).status_code == 200
    clock.advance(days=1)

    report = scheduler.run_once()

    assert report.expired == 0
    assert kinds(interviews_container.interviews(), iid) == ["Invited", "Accepted"]
    assert scheduler.index().all() == []


def test_answers_racing_the_scheduler_leave_exactly_one_outcome_each(
    clock: FakeClock,
    interviews_container: InterviewsContainer,
    other_container: InterviewsContainer,
    make_scheduler: Callable[..., Scheduler],
) -> None:
    """The freelancer's answers (sent just before the deadline, processed as it
    passes) race the scheduler of another process: each interview ends either
    accepted or expired, never both, and a refused answer says it expired."""
    app = interviews_container.interviews()
    due = clock.now + timedelta(hours=1)
    ids = []
    ensure_job(app, "job-race", CLIENT, clock.now)
    for n in range(8):
        result = app.invite(
            as_party(CLIENT, "client", clock.now),
            job_id="job-race",
            freelancer_id=f"freelancer-{n}",
            expires_at=due,
        )
        ids.append(result.id)
    scheduler = make_scheduler(other_container)
    scheduler.run_once()
    clock.now = due
    answers: dict[UUID, str] = {}
    start = threading.Barrier(2)

    def answer_all() -> None:
        start.wait()
        for n, iid in enumerate(ids):
            try:
                app.accept(
                    as_party(f"freelancer-{n}", "freelancer", due - timedelta(seconds=1)), iid
                )
                answers[iid] = "accepted"
            except DeadlinePassedError as error:
                assert error.what == "invitation"
                answers[iid] = "expired"

    def expire_all() -> None:
        start.wait()
        scheduler.run_once()

    threads = [threading.Thread(target=answer_all), threading.Thread(target=expire_all)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    scheduler.run_once()

    for iid in ids:
        outcome = kinds(app, iid)[1:]
        assert outcome in (["Accepted"], ["Expired"]), outcome
        assert answers[iid] == outcome[0].lower()
    assert scheduler.index().all() == []


# ------------------------------------------------- several schedulers, crashes


def test_two_schedulers_record_one_expired_per_deadline(
    clock: FakeClock,
    interviews_container: InterviewsContainer,
    other_container: InterviewsContainer,
    make_scheduler: Callable[..., Scheduler],
) -> None:
    app = interviews_container.interviews()
    ids = invite_freelancers(app, clock, "job-2", 6, minutes=10, step=1)
    first, second = make_scheduler(), make_scheduler(other_container)
    rounds = [Ticks.install(s, "run_once", clock) for s in (first, second)]
    first.start()
    second.start()
    wait_until(lambda: first.is_leader or second.is_leader)

    clock.advance(hours=1)
    first.wake()
    second.wake()
    wait_until(lambda: all(expired_events(app, iid) for iid in ids))
    # Two more whole rounds of each, begun after the last expiry: they find nothing to do.
    done = [len(r) for r in rounds]
    for scheduler, counted, seen in zip((first, second), rounds, done, strict=True):
        scheduler.wake()
        counted.wait_for(seen)
        scheduler.wake()
        counted.wait_for(seen + 1)
    first.stop()
    second.stop()

    later = [
        tick.result
        for counted, seen in zip(rounds, done, strict=True)
        for tick in counted.since(seen + 1)
    ]
    assert len(later) >= 2
    assert [(r.expired, r.settled, r.failed) for r in later] == [(0, 0, 0)] * len(later)
    assert [len(expired_events(app, iid)) for iid in ids] == [1] * 6
    assert sorted([first.expired_total, second.expired_total]) == [0, 6]


class AlwaysLeads:
    """A lease that never says no: both instances work at once."""

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        pass


def test_without_a_lease_racing_schedulers_still_expire_each_deadline_once(
    clock: FakeClock,
    interviews_container: InterviewsContainer,
    other_container: InterviewsContainer,
    make_scheduler: Callable[..., Scheduler],
) -> None:
    """The lease only saves effort: the aggregate's version check and state
    check are what make ``Expired`` happen once."""
    app = interviews_container.interviews()
    ids = invite_freelancers(app, clock, "job-3", 10, minutes=5)
    schedulers = [
        make_scheduler(lease=AlwaysLeads()),
        make_scheduler(other_container, lease=AlwaysLeads()),
    ]
    clock.advance(hours=1)
    start = threading.Barrier(2)
    reports: list[TickReport] = []

    def tick(scheduler: Scheduler) -> None:
        start.wait()
        reports.append(scheduler.run_once())

    threads = [threading.Thread(target=tick, args=(s,)) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(reports) == 2
    assert [len(expired_events(app, iid)) for iid in ids] == [1] * 10
    assert sum(r.expired for r in reports) == 10
    assert sum(r.failed for r in reports) == 0
    assert schedulers[0].index().all() == []


CRASHING_SCHEDULER = """
import os, sys
from datetime import datetime
from pathlib import Path
from services.interviews import scheduler as module
from services.interviews.bootstrap import InterviewsContainer
from services.interviews.settings import InterviewsSettings

now = datetime.fromisoformat(sys.argv[1])
settings = InterviewsSettings(
    database_url=sys.argv[2] or None, data_dir=Path(sys.argv[3]), scheduler_lease_seconds=1
)
container = InterviewsContainer(settings, clock=lambda: now)

def crash(*args, **kwargs):
    os._exit(17)  # dies between recording Expired and updating its index

module.Scheduler._forget = crash
module.Scheduler(container).run_once()
"""


def test_a_crashed_scheduler_is_replaced_and_the_next_resumes_from_the_stored_position(
    database_url: str | None,
    tmp_path: Path,
    clock: FakeClock,
    interviews_container: InterviewsContainer,
    make_scheduler: Callable[..., Scheduler],
) -> None:
    app = interviews_container.interviews()
    ids = invite_freelancers(app, clock, "job-4", 3, minutes=5, step=1)
    clock.advance(hours=1)

    crashed = subprocess.run(
        [
            sys.executable,
            "-c",
            CRASHING_SCHEDULER,
            clock.now.isoformat(),
            database_url or "",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert crashed.returncode == 17, crashed.stderr
    assert [len(expired_events(app, iid)) for iid in ids] == [1, 0, 0]

    later = app.invite(
        as_party(CLIENT, "client", clock.now),
        job_id="job-4",
        freelancer_id="freelancer-late",
        expires_at=clock.now + timedelta(days=1),
    ).id
    successor = make_scheduler()
    stored = successor.index().position()
    assert stored > 0  # the crashed instance had indexed the log before dying
    # An SQLite lease lapses after its 1 s.
    report = wait_until(
        successor.run_once,
        5,
        what="the crashed scheduler's lease to lapse",
        until=lambda tick: tick.leader,
    )

    # It reads only what the crashed instance had not: its Expired (which clears the
    # row it left behind) and the late invitation; then expires the other two.
    assert report.indexed == 2
    assert (report.expired, report.settled, report.failed) == (2, 0, 0)
    assert [len(expired_events(app, iid)) for iid in ids] == [1, 1, 1]
    assert [d.interview_id for d in successor.index().all()] == [later]


# ----------------------------------------------------------------- the loop


def test_the_loop_wakes_for_new_invitations_and_sleeps_when_idle(
    api: TestClient,
    client: dict[str, str],
    clock: FakeClock,
    interviews_container: InterviewsContainer,
    make_scheduler: Callable[..., Scheduler],
) -> None:
    scheduler = make_scheduler(max_sleep=30.0)
    ticks = Ticks.install(scheduler, "run_once", clock)
    pauses = Ticks.install(scheduler, "_pause_after")  # what each round chose to sleep
    scheduler.start()
    idle = pauses.wait_for(0)
    assert idle.result == 30.0, "idle: asleep for max_sleep, not polling"

    iid = invite(api, client, expires_at=iso(clock.now + timedelta(minutes=30)))["id"]
    # Within seconds, though it meant to sleep 30: woken by the commit.
    wait_until(lambda: len(scheduler.index().all()) == 1)
    assert pauses.wait_for(1).result == 30.0  # the deadline is 30 minutes away

    clock.advance(minutes=30)
    scheduler.wake()
    wait_until(lambda: bool(expired_events(interviews_container.interviews(), iid)))
    began = time.monotonic()
    scheduler.stop()
    assert time.monotonic() - began < 5
    assert len(ticks) < 10


def test_a_stream_of_invitations_wakes_the_loop_at_most_once_per_wake_interval(
    api: TestClient,
    client: dict[str, str],
    clock: FakeClock,
    make_scheduler: Callable[..., Scheduler],
) -> None:
    scheduler = make_scheduler(max_sleep=30.0, min_wake_interval=1.0)
    ticks = Ticks.install(scheduler, "run_once", clock)
    scheduler.start()
    wait_until(lambda: len(ticks) >= 1)
    began, before = time.monotonic(), len(ticks)
    for n in range(40):
        job = f"job-stream-{n}"
        invite(api, client, f"fl-{n}", job, expires_at=iso(clock.now + timedelta(days=1)))
    wait_until(lambda: len(scheduler.index().all()) == 40)
    elapsed = time.monotonic() - began
    scheduler.stop()
    # Each invitation's commit wakes the loop; it gathers them into ticks of its own pace.
    assert len(ticks) - before <= elapsed / 1.0 + 2, (len(ticks) - before, elapsed)


def scheduler_is_running(settings: InterviewsSettings) -> Callable[[], bool]:
    """True once a scheduler has set up its position in the database."""

    def check() -> bool:
        engine = create_engine(settings.database_url, settings.data_dir / "interviews.sqlite")
        try:
            DeadlineIndex(engine).position()
            return True
        except sa.exc.SQLAlchemyError:  # no table or no row yet
            return False
        finally:
            engine.dispose()

    return check


def test_serve_scheduler_expires_in_real_time_and_stops_on_sigterm(
    database_url: str | None, tmp_path: Path, interviews_settings: InterviewsSettings
) -> None:
    env = {
        **os.environ,
        "DATA_DIR": str(tmp_path),
        "SCHEDULER_MAX_SLEEP_SECONDS": "0.5",
        "LOG_LEVEL": "INFO",
    }
    env.pop("DATABASE_URL", None)
    if database_url:
        env["DATABASE_URL"] = database_url
    container = InterviewsContainer(interviews_settings)  # the real clock
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "serve", "scheduler"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        app = container.interviews()
        wait_until(scheduler_is_running(interviews_settings), timeout=20)
        ensure_job(app, "job-5", CLIENT)
        due = datetime.now(UTC) + timedelta(seconds=1)
        iid = app.invite(
            as_party(CLIENT, "client", datetime.now(UTC)),
            job_id="job-5",
            freelancer_id=FREELANCER,
            expires_at=due,
        ).id
        wait_until(lambda: bool(expired_events(app, iid)), timeout=10)
        # Another process's invitation cannot wake it: found by its 0.5 s naps.
        assert datetime.now(UTC) - due < timedelta(seconds=3)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        container.close()
    assert process.returncode == 0, output
    assert "expired the invitation of interview" in output
    assert "SIGTERM, stopping" in output


# -------------------------------------------------------- the exclusive window


def test_the_exclusive_window_refuses_invitations_until_it_ends(
    api: TestClient, client: dict[str, str], freelancer: dict[str, str], clock: FakeClock
) -> None:
    register_job(api, "job-1", CLIENT)
    policy = api.put("/jobs/job-1/policy", json={"exclusive_hours": 24}, headers=client)
    assert policy.status_code == 200, policy.text
    iid = invite(api, client)["id"]
    api.post(f"/interviews/{iid}/accept", headers=freelancer)
    assert api.post(f"/interviews/{iid}/start", headers=freelancer).status_code == 200

    clock.advance(hours=1)
    refused = api.post(
        "/interviews", json={"job_id": "job-1", "freelancer_id": "freelancer-2"}, headers=client
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "exclusive_window"
    assert int(refused.headers["Retry-After"]) == 23 * 3600 + 1
    other_job = invite(api, client, "freelancer-2", job_id="job-other")["id"]  # other jobs are free
    assert other_job

    clock.advance(hours=23)
    assert invite(api, client, "freelancer-2")["id"]


def test_the_first_invitation_can_set_the_exclusive_window(
    api: TestClient, client: dict[str, str], freelancer: dict[str, str], clock: FakeClock
) -> None:
    iid = invite(api, client, job_id="job-6", exclusive_hours=2)["id"]
    api.post(f"/interviews/{iid}/accept", headers=freelancer)
    api.post(f"/interviews/{iid}/start", headers=client)
    refused = api.post(
        "/interviews", json={"job_id": "job-6", "freelancer_id": "freelancer-2"}, headers=client
    )
    assert refused.status_code == 409
    assert refused.headers["Retry-After"] == str(2 * 3600 + 1)
    clock.advance(hours=2)
    assert invite(api, client, "freelancer-2", job_id="job-6")["id"]


def window_violations(app: InterviewsApplication, job_id: str) -> list[str]:
    """Invitations the job recorded while one of its exclusive windows ran."""
    window_until: datetime | None = None
    found = []
    for event in app.events.get(Job.id_for(job_id)):
        if isinstance(event, Job.ExclusiveWindowOpened):
            window_until = event.ends_at
        elif (
            isinstance(event, Job.CandidateInvited)
            and window_until is not None
            and event.timestamp < window_until
        ):
            found.append(event.freelancer_id)
    return found


def race_start_against_invite(
    starter: InterviewsApplication,
    inviter: InterviewsApplication,
    job: str,
    interview_id: UUID,
    now: datetime,
) -> dict[str, Any]:
    """Starts ``interview_id`` and invites freelancer-b to ``job`` at the same moment."""
    barrier = threading.Barrier(2)
    results: dict[str, Any] = {}

    def start() -> None:
        barrier.wait()
        results["start"] = starter.start(as_party(CLIENT, "client", now), interview_id).status

    def invite_b() -> None:
        barrier.wait()
        try:
            invited = inviter.invite(
                as_party(CLIENT, "client", now), job_id=job, freelancer_id="freelancer-b"
            )
            results["invite"] = "invited"
            results["invited_at_position"] = invited.position
        except ExclusiveWindowError:
            results["invite"] = "refused"

    threads = [threading.Thread(target=start), threading.Thread(target=invite_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_an_invitation_racing_the_start_of_another_interview_never_breaks_the_window(
    clock: FakeClock,
    interviews_container: InterviewsContainer,
    other_container: InterviewsContainer,
) -> None:
    """Rounds of: start interview A on one thread while inviting freelancer B to
    the same job on another (half the rounds through a second application, as a
    second process would). Either the invitation is first and the window opens
    after it, or the window is first and the invitation is refused; never an
    invitation inside a window."""
    here = interviews_container.interviews()
    outcomes = []
    for round_ in range(12):
        job = f"job-race-{round_}"
        there = other_container.interviews() if round_ % 2 else here
        now = clock.now
        ensure_job(here, job, CLIENT, now)
        a = here.invite(
            as_party(CLIENT, "client", now),
            job_id=job,
            freelancer_id="freelancer-a",
            exclusive_hours=24,
        ).id
        here.accept(as_party("freelancer-a", "freelancer", now), a)

        results = race_start_against_invite(here, there, job, a, now)

        assert results["start"] == "in_progress"
        assert window_violations(here, job) == []
        job_events = [type(e).__name__ for e in here.events.get(Job.id_for(job))]
        if results["invite"] == "invited":
            # In the store's global order too, the invitation came before the window.
            job_aggregate = here.repository.get(Job.id_for(job))
            window_at = here.position_of(job_aggregate.id, job_aggregate.version)
            assert window_at is not None
            assert results["invited_at_position"] < window_at
            assert job_events[-2:] == ["CandidateInvited", "ExclusiveWindowOpened"]
        else:
            assert results["invite"] == "refused"
            assert job_events[-1] == "ExclusiveWindowOpened"
            assert job_events.count("CandidateInvited") == 1
        outcomes.append(results["invite"])
        with pytest.raises(ExclusiveWindowError):  # and afterwards it holds for everyone
            there.invite(as_party(CLIENT, "client", now), job_id=job, freelancer_id="freelancer-c")
    print("invitation vs start outcomes:", outcomes)
