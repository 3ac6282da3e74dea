"""The job use cases: create or register a job, set its exclusive window, close it
(cancelling its open interviews in the same transaction), and read it back."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid5

from ...common.randomness import random_uuid
from ..domain import CommandContext, Interview, Job, JobNotFoundError, NotAllowedError
from ..domain.job import check_can_register
from ..personal_data import sealing
from .core import ApplicationCore
from .errors import IdempotencyKeyReusedError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobPolicy:
    job_id: str
    client_id: str
    exclusive_hours: int | None
    version: int


@dataclass(frozen=True)
class JobView:
    """A job as the API shows it."""

    job_id: str
    client_id: str
    title: str | None
    status: str
    exclusive_hours: int | None
    version: int

    @classmethod
    def of(cls, job: Job) -> JobView:
        return cls(
            job.job_id, job.client_id, job.title, job.status, job.exclusive_hours, job.version
        )


@dataclass(frozen=True)
class JobClosing:
    """What closing a job did: the job, the interviews it cancelled, and the global
    position of the last event recorded (None when the job was already closed)."""

    job: JobView
    cancelled: list[UUID]
    position: int | None


# A client's Idempotency-Key on POST /jobs names the job it creates, so a retry
# finds the job instead of creating another.
JOB_ID_NAMESPACE = UUID("2f0b7c1e-6a7d-4d0e-8a43-5b1f3c9e2d10")


class JobCommands(ApplicationCore):
    """The commands and queries on jobs."""

    def set_job_policy(
        self, ctx: CommandContext, job_id: str, exclusive_hours: int | None
    ) -> JobPolicy:
        """The job's client sets its exclusive window: how many hours after an interview
        starts no new invitation is taken (None: no window)."""
        if ctx.actor.role != "client":
            raise NotAllowedError("only the job's client sets its policy")

        def decide(_: bool) -> tuple[list[Any], JobPolicy]:
            job = self._get_job(job_id)
            if job is None:
                raise JobNotFoundError(f"job {job_id!r} not found")
            job.set_policy(ctx.actor, ctx.at, exclusive_hours)
            return [job], JobPolicy(job.job_id, job.client_id, job.exclusive_hours, job.version)

        with self._job_locks.hold(job_id):
            return self._until_committed(decide)[0]

    def create_job(
        self,
        ctx: CommandContext,
        title: str,
        exclusive_hours: int | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[JobView, bool]:
        """A client creates a job of their own, with a fresh id. With an
        ``idempotency_key`` the id is derived from the client and the key, so a
        retry answers with the job the first attempt created (``False``: not new)."""
        if ctx.actor.role != "client":
            raise NotAllowedError("only a client can create a job")
        if idempotency_key is None:
            job_id = str(random_uuid())
        else:
            job_id = str(uuid5(JOB_ID_NAMESPACE, f"{ctx.actor.id}\x00{idempotency_key}"))

        def decide(first_attempt: bool) -> tuple[list[Any], tuple[JobView, bool]]:
            # A new id first: a job the cache does not hold is created without a
            # query, and if it did exist the store refuses the creation.
            existing = self._get_job(job_id, assume_new=first_attempt)
            if existing is not None:
                if (existing.client_id, existing.title) != (ctx.actor.id, title):
                    raise IdempotencyKeyReusedError
                return [], (JobView.of(existing), False)
            job = Job.create(job_id, ctx.actor, ctx.at, title, exclusive_hours)
            return [job], (JobView.of(job), True)

        with self._job_locks.hold(job_id):
            return self._until_committed(decide)[0]

    def register_job(
        self, ctx: CommandContext, job_id: str, client_id: str, title: str | None = None
    ) -> tuple[JobView, bool]:
        """The marketplace's job service (or an admin) registers an external job
        id and its owner. Registering it again for the same owner changes nothing
        (``False``: not new); for another owner it is refused."""
        check_can_register(ctx.actor)

        def decide(first_attempt: bool) -> tuple[list[Any], tuple[JobView, bool]]:
            # Mostly a new id: as in ``create_job``.
            existing = self._get_job(job_id, assume_new=first_attempt)
            if existing is not None:
                existing.check_registered_to(client_id)
                return [], (JobView.of(existing), False)
            job = Job.register(job_id, client_id, ctx.actor, ctx.at, title)
            return [job], (JobView.of(job), True)

        with self._job_locks.hold(job_id):
            return self._until_committed(decide)[0]

    def close_job(self, ctx: CommandContext, job_id: str, reason: str | None = None) -> JobClosing:
        """The job's client closes it: every open interview of the job is
        cancelled ("job closed", ``job_closed``) and the job records ``Closed``.

        All of it is one unit of the group committer, so one database
        transaction: the cancellations and ``Closed`` are recorded together or
        not at all, and a crash can never leave a half-closed job (some
        interviews cancelled, the job still open, or the other way round).
        A version conflict (a party acted on one of the interviews meanwhile,
        or an invitation raced the closing) records nothing, and the whole
        decision is taken again on fresh state. Closing a closed job changes
        nothing, so a client may safely retry."""
        if ctx.actor.role != "client":
            raise NotAllowedError("only the job's client closes it")
        ctx = sealing(ctx, self.keys)  # the close reason, and "job closed" on each cancel

        def decide(_: bool) -> tuple[list[Any], tuple[JobView, list[UUID]]]:
            job = self._get_job(job_id)
            if job is None:
                raise JobNotFoundError(f"job {job_id!r} not found")
            job.check_owner(ctx.actor)
            candidates = [] if job.is_closed else self._candidates(job)
            cancelled = job.close(ctx, candidates, reason)
            return [job, *cancelled], (JobView.of(job), [i.id for i in cancelled])

        with self._job_locks.hold(job_id):
            (view, cancelled), recordings = self._until_committed(decide)
        # Of the interviews' events: what a view can be asked to have applied.
        position = max(
            (r.notification.id for r in recordings if r.domain_event.originator_id in cancelled),
            default=None,
        )
        if cancelled:
            log.info(
                "job %s closed by %s: %d interviews cancelled",
                job_id,
                ctx.actor.id,
                len(cancelled),
                extra={"correlation_id": ctx.correlation_id},
            )
        return JobClosing(view, cancelled, position)

    def _candidates(self, job: Job) -> list[Interview]:
        """Each freelancer's latest interview for the job: the only one that can
        be open (a new invitation needs the previous one to be final)."""
        return [self._get_interview(i) for i in job.candidates.values()]

    # ------------------------------------------------------------------ queries

    def get_job(self, job_id: str) -> JobView | None:
        job = self._get_job(job_id)
        return JobView.of(job) if job is not None else None

    def get_job_policy(self, job_id: str) -> JobPolicy | None:
        job = self._get_job(job_id)
        if job is None:
            return None
        return JobPolicy(job.job_id, job.client_id, job.exclusive_hours, job.version)
