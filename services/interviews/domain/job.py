"""The Job aggregate: who owns a job, its policy, and its candidates.

Every invitation for a job is recorded here as well as on the new interview,
in the same transaction, so two racing invitations (or an invitation racing
the start of an interview that opens the exclusive window) conflict on this
aggregate's version and cannot both pass their checks.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from .errors import ExclusiveWindowError, InvalidCommandError, NotAllowedError
from .interview import Actor

JOB_NAMESPACE = UUID("6f1c6c55-3b53-4a8e-9f0e-52a1a1d0b7a1")
MAX_EXCLUSIVE_HOURS = 24 * 90


class Job(Aggregate):
    """A client's job: the owner, the exclusive-window policy, the candidates."""

    class Registered(Aggregate.Created):
        job_id: str
        client_id: str
        exclusive_hours: int | None

    class PolicyChanged(Aggregate.Event):
        exclusive_hours: int | None

        def apply(self, aggregate: Job) -> None:  # type: ignore[override]
            aggregate.exclusive_hours = self.exclusive_hours

    class CandidateInvited(Aggregate.Event):
        freelancer_id: str
        interview_id: UUID

        def apply(self, aggregate: Job) -> None:  # type: ignore[override]
            aggregate.candidates[self.freelancer_id] = self.interview_id

    class ExclusiveWindowOpened(Aggregate.Event):
        interview_id: UUID
        ends_at: datetime

        def apply(self, aggregate: Job) -> None:  # type: ignore[override]
            aggregate.exclusive_until = self.ends_at
            aggregate.exclusive_interview = self.interview_id

    def __init__(self, job_id: str, client_id: str, exclusive_hours: int | None) -> None:
        self.job_id = job_id
        self.client_id = client_id
        self.exclusive_hours = exclusive_hours
        self.candidates: dict[str, UUID] = {}
        self.exclusive_until: datetime | None = None
        self.exclusive_interview: UUID | None = None

    @staticmethod
    def id_for(job_id: str) -> UUID:
        return uuid5(JOB_NAMESPACE, job_id)

    @classmethod
    def register(
        cls, job_id: str, owner: Actor, at: datetime, exclusive_hours: int | None = None
    ) -> Job:
        """The first client to act on a job owns it."""
        if owner.role != "client":
            raise NotAllowedError("only a client can own a job")
        _check_exclusive_hours(exclusive_hours)
        return cls._create(
            cls.Registered,
            id=cls.id_for(job_id),
            timestamp=at,
            job_id=job_id,
            client_id=owner.id,
            exclusive_hours=exclusive_hours,
        )

    def check_owner(self, actor: Actor) -> None:
        if actor.role != "client" or actor.id != self.client_id:
            raise NotAllowedError(f"job {self.job_id!r} belongs to another client")

    def set_policy(self, actor: Actor, at: datetime, exclusive_hours: int | None) -> None:
        self.check_owner(actor)
        _check_exclusive_hours(exclusive_hours)
        if exclusive_hours != self.exclusive_hours:
            self.trigger_event(self.PolicyChanged, timestamp=at, exclusive_hours=exclusive_hours)

    def check_can_invite(self, at: datetime) -> None:
        if self.exclusive_until is not None and at < self.exclusive_until:
            raise ExclusiveWindowError(
                f"job {self.job_id!r} is in an exclusive window with another candidate "
                f"until {self.exclusive_until.isoformat()}",
                ends_at=self.exclusive_until,
            )

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


def _check_exclusive_hours(hours: int | None) -> None:
    if hours is not None and not 0 <= hours <= MAX_EXCLUSIVE_HOURS:
        raise InvalidCommandError(f"exclusive_hours must be between 0 and {MAX_EXCLUSIVE_HOURS}")
