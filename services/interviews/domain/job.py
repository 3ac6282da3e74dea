"""The Job aggregate: who owns a job, whether it is open, its policy, its candidates.

A job exists before anyone is invited to it: a client creates one
(:meth:`Job.create`), or the marketplace's job service registers an external
job id and its owner (:meth:`Job.register`). Nobody owns a job by touching its
id first. Jobs registered by the first invitation before that rule keep their
recorded owner (``Registered`` version 1, upcast with no title).

Every invitation for a job is recorded here as well as on the new interview,
in the same transaction, so two racing invitations (or an invitation racing
the start of an interview that opens the exclusive window, or the job's
closing) conflict on this aggregate's version and cannot both pass their checks.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, ClassVar
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from . import bounds
from .errors import (
    AlreadyHiredError,
    DuplicateOpenInterviewError,
    ExclusiveWindowError,
    InvalidCommandError,
    JobClosedError,
    JobNotFoundError,
    JobOwnerConflictError,
    NotAllowedError,
)
from .interview import HIRED, Actor, CommandContext, Interview, PersonalText

JOB_NAMESPACE = UUID("6f1c6c55-3b53-4a8e-9f0e-52a1a1d0b7a1")
MAX_EXCLUSIVE_HOURS = 24 * 90
OPEN = "open"
CLOSED = "closed"
JOB_CLOSED_REASON = "job closed"
# Who may register a job for a client: the marketplace's job service, or an admin.
REGISTRARS = ("service", "admin")


class Job(Aggregate):
    """A client's job: the owner, open or closed, the exclusive-window policy,
    the candidates (each freelancer's latest interview for it)."""

    class Registered(Aggregate.Created):
        """Version 2 added ``title`` (None for jobs the first invitation registered)."""

        class_version: ClassVar[int] = 2

        job_id: str
        client_id: str
        exclusive_hours: int | None
        title: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["title"] = None

    class PolicyChanged(Aggregate.Event):
        exclusive_hours: int | None

        def apply(self, aggregate: Job) -> None:
            aggregate.exclusive_hours = self.exclusive_hours

    class CandidateInvited(Aggregate.Event):
        freelancer_id: str
        interview_id: UUID

        def apply(self, aggregate: Job) -> None:
            aggregate.candidates[self.freelancer_id] = self.interview_id

    class ExclusiveWindowOpened(Aggregate.Event):
        interview_id: UUID
        ends_at: datetime

        def apply(self, aggregate: Job) -> None:
            aggregate.exclusive_until = self.ends_at
            aggregate.exclusive_interview = self.interview_id

    class Closed(Aggregate.Event):
        reason: PersonalText | None
        closed_by: str

        def apply(self, aggregate: Job) -> None:
            aggregate.status = CLOSED
            aggregate.closed_reason = self.reason
            aggregate.closed_at = self.timestamp

    def __init__(
        self, job_id: str, client_id: str, exclusive_hours: int | None, title: str | None
    ) -> None:
        self.job_id = job_id
        self.client_id = client_id
        self.title = title
        self.exclusive_hours = exclusive_hours
        self.status = OPEN
        self.closed_reason: PersonalText | None = None
        self.closed_at: datetime | None = None
        self.candidates: dict[str, UUID] = {}
        self.exclusive_until: datetime | None = None
        self.exclusive_interview: UUID | None = None

    @staticmethod
    def id_for(job_id: str) -> UUID:
        return uuid5(JOB_NAMESPACE, job_id)

    @classmethod
    def create(
        cls,
        job_id: str,
        owner: Actor,
        at: datetime,
        title: str | None,
        exclusive_hours: int | None = None,
    ) -> Job:
        """A client creates a job of their own (the caller chose a fresh id)."""
        if owner.role != "client":
            raise NotAllowedError("only a client can create a job")
        _check_exclusive_hours(exclusive_hours)
        return cls._new(job_id, owner.id, at, title, exclusive_hours)

    @classmethod
    def register(
        cls, job_id: str, client_id: str, by: Actor, at: datetime, title: str | None = None
    ) -> Job:
        """The marketplace's job service (or an admin) registers an external job
        id and the client who owns it."""
        check_can_register(by)
        return cls._new(job_id, client_id, at, title, None)

    @classmethod
    def _new(
        cls,
        job_id: str,
        client_id: str,
        at: datetime,
        title: str | None,
        exclusive_hours: int | None,
    ) -> Job:
        return cls._create(
            cls.Registered,
            id=cls.id_for(job_id),
            timestamp=at,
            job_id=job_id,
            client_id=client_id,
            exclusive_hours=exclusive_hours,
            title=title,
        )

    @property
    def is_closed(self) -> bool:
        return self.status == CLOSED

    def check_registered_to(self, client_id: str) -> None:
        """Registering a job again for its owner changes nothing; for another is refused."""
        if client_id != self.client_id:
            raise JobOwnerConflictError(f"job {self.job_id!r} is registered to another client")

    def check_owner(self, actor: Actor) -> None:
        """Only the owner acts on a job. Only clients own jobs, so any other role
        is refused outright; to another client the job does not exist, so a job
        id cannot be probed."""
        if actor.role != "client":
            raise NotAllowedError("only the job's client can act on a job")
        if actor.id != self.client_id:
            raise JobNotFoundError(f"job {self.job_id!r} not found")

    def set_policy(self, actor: Actor, at: datetime, exclusive_hours: int | None) -> None:
        self.check_owner(actor)
        _check_exclusive_hours(exclusive_hours)
        if exclusive_hours != self.exclusive_hours:
            self.trigger_event(self.PolicyChanged, timestamp=at, exclusive_hours=exclusive_hours)

    def check_can_invite(self, at: datetime, previous: Interview | None = None) -> None:
        """``previous`` is the invited freelancer's latest interview for this job, if any."""
        if self.is_closed:
            raise JobClosedError(f"job {self.job_id!r} is closed: nobody is invited to it")
        if previous is not None and previous.status == HIRED:
            raise AlreadyHiredError(
                f"freelancer {previous.freelancer_id!r} was already hired for job {self.job_id!r} "
                f"(interview {previous.id})"
            )
        if self.exclusive_until is not None and at < self.exclusive_until:
            raise ExclusiveWindowError(
                f"job {self.job_id!r} is in an exclusive window with another candidate "
                f"until {self.exclusive_until.isoformat()}",
                ends_at=self.exclusive_until,
            )
        if previous is not None and not previous.is_final:
            raise DuplicateOpenInterviewError(
                f"freelancer {previous.freelancer_id!r} already has an open interview "
                f"{previous.id} for job {self.job_id!r} (it is {previous.status})"
            )

    def close(
        self, ctx: CommandContext, candidates: Iterable[Interview], reason: str | None = None
    ) -> list[Interview]:
        """The owner closes the job: every open interview in ``candidates`` (the
        interviews of :attr:`candidates`) is cancelled with the reason "job
        closed" and ``job_closed``, and the job records ``Closed``. Returns the
        interviews it cancelled. Closing a closed job changes nothing."""
        self.check_owner(ctx.actor)
        bounds.check_text(reason, "reason", bounds.REASON_MAX_LENGTH)
        if self.is_closed:
            return []
        cancelled = []
        for interview in candidates:
            if interview.job_id != self.job_id:
                raise InvalidCommandError(f"interview {interview.id} is not of job {self.job_id!r}")
            if not interview.is_final:
                interview.cancel(ctx, JOB_CLOSED_REASON, job_closed=True)
                cancelled.append(interview)
        self.trigger_event(
            self.Closed, timestamp=ctx.at, reason=ctx.seal(reason), closed_by=ctx.actor.id
        )
        return cancelled

    def last_interview_with(self, freelancer_id: str) -> UUID | None:
        return self.candidates.get(freelancer_id)

    def record_invitation(self, freelancer_id: str, interview_id: UUID, at: datetime) -> None:
        self.trigger_event(
            self.CandidateInvited,
            timestamp=at,
            freelancer_id=freelancer_id,
            interview_id=interview_id,
        )

    def open_exclusive_window(self, interview_id: UUID, at: datetime) -> None:
        """An interview started: hold off other invitations for the policy's hours."""
        if not self.exclusive_hours:
            return
        self.trigger_event(
            self.ExclusiveWindowOpened,
            timestamp=at,
            interview_id=interview_id,
            ends_at=at + timedelta(hours=self.exclusive_hours),
        )


def check_can_register(by: Actor) -> None:
    if by.role not in REGISTRARS:
        raise NotAllowedError("only the marketplace's job service or an admin registers jobs")


def _check_exclusive_hours(hours: int | None) -> None:
    if hours is not None and not 0 <= hours <= MAX_EXCLUSIVE_HOURS:
        raise InvalidCommandError(f"exclusive_hours must be between 0 and {MAX_EXCLUSIVE_HOURS}")
