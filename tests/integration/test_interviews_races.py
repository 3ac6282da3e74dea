"""Racing commands on the application itself, on SQLite and on PostgreSQL:
the losers get the domain's answer, streams stay contiguous, nothing doubles."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

import pytest

from services.interviews.application import MAX_ATTEMPTS, CommandResult, InterviewsApplication
from services.interviews.bootstrap import InterviewsContainer
from services.interviews.domain import (
    Actor,
    CommandContext,
    DomainError,
    DuplicateOpenInterviewError,
    Interview,
    Job,
    TransitionNotAllowedError,
)
from tests.conftest import FakeClock
from tests.jobs import ensure_job

pytestmark = pytest.mark.integration

RACERS = 50
T = TypeVar("T")
CLIENT = Actor("client-1", "client")
FREELANCER = Actor("freelancer-1", "freelancer")


@pytest.fixture
def app(interviews_container: InterviewsContainer) -> InterviewsApplication:
    app = interviews_container.interviews()
    for job_id in ("job-1", "bulk-job"):
        ensure_job(app, job_id, CLIENT.id)
    return app


def ctx(actor: Actor, clock: FakeClock, request: str = "req") -> CommandContext:
    return CommandContext(actor=actor, at=clock(), correlation_id=request, causation_id=request)


def race(n: int, attempt: Callable[[int], T]) -> list[T | BaseException]:
    """Runs ``attempt(i)`` on ``n`` threads released at the same instant."""
    gate = threading.Barrier(n)

    def run(i: int) -> T | BaseException:
        gate.wait()
        try:
            return attempt(i)
        except Exception as error:  # the outcome is what we assert on
            return error

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def outcomes(results: list[Any]) -> Counter[str]:
    return Counter(type(r).__name__ for r in results)


def versions(app: InterviewsApplication, interview_id: UUID) -> list[int]:
    return [e.originator_version for e in app.interview_events(interview_id)]


def interview_notifications(app: InterviewsApplication) -> list[Interview.Event]:
    return [event for _, event in app.iter_interview_notifications(after=0, limit=10_000)]


def test_fifty_identical_accepts_make_one_acceptance(
    app: InterviewsApplication, clock: FakeClock
) -> None:
    iid = app.invite(ctx(CLIENT, clock), job_id="job-1", freelancer_id=FREELANCER.id).id

    results = race(RACERS, lambda i: app.accept(ctx(FREELANCER, clock, f"req-{i}"), iid))

    assert outcomes(results) == {"CommandResult": 1, "TransitionNotAllowedError": RACERS - 1}
    refusals = [r for r in results if isinstance(r, TransitionNotAllowedError)]
    assert all(r.state == "accepted" and r.action == "accept" for r in refusals)
    [winner] = [r for r in results if isinstance(r, CommandResult)]
    assert (winner.status, winner.version) == ("accepted", 2)
    assert versions(app, iid) == [1, 2]
    assert app.get_interview(iid).status == "accepted"


def test_racing_different_commands_keep_the_stream_contiguous(
    app: InterviewsApplication, clock: FakeClock
) -> None:
    iid = app.invite(ctx(CLIENT, clock), job_id="job-1", freelancer_id=FREELANCER.id).id
    app.accept(ctx(FREELANCER, clock), iid)
    app.start(ctx(CLIENT, clock), iid)

    def attempt(i: int) -> CommandResult:
        if i % 2:
            return app.cancel(ctx(FREELANCER, clock, f"c{i}"), iid, reason=f"cancel {i}")
        return app.extend_offer(
            ctx(CLIENT, clock, f"o{i}"),
            iid,
            amount=Decimal(100 + i),
            currency="EUR",
            rate_type="fixed",
        )

    results = race(20, attempt)

    successes = [r for r in results if isinstance(r, CommandResult)]
    assert successes, outcomes(results)
    assert all(isinstance(r, CommandResult | TransitionNotAllowedError) for r in results), outcomes(
        results
    )
    history = versions(app, iid)
    assert history == list(range(1, len(history) + 1))
    assert len(history) == 3 + len(successes)
    positions = sorted(r.position for r in successes)
    assert len(set(positions)) == len(positions)


def test_fifty_invitations_of_one_freelancer_to_one_job_make_one_interview(
    app: InterviewsApplication, clock: FakeClock
) -> None:
    results = race(
        RACERS,
        lambda i: app.invite(
            ctx(CLIENT, clock, f"req-{i}"), job_id="job-1", freelancer_id=FREELANCER.id
        ),
    )

    assert outcomes(results) == {"CommandResult": 1, "DuplicateOpenInterviewError": RACERS - 1}
    [winner] = [r for r in results if isinstance(r, CommandResult)]
    assert all(
        str(winner.id) in r.detail for r in results if isinstance(r, DuplicateOpenInterviewError)
    )
    invited = [e for e in interview_notifications(app) if isinstance(e, Interview.Invited)]
    assert [e.originator_id for e in invited] == [winner.id]
    job = app.repository.get(Job.id_for("job-1"))
    assert job.candidates == {FREELANCER.id: winner.id}
    assert job.version == 2  # registered, one candidate


def test_racing_invitations_of_different_freelancers_all_succeed(
    app: InterviewsApplication, clock: FakeClock
) -> None:
    # Each loser re-decides on fresh state; with at most MAX_ATTEMPTS racers on
    # one job every one of them gets through (beyond that, some get a 409 conflict).
    racers = MAX_ATTEMPTS
    results = race(
        racers,
        lambda i: app.invite(
            ctx(CLIENT, clock, f"req-{i}"), job_id="job-1", freelancer_id=f"f-{i}"
        ),
    )

    assert outcomes(results) == {"CommandResult": racers}
    job = app.repository.get(Job.id_for("job-1"))
    assert sorted(job.candidates) == sorted(f"f-{i}" for i in range(racers))
    assert job.version == racers + 1


def test_concurrent_retries_with_one_idempotency_key_record_one_event(
    app: InterviewsApplication, clock: FakeClock
) -> None:
    iid = app.invite(ctx(CLIENT, clock), job_id="job-1", freelancer_id=FREELANCER.id).id
    before = app.max_position()

    results = race(
        RACERS,
        lambda i: app.accept(
            ctx(FREELANCER, clock, f"retry-{i}"), iid, idempotency_key="accept-once"
        ),
    )

    assert outcomes(results) == {"CommandResult": RACERS}
    answers = {(r.id, r.status, r.version, r.position) for r in results}  # type: ignore[union-attr]
    assert len(answers) == 1
    assert sum(not r.replayed for r in results) == 1  # type: ignore[union-attr]
    assert versions(app, iid) == [1, 2]
    # One Accepted event plus the idempotency record, nothing else. (Count them:
    # on PostgreSQL the losers' rolled-back inserts leave gaps in the positions.)
    recorded = app.recorder.select_notifications(start=before, limit=1000, inclusive_of_start=False)
    assert [n.topic.rsplit(".", 1)[-1] for n in recorded] == ["Accepted", "Recorded"]


def test_concurrent_retried_invitations_create_one_interview(
    app: InterviewsApplication, clock: FakeClock
) -> None:
    results = race(
        20,
        lambda i: app.invite(
            ctx(CLIENT, clock, f"retry-{i}"),
            job_id="job-1",
            freelancer_id=FREELANCER.id,
            idempotency_key="invite-once",
        ),
    )

    assert outcomes(results) == {"CommandResult": 20}
    assert len({r.id for r in results}) == 1  # type: ignore[union-attr]
    assert len([e for e in interview_notifications(app) if isinstance(e, Interview.Invited)]) == 1


def test_many_freelancers_invited_to_one_job_at_once_all_get_their_interview(
    app: InterviewsApplication, clock: FakeClock
) -> None:
    results = race(
        40,
        lambda i: app.invite(ctx(CLIENT, clock), job_id="bulk-job", freelancer_id=f"free-{i}"),
    )

    assert all(isinstance(r, CommandResult) for r in results), outcomes(results)
    job = app.repository.get(Job.id_for("bulk-job"))
    assert len(job.candidates) == 40


def test_closing_a_job_while_invitations_and_answers_race_leaves_nothing_open(
    app: InterviewsApplication, clock: FakeClock
) -> None:
    """Every interview of a closed job ends final: an invitation either lands
    before the closing (and is cancelled by it) or is refused ``job_closed``;
    an answer racing the closing is either cancelled with it or refused."""
    early = [
        app.invite(ctx(CLIENT, clock), job_id="job-1", freelancer_id=f"early-{i}").id
        for i in range(10)
    ]

    def attempt(i: int) -> object:
        if i == 0:
            return app.close_job(ctx(CLIENT, clock, "close"), "job-1", "filled")
        if i % 2:
            freelancer = Actor(f"early-{i % 10}", "freelancer")
            return app.accept(ctx(freelancer, clock, f"a{i}"), early[i % 10])
        return app.invite(ctx(CLIENT, clock, f"i{i}"), job_id="job-1", freelancer_id=f"late-{i}")

    results = race(20, attempt)

    unexpected = [r for r in results if isinstance(r, Exception) and not isinstance(r, DomainError)]
    assert not unexpected, outcomes(results)
    job = app.repository.get(Job.id_for("job-1"))
    assert job.status == "closed"
    statuses = {f: app.get_interview(i).status for f, i in job.candidates.items()}
    assert set(statuses.values()) == {"cancelled"}, statuses
    for iid in job.candidates.values():
        [*_, last] = app.interview_events(iid)
        assert isinstance(last, Interview.Cancelled) and last.job_closed
    refused = [r for r in results if isinstance(r, DomainError)]
    assert {r.code for r in refused} <= {"job_closed", "transition_not_allowed"}
