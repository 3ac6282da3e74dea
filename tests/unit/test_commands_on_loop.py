"""A command run by ``execute_on_loop`` (the HTTP routes' way) answers what the
same command run in a thread answers: decided on cached state on the event loop,
its commit awaited; anything that would block there, a lost race and a refusal
on cached state continue in a thread on fresh state; a replayed key answers the
first answer. Run on eventsourcing's in-memory store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import pytest
from eventsourcing.persistence import Recording

from services.common.loop_threads import WouldBlockError, may_block, on_the_loop
from services.interviews.application import (
    CommandResult,
    InterviewsApplication,
    RecordBatch,
)
from services.interviews.domain import TransitionNotAllowedError
from tests.conftest import FakeClock
from tests.unit.test_use_cases import (
    CLIENT,
    FREELANCER,
    JOB,
    LogPositions,
    RivalFirstCommitter,
    ctx,
    invite,
    kinds,
)

pytestmark = pytest.mark.unit


class RivalFirstAsyncCommitter(RivalFirstCommitter):
    """``RivalFirstCommitter`` for commits awaited on the loop: a rival queued with
    ``before_next_commit`` is committed (in a thread, as another request would)
    just before the next awaited commit, which then holds stale versions; a
    commit from a thread goes straight through (counted)."""

    def __init__(self, record: RecordBatch) -> None:
        super().__init__(record)
        self.loop_commits = 0
        self.thread_commits = 0

    def commit(self, aggregates: Sequence[Any]) -> list[Recording[Any]]:
        self.thread_commits += 1
        return self.inner.commit(aggregates)

    async def commit_async(self, aggregates: Sequence[Any]) -> list[Recording[Any]]:
        if self.rivals:
            await asyncio.to_thread(self.rivals.pop(0))
        self.loop_commits += 1
        return await self.inner.commit_async(aggregates)


@pytest.fixture
def app(clock: FakeClock) -> Iterator[InterviewsApplication]:
    from tests.jobs import ensure_job

    app = InterviewsApplication(
        {"PERSISTENCE_MODULE": "eventsourcing.popo"},
        audit_store=LogPositions,
        committer=RivalFirstAsyncCommitter,
        clock=clock,
    )
    ensure_job(app, JOB, CLIENT.id, at=clock())
    yield app
    app.close()


def committer(app: InterviewsApplication) -> RivalFirstAsyncCommitter:
    assert isinstance(app.committer, RivalFirstAsyncCommitter)
    return app.committer


class Offload:
    """A thread for what cannot run on the loop, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, call: Callable[[], CommandResult]) -> CommandResult:
        self.calls += 1
        return await asyncio.to_thread(call)


def on_loop(
    app: InterviewsApplication, call: Callable[[], CommandResult], offload: Offload
) -> CommandResult:
    prepared = app.prepare(call)
    assert prepared is not None
    return asyncio.run(app.execute_on_loop(prepared, offload))


def test_a_command_on_cached_state_is_decided_and_committed_on_the_loop(
    app: InterviewsApplication, clock: FakeClock
) -> None:
    iid = invite(app, clock).id
    offload = Offload()

    result = on_loop(app, lambda: app.accept(ctx(FREELANCER, clock), iid), offload)

    assert (result.status, result.version, result.replayed) == ("accepted", 2, False)
    assert result.position == app.max_position()
    assert kinds(app, iid) == ["Invited", "Accepted"]
    assert offload.calls == 0 and committer(app).loop_commits == 1


def test_prepare_runs_nothing(app: InterviewsApplication, clock: FakeClock) -> None:
    iid = invite(app, clock).id
    before = app.max_position()

    prepared = app.prepare(lambda: app.accept(ctx(FREELANCER, clock), iid))

    assert prepared is not None and prepared.action == "accept"
    assert app.max_position() == before
    assert app.prepare(lambda: CommandResult(iid, "x", 1, 1)) is None  # no command in it


def test_a_command_that_would_query_runs_in_a_thread_from_the_start(
    app: InterviewsApplication, clock: FakeClock
) -> None:
    """``start`` reads the job fresh from the store (its policy): not on the loop."""
    iid = invite(app, clock).id
    app.accept(ctx(FREELANCER, clock), iid)
    offload = Offload()

    result = on_loop(app, lambda: app.start(ctx(CLIENT, clock), iid), offload)

    assert (result.status, result.version) == ("in_progress", 3)
    assert offload.calls == 1
    assert committer(app).loop_commits == 0  # nothing was committed from the loop
    assert kinds(app, iid) == ["Invited", "Accepted", "InterviewStarted"]


def test_a_lost_race_on_the_loop_is_decided_again_on_fresh_state_in_a_thread(
    app: InterviewsApplication, clock: FakeClock
) -> None:
    iid = invite(app, clock).id
    app.accept(ctx(FREELANCER, clock), iid)
    committer(app).before_next_commit(lambda: app.start(ctx(FREELANCER, clock, "rival"), iid))
    offload = Offload()

    offer = on_loop(
        app,
        lambda: app.extend_offer(
            ctx(CLIENT, clock), iid, amount=Decimal("500"), currency="EUR", rate_type="fixed"
        ),
        offload,
    )

    assert (offer.status, offer.version) == ("offer_extended", 4)
    assert offload.calls == 1
    assert kinds(app, iid) == ["Invited", "Accepted", "InterviewStarted", "OfferExtended"]
    # Decided on the started interview, not on the accepted one it first read.
    assert app.get_interview(iid).status_before_offer == "in_progress"


def test_a_lost_race_on_the_loop_gets_the_domains_refusal_on_fresh_state(
    app: InterviewsApplication, clock: FakeClock
) -> None:
    iid = invite(app, clock).id
    committer(app).before_next_commit(
        lambda: app.cancel(ctx(CLIENT, clock, "rival"), iid, reason="filled")
    )

    with pytest.raises(TransitionNotAllowedError) as refused:
        on_loop(app, lambda: app.accept(ctx(FREELANCER, clock), iid), Offload())

    assert refused.value.state == "cancelled"
    assert kinds(app, iid) == ["Invited", "Cancelled"]


def test_a_replayed_key_on_the_loop_answers_the_first_answer_and_records_nothing(
    app: InterviewsApplication, clock: FakeClock
) -> None:
    iid = invite(app, clock).id

    def accept() -> CommandResult:
        return app.accept(ctx(FREELANCER, clock), iid, idempotency_key="k-1")

    first = on_loop(app, accept, Offload())
    position = app.max_position()
    again = on_loop(app, accept, Offload())

    assert (first.version, first.replayed) == (2, False)
    assert (again.id, again.status, again.version, again.position) == (
        first.id,
        first.status,
        first.version,
        first.position,
    )
    assert again.replayed
    assert app.max_position() == position
    assert kinds(app, iid) == ["Invited", "Accepted"]


def test_an_invitation_waits_in_a_thread_while_its_jobs_lock_is_held(
    app: InterviewsApplication, clock: FakeClock
) -> None:
    """Invitations for one job run one at a time: on the loop the lock is only
    tried, and a held one sends the command to a thread that waits for it."""
    offload = Offload()
    app._job_locks.acquire(JOB)
    try:
        pending = app.prepare(
            lambda: app.invite(ctx(CLIENT, clock), job_id=JOB, freelancer_id=FREELANCER.id)
        )
        assert pending is not None

        async def run() -> CommandResult:
            task = asyncio.create_task(app.execute_on_loop(pending, offload))
            await asyncio.sleep(0.05)
            assert not task.done()  # waiting for the lock, in a thread
            app._job_locks.release(JOB)
            return await task

        result = asyncio.run(run())
    finally:
        if JOB in app._job_locks._locks:
            app._job_locks.release(JOB)
    assert (result.status, offload.calls) == ("invited", 1)


def test_may_block_refuses_only_on_the_loop_and_a_thread_may_block_again() -> None:
    may_block()
    with on_the_loop():
        with pytest.raises(WouldBlockError):
            may_block()

        async def offloaded() -> None:
            from services.common.loop_threads import LoopThreads

            threads = LoopThreads(1, "test")
            try:
                await threads.run(may_block)  # the thread's context allows it
            finally:
                threads.shutdown()

        asyncio.run(offloaded())
    may_block()
