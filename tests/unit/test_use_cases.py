"""The interview use cases on eventsourcing's in-memory infrastructure (POPO): no
database file, no network, milliseconds a test. The application gets its
collaborators as the bootstrap gives them, with an in-memory position lookup in
place of the SQL audit store and a committer that lets a rival command in first."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import ApplicationRecorder, Recording
from fastapi import Response

from services.common.web import ApiError
from services.interviews.adapters.group_commit import GroupCommitter
from services.interviews.application import (
    CommandResult,
    IdempotencyKeyReusedError,
    InterviewsApplication,
    RecordBatch,
    VersionMismatchError,
)
from services.interviews.domain import (
    Actor,
    CommandContext,
    DuplicateOpenInterviewError,
    Job,
    TransitionNotAllowedError,
)
from services.interviews.entrypoints.api import run_command
from services.interviews.use_cases.core import private_copy
from tests.conftest import FakeClock
from tests.jobs import ensure_job

CLIENT = Actor("client-1", "client")
FREELANCER = Actor("freelancer-1", "freelancer")
JOB = "job-1"


class LogPositions:
    """``position_of`` read from the recorder's notification log (the SQL
    ``AuditStore`` asks the table; the in-memory store has no table)."""

    def __init__(self, recorder: ApplicationRecorder) -> None:
        self.recorder = recorder

    def position_of(self, interview_id: UUID, version: int) -> int | None:
        for n in self.recorder.select_notifications(start=1, limit=1_000_000):
            if n.originator_id == interview_id and n.originator_version == version:
                return n.id
        return None


class RivalFirstCommitter:
    """The real ``GroupCommitter``, except that a rival command queued with
    ``before_next_commit`` commits first: the command being committed then holds
    stale versions, as the loser of a race between two requests does."""

    def __init__(self, record: RecordBatch) -> None:
        self.inner = GroupCommitter(record)
        self.rivals: list[Callable[[], object]] = []
        self.commits = 0

    def before_next_commit(self, rival: Callable[[], object]) -> None:
        self.rivals.append(rival)

    def commit(self, aggregates: Sequence[Any]) -> list[Recording[Any]]:
        if self.rivals:
            self.rivals.pop(0)()  # commits through this committer, rivals now empty
        self.commits += 1
        return self.inner.commit(aggregates)

    @property
    def batches(self) -> int:
        return self.inner.batches

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def app(clock: FakeClock) -> Iterator[InterviewsApplication]:
    app = InterviewsApplication(
        {"PERSISTENCE_MODULE": "eventsourcing.popo"},
        audit_store=LogPositions,
        committer=RivalFirstCommitter,
        clock=clock,
    )
    ensure_job(app, JOB, CLIENT.id, at=clock())
    yield app
    app.close()


def ctx(actor: Actor, clock: FakeClock, request: str = "req") -> CommandContext:
    return CommandContext(actor=actor, at=clock(), correlation_id=request, causation_id=request)


def invite(app: InterviewsApplication, clock: FakeClock, **opts: Any) -> CommandResult:
    return app.invite(ctx(CLIENT, clock), job_id=JOB, freelancer_id=FREELANCER.id, **opts)


def kinds(app: InterviewsApplication, interview_id: UUID) -> list[str]:
    return [type(e).__name__ for e in app.interview_events(interview_id)]


def rival_committer(app: InterviewsApplication) -> RivalFirstCommitter:
    assert isinstance(app.committer, RivalFirstCommitter)
    return app.committer


def test_the_store_is_in_memory(app: InterviewsApplication) -> None:
    assert type(app.recorder).__module__ == "eventsourcing.popo"


def test_an_invitation_records_invited_and_answers_with_its_position(
    app: InterviewsApplication, clock: FakeClock
) -> None:
    result = invite(app, clock, message="Let's talk")

    assert (result.status, result.version, result.replayed) == ("invited", 1, False)
    assert kinds(app, result.id) == ["Invited"]
    assert result.position == app.max_position()
    assert app.get_interview(result.id).freelancer_id == FREELANCER.id


def test_the_invited_freelancer_accepts(app: InterviewsApplication, clock: FakeClock) -> None:
    iid = invite(app, clock).id

    result = app.accept(ctx(FREELANCER, clock), iid)

    assert (result.status, result.version) == ("accepted", 2)
    assert kinds(app, iid) == ["Invited", "Accepted"]
    assert result.position == app.max_position()


def test_a_repeated_idempotency_key_returns_the_first_answer_and_records_nothing(
    app: InterviewsApplication, clock: FakeClock
) -> None:
    first = invite(app, clock, idempotency_key="k-1")
    before = app.max_position()

    again = invite(app, clock, idempotency_key="k-1")

    assert again.replayed
    assert (again.id, again.status, again.version, again.position) == (
        first.id,
        first.status,
        first.version,
        first.position,
    )
    assert app.max_position() == before


def test_an_idempotency_key_reused_for_another_request_is_refused(
    app: InterviewsApplication, clock: FakeClock
) -> None:
    invite(app, clock, idempotency_key="k-1")
    before = app.max_position()

    with pytest.raises(IdempotencyKeyReusedError):
        invite(app, clock, idempotency_key="k-1", message="a different request")

    assert app.max_position() == before


def test_if_match_with_a_stale_version_changes_nothing_and_the_api_answers_412(
    app: InterviewsApplication, clock: FakeClock
) -> None:
    iid = invite(app, clock).id

    with pytest.raises(VersionMismatchError) as refused:
        app.accept(ctx(FREELANCER, clock), iid, expected_version=2)
    with pytest.raises(ApiError) as answered:
        run_command(Response(), lambda: app.accept(ctx(FREELANCER, clock), iid, expected_version=2))

    assert (refused.value.expected, refused.value.actual) == (2, 1)
    assert (answered.value.status, answered.value.code) == (412, "version_mismatch")
    assert answered.value.headers["ETag"] == '"1"'
    assert kinds(app, iid) == ["Invited"]


def test_if_match_with_the_current_version_goes_through(
    app: InterviewsApplication, clock: FakeClock
) -> None:
    iid = invite(app, clock).id

    assert app.accept(ctx(FREELANCER, clock), iid, expected_version=1).version == 2


def test_a_second_open_interview_for_the_same_job_and_freelancer_is_refused(
    app: InterviewsApplication, clock: FakeClock
) -> None:
    first = invite(app, clock).id
    before = app.max_position()

    with pytest.raises(DuplicateOpenInterviewError):
        invite(app, clock)

    assert app.max_position() == before
    assert app.get_interview(first).status == "invited"


def test_a_command_that_lost_a_race_is_decided_again_on_fresh_state(
    app: InterviewsApplication, clock: FakeClock
) -> None:
    iid = invite(app, clock).id
    app.accept(ctx(FREELANCER, clock), iid)
    committer = rival_committer(app)
    committer.before_next_commit(lambda: app.start(ctx(FREELANCER, clock, "rival"), iid))
    commits_before = committer.commits

    offer = app.extend_offer(
        ctx(CLIENT, clock), iid, amount=Decimal("500"), currency="EUR", rate_type="fixed"
    )

    # The rival's commit, the offer's refused one, the offer's second decision.
    assert committer.commits - commits_before == 3
    assert (offer.status, offer.version) == ("offer_extended", 4)
    assert kinds(app, iid) == ["Invited", "Accepted", "InterviewStarted", "OfferExtended"]
    # Decided on the started interview, not on the accepted one it first read.
    assert app.get_interview(iid).status_before_offer == "in_progress"


def test_a_lost_race_decided_again_gets_the_domains_refusal(
    app: InterviewsApplication, clock: FakeClock
) -> None:
    iid = invite(app, clock).id
    rival_committer(app).before_next_commit(
        lambda: app.cancel(ctx(CLIENT, clock, "rival"), iid, reason="filled")
    )

    with pytest.raises(TransitionNotAllowedError) as refused:
        app.accept(ctx(FREELANCER, clock), iid)

    assert refused.value.state == "cancelled"
    assert kinds(app, iid) == ["Invited", "Cancelled"]


def test_a_private_copy_is_a_deep_copy_whose_changes_stay_its_own(
    app: InterviewsApplication, clock: FakeClock
) -> None:
    iid = invite(app, clock, message="shall we talk?").id
    interview = app.get_interview(iid)
    job = app.repository.cache.get(Job.id_for(JOB))  # type: ignore[union-attr]

    copies = [private_copy(interview), private_copy(job)]
    copies[0].accept(ctx(FREELANCER, clock))
    copies[1].candidates["freelancer-2"] = uuid4()

    assert [vars(c) for c in map(private_copy, (interview, job))] == [
        vars(copy.deepcopy(a)) for a in (interview, job)
    ]
    assert (copies[0].status, len(copies[0].pending_events)) == ("accepted", 1)
    assert (interview.status, interview.pending_events) == ("invited", [])
    assert "freelancer-2" not in job.candidates
