"""Use cases of the interview service, on an ``eventsourcing`` Application.

Each command loads what it needs, asks the domain to decide, and commits all
new events (the interview's, the job's, the idempotency record's) in one
transaction through the group committer. A command that loses a race on a
version is run again on fresh state, so the loser gets the answer the domain
gives it then (usually 409), never a corrupted stream.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, TypeVar, cast
from uuid import UUID, uuid4, uuid5

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import (
    ApplicationRecorder,
    IntegrityError,
    JSONTranscoder,
    Recording,
)
from eventsourcing.utils import get_topic

from ..common.privacy import InMemoryKeys, KeyIssuer
from .adapters.transcodings import register_domain_transcodings
from .domain import (
    DEFAULT_DURATION_MINUTES,
    SYSTEM,
    CommandContext,
    DomainError,
    Interview,
    Job,
    JobNotFoundError,
    NotAllowedError,
    OfferTerms,
)
from .domain.interview import EVENT_TYPES, RateType
from .domain.job import check_can_register
from .idempotency import IdempotentResponse, fingerprint
from .personal_data import Keys, private_payload, sealing

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
T = TypeVar("T")

INTERVIEW_TOPICS: tuple[str, ...] = tuple(get_topic(c) for c in EVENT_TYPES)


def utcnow() -> datetime:
    return datetime.now(UTC)


class EventPositions(Protocol):
    """Where an interview's event stands in the global log (``AuditStore``)."""

    def position_of(self, interview_id: UUID, version: int) -> int | None: ...


RecordBatch = Callable[[list[Any], list[Any]], list[Recording[Any]]]


class Committer(Protocol):
    """Commits the new events of a command's aggregates in one transaction, through
    the ``RecordBatch`` it was built with (``GroupCommitter``)."""

    batches: int  # transactions written (a metric)

    def commit(self, aggregates: Sequence[Any]) -> list[Recording[Any]]: ...

    def close(self) -> None: ...


class KeyedLocks:
    """One lock per key, created on demand and dropped when nobody holds it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, list[Any]] = {}  # key -> [lock, holders]

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[key]


class InterviewNotFoundError(Exception):
    code = "not_found"


class VersionMismatchError(Exception):
    """``If-Match`` named a version that is not the current one."""

    code = "version_mismatch"

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"If-Match expected version {expected}, the interview is at {actual}")
        self.expected = expected
        self.actual = actual


class IdempotencyKeyReusedError(Exception):
    code = "idempotency_key_reused"

    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was already used for a different request")


class ConcurrencyConflictError(Exception):
    code = "conflict"

    def __init__(self) -> None:
        super().__init__("the interview changed concurrently too often; retry the command")


@dataclass(frozen=True)
class CommandResult:
    id: UUID
    status: str
    version: int
    position: int
    replayed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "status": self.status,
            "version": self.version,
            "position": self.position,
        }


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


class InterviewsApplication(Application[UUID]):
    """The interview workflow: commands, authoritative state and history."""

    name = "interviews"
    snapshotting_intervals = {Interview: 100}  # eventsourcing's ClassVar
    # Commands load the same few aggregates again and again: keep recent ones in
    # memory. A cached aggregate is still fast-forwarded from the store (one query
    # for newer events instead of a snapshot lookup and an events query), so other
    # processes' writes are seen. The environment's AGGREGATE_CACHE_MAXSIZE wins.
    env = {"AGGREGATE_CACHE_MAXSIZE": "4096"}  # eventsourcing's ClassVar

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        audit_store: Callable[[ApplicationRecorder], EventPositions],
        committer: Callable[[RecordBatch], Committer],
        clock: Callable[[], datetime] = utcnow,
        invitation_ttl: timedelta = timedelta(days=7),
        offer_ttl: timedelta = timedelta(days=7),
        keys: KeyIssuer | None = None,
        reader: Keys | None = None,
    ) -> None:
        """``env`` picks the event store (eventsourcing's ``PERSISTENCE_MODULE``; none:
        in memory). Both collaborators need what the application builds from it, so
        they come as factories: ``audit_store`` is given the recorder, ``committer``
        the function that records one batch (the caller decides their kind, e.g.
        ``AuditStore`` and ``GroupCommitter``). ``keys`` seals the free text of
        commands with each author's key (None: recorded as written); ``reader``
        reveals it (None: sealed text reads erased)."""
        super().__init__(env)
        self.keys = keys
        self.reader: Keys = reader if reader is not None else InMemoryKeys()
        self.clock = clock
        self.invitation_ttl = invitation_ttl
        self.offer_ttl = offer_ttl
        self.committer = committer(self._record_batch)
        self.listeners: list[Callable[[list[Recording[UUID]]], None]] = []
        self.events_appended = 0
        # Invitations for one job all write that job's aggregate: queue them in
        # this process instead of letting them race (and retry) on its version.
        self._job_locks = KeyedLocks()
        self._stored = audit_store(self.recorder)

    def close(self) -> None:
        self.committer.close()
        super().close()

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        register_domain_transcodings(transcoder)

    # ------------------------------------------------------------ the commands

    def invite(
        self,
        ctx: CommandContext,
        *,
        job_id: str,
        freelancer_id: str,
        message: str | None = None,
        expires_at: datetime | None = None,
        exclusive_hours: int | None = None,
        idempotency_key: str | None = None,
    ) -> CommandResult:
        payload = {
            "job_id": job_id,
            "freelancer_id": freelancer_id,
            "message": message,
            "expires_at": expires_at,
            "exclusive_hours": exclusive_hours,
        }
        ctx = sealing(ctx, self.keys)

        def decide() -> tuple[list[Any], Interview]:
            if ctx.actor.role != "client":
                raise NotAllowedError("only a client can invite a freelancer")
            job = self._get_job(job_id)
            if job is None:
                raise JobNotFoundError(f"job {job_id!r} not found")
            job.check_owner(ctx.actor)
            if exclusive_hours is not None:
                job.set_policy(ctx.actor, ctx.at, exclusive_hours)
            previous_id = job.last_interview_with(freelancer_id)
            previous = self._get_interview(previous_id) if previous_id is not None else None
            job.check_can_invite(ctx.at, previous)
            interview = Interview.invite(
                ctx,
                interview_id=uuid4(),
                job_id=job_id,
                freelancer_id=freelancer_id,
                message=message,
                expires_at=expires_at or ctx.at + self.invitation_ttl,
            )
            job.record_invitation(freelancer_id, interview.id, ctx.at)
            return [job, interview], interview

        with self._job_locks.hold(job_id):
            return self._execute(ctx, "invite", job_id, payload, idempotency_key, decide)

    def accept(self, ctx: CommandContext, interview_id: UUID, **opts: Any) -> CommandResult:
        return self._transition(ctx, "accept", interview_id, {}, lambda i: i.accept(ctx), **opts)

    def decline(
        self, ctx: CommandContext, interview_id: UUID, reason: str | None = None, **opts: Any
    ) -> CommandResult:
        ctx = sealing(ctx, self.keys)
        return self._transition(
            ctx,
            "decline",
            interview_id,
            {"reason": reason},
            lambda i: i.decline(ctx, reason),
            **opts,
        )

    def start(
        self,
        ctx: CommandContext,
        interview_id: UUID,
        scheduled_at: datetime | None = None,
        duration_minutes: int = DEFAULT_DURATION_MINUTES,
        **opts: Any,
    ) -> CommandResult:
        """Either party starts the interview, optionally at a scheduled time."""

        def act(interview: Interview) -> list[Any]:
            interview.start(ctx, scheduled_at, duration_minutes)
            job = self._get_job(interview.job_id)
            if job is not None and job.exclusive_hours:
                job.open_exclusive_window(interview.id, ctx.at)
                return [job]
            return []

        payload: dict[str, Any] = {"scheduled_at": scheduled_at}
        if duration_minutes != DEFAULT_DURATION_MINUTES:
            # The default leaves the fingerprint as it was before durations existed.
            payload["duration_minutes"] = duration_minutes
        return self._transition(ctx, "start", interview_id, payload, act, **opts)

    def reschedule(
        self,
        ctx: CommandContext,
        interview_id: UUID,
        *,
        scheduled_at: datetime,
        duration_minutes: int | None = None,
        reason: str | None = None,
        **opts: Any,
    ) -> CommandResult:
        """Either party moves the meeting of a started interview (without a
        duration it keeps its length)."""
        payload = {
            "scheduled_at": scheduled_at,
            "duration_minutes": duration_minutes,
            "reason": reason,
        }
        ctx = sealing(ctx, self.keys)
        return self._transition(
            ctx,
            "reschedule",
            interview_id,
            payload,
            lambda i: i.reschedule(ctx, scheduled_at, duration_minutes, reason),
            **opts,
        )

    def extend_offer(
        self,
        ctx: CommandContext,
        interview_id: UUID,
        *,
        amount: Decimal,
        currency: str,
        rate_type: RateType,
        start_date: date | None = None,
        message: str | None = None,
        expires_at: datetime | None = None,
        **opts: Any,
    ) -> CommandResult:
        ctx = sealing(ctx, self.keys)
        terms = OfferTerms(amount, currency, rate_type, start_date, message)
        payload = {**terms.__dict__, "expires_at": expires_at}
        return self._transition(
            ctx,
            "offer",
            interview_id,
            payload,
            lambda i: i.extend_offer(ctx, terms, expires_at or ctx.at + self.offer_ttl),
            **opts,
        )

    def accept_offer(self, ctx: CommandContext, interview_id: UUID, **opts: Any) -> CommandResult:
        return self._transition(
            ctx, "offer/accept", interview_id, {}, lambda i: i.accept_offer(ctx), **opts
        )

    def decline_offer(
        self, ctx: CommandContext, interview_id: UUID, reason: str | None = None, **opts: Any
    ) -> CommandResult:
        ctx = sealing(ctx, self.keys)
        return self._transition(
            ctx,
            "offer/decline",
            interview_id,
            {"reason": reason},
            lambda i: i.decline_offer(ctx, reason),
            **opts,
        )

    def withdraw_offer(
        self, ctx: CommandContext, interview_id: UUID, reason: str | None = None, **opts: Any
    ) -> CommandResult:
        """The client takes back an unanswered offer."""
        ctx = sealing(ctx, self.keys)
        return self._transition(
            ctx,
            "offer/withdraw",
            interview_id,
            {"reason": reason},
            lambda i: i.withdraw_offer(ctx, reason),
            **opts,
        )

    def cancel(
        self, ctx: CommandContext, interview_id: UUID, reason: str, **opts: Any
    ) -> CommandResult:
        ctx = sealing(ctx, self.keys)
        return self._transition(
            ctx, "cancel", interview_id, {"reason": reason}, lambda i: i.cancel(ctx, reason), **opts
        )

    def expire(self, interview_id: UUID, at: datetime | None = None) -> CommandResult:
        """Called by the scheduler when a deadline has passed."""
        ctx = CommandContext(
            actor=SYSTEM,
            at=at or self.clock(),
            correlation_id=f"expiry:{interview_id}",
            causation_id=f"deadline:{interview_id}",
        )
        return self._transition(ctx, "expire", interview_id, {}, lambda i: i.expire(ctx))

    def set_job_policy(
        self, ctx: CommandContext, job_id: str, exclusive_hours: int | None
    ) -> JobPolicy:
        """The job's client sets its exclusive window: how many hours after an interview
        starts no new invitation is taken (None: no window)."""
        if ctx.actor.role != "client":
            raise NotAllowedError("only the job's client sets its policy")

        def decide() -> tuple[list[Any], JobPolicy]:
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
            job_id = str(uuid4())
        else:
            job_id = str(uuid5(JOB_ID_NAMESPACE, f"{ctx.actor.id}\x00{idempotency_key}"))

        def decide() -> tuple[list[Any], tuple[JobView, bool]]:
            existing = self._get_job(job_id)
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

        def decide() -> tuple[list[Any], tuple[JobView, bool]]:
            existing = self._get_job(job_id)
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

        def decide() -> tuple[list[Any], tuple[JobView, list[UUID]]]:
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

    def get_interview(self, interview_id: UUID, version: int | None = None) -> Interview:
        return self._get_interview(interview_id, version)

    def get_job(self, job_id: str) -> JobView | None:
        job = self._get_job(job_id)
        return JobView.of(job) if job is not None else None

    def get_job_policy(self, job_id: str) -> JobPolicy | None:
        job = self._get_job(job_id)
        if job is None:
            return None
        return JobPolicy(job.job_id, job.client_id, job.exclusive_hours, job.version)

    def interview_events(self, interview_id: UUID) -> list[Interview.Event]:
        # An interview's stream holds only Interview events.
        return cast(list[Interview.Event], list(self.events.get(interview_id)))

    def position_of(self, interview_id: UUID, version: int) -> int | None:
        """The global notification id of an interview's event at ``version``."""
        return self._stored.position_of(interview_id, version)

    def iter_interview_notifications(
        self, after: int = 0, limit: int = 1000
    ) -> Iterator[tuple[int, Interview.Event]]:
        """Interview events in global order after ``after``, with their positions."""
        notifications = self.recorder.select_notifications(
            start=after, limit=limit, topics=INTERVIEW_TOPICS, inclusive_of_start=False
        )
        for n in notifications:
            # INTERVIEW_TOPICS selects Interview events only.
            yield n.id, cast(Interview.Event, self.mapper.to_domain_event(n))

    def max_position(self) -> int:
        return self.recorder.max_notification_id() or 0

    def check_ready(self) -> None:
        """Raises if the event store cannot be reached."""
        self.recorder.max_notification_id()

    # ---------------------------------------------------------------- internals

    def _transition(
        self,
        ctx: CommandContext,
        action: str,
        interview_id: UUID,
        payload: dict[str, Any],
        act: Callable[[Interview], Any],
        *,
        expected_version: int | None = None,
        idempotency_key: str | None = None,
    ) -> CommandResult:
        def decide() -> tuple[list[Any], Interview]:
            interview = self._get_interview(interview_id)
            if interview.party_role_of(ctx.actor.id) is None and ctx.actor.role != "system":
                # Existence must not leak to strangers.
                raise InterviewNotFoundError(f"interview {interview_id} not found")
            if expected_version is not None and expected_version != interview.version:
                raise VersionMismatchError(expected_version, interview.version)
            extra = act(interview) or []
            return [interview, *extra], interview

        return self._execute(ctx, action, str(interview_id), payload, idempotency_key, decide)

    def _execute(
        self,
        ctx: CommandContext,
        action: str,
        target: str,
        payload: dict[str, Any],
        idempotency_key: str | None,
        decide: Callable[[], tuple[list[Any], Interview]],
    ) -> CommandResult:
        fp = fingerprint(action, target, private_payload(ctx, payload)) if idempotency_key else ""
        for _ in range(MAX_ATTEMPTS):
            if idempotency_key:
                replay = self._replay(ctx.actor.id, idempotency_key, fp)
                if replay is not None:
                    return replay
            try:
                aggregates, interview = decide()
            except (DomainError, InterviewNotFoundError, VersionMismatchError):
                # A concurrent retry of this same request may have committed
                # since the replay check above: then its answer is the answer.
                if idempotency_key:
                    replay = self._replay(ctx.actor.id, idempotency_key, fp)
                    if replay is not None:
                        return replay
                raise
            if idempotency_key:
                aggregates.append(
                    IdempotentResponse.record(
                        ctx.actor.id,
                        idempotency_key,
                        fp,
                        200,
                        {
                            "id": str(interview.id),
                            "status": interview.status,
                            "version": interview.version,
                        },
                    )
                )
            # Read before committing: once committed, the aggregate object is the
            # cache's, and a later command may fast-forward it.
            status, version = interview.status, interview.version
            try:
                recordings = self._commit(aggregates)
            except IntegrityError:
                continue  # lost a race: decide again on fresh state
            position = max(
                r.notification.id
                for r in recordings
                if r.domain_event.originator_id == interview.id
            )
            log.info(
                "command %s on interview %s by %s:%s -> %s v%d @%d",
                action,
                interview.id,
                ctx.actor.role,
                ctx.actor.id,
                status,
                version,
                position,
                extra={"correlation_id": ctx.correlation_id},
            )
            return CommandResult(interview.id, status, version, position)
        raise ConcurrencyConflictError

    def _replay(self, caller_id: str, key: str, fp: str) -> CommandResult | None:
        try:
            record: IdempotentResponse = self.repository.get(
                IdempotentResponse.id_for(caller_id, key)
            )
        except AggregateNotFoundError:
            return None
        if record.fingerprint != fp:
            raise IdempotencyKeyReusedError
        body = record.response()
        interview_id = UUID(body["id"])
        position = self.position_of(interview_id, body["version"]) or 0
        return CommandResult(interview_id, body["status"], body["version"], position, replayed=True)

    def _until_committed(
        self, decide: Callable[[], tuple[list[Any], T]]
    ) -> tuple[T, list[Recording[UUID]]]:
        """``decide`` gives the aggregates to commit and the answer; a commit that
        lost a race on a version records nothing, and the decision is taken again
        on fresh state (at most ``MAX_ATTEMPTS`` times)."""
        for _ in range(MAX_ATTEMPTS):
            aggregates, answer = decide()
            try:
                recordings = self._commit(aggregates)
            except IntegrityError:
                continue
            return answer, recordings
        raise ConcurrencyConflictError

    def _commit(self, aggregates: list[Any]) -> list[Recording[UUID]]:
        return self.committer.commit(aggregates)

    def _record_batch(self, events: list[Any], aggregates: list[Any]) -> list[Recording[UUID]]:
        """Runs on the committer thread: one transaction for a whole batch."""
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        processing_event.collect_events(*events)
        for aggregate in aggregates:
            processing_event.aggregates[aggregate.id] = aggregate
        recordings = self._record(processing_event)
        self.events_appended += len(recordings)
        cache = self.repository.cache
        if cache is not None:
            # Just recorded, so the newest state: the next command on these
            # aggregates starts from here instead of loading them cold.
            for aggregate in aggregates:
                cache.put(aggregate.id, aggregate)
        try:
            self._take_snapshots(processing_event)
        except Exception:  # a snapshot is an optimisation; never fail a command on it
            log.exception("taking a snapshot failed")
        for listener in list(self.listeners):
            try:
                listener(recordings)
            except Exception:
                log.exception("a recording listener failed")
        return recordings

    def _get_interview(self, interview_id: UUID, version: int | None = None) -> Interview:
        try:
            aggregate: object = self.repository.get(interview_id, version=version)
        except AggregateNotFoundError:
            raise InterviewNotFoundError(f"interview {interview_id} not found") from None
        if not isinstance(aggregate, Interview):
            raise InterviewNotFoundError(f"interview {interview_id} not found")
        return aggregate

    def _get_job(self, job_id: str) -> Job | None:
        try:
            job: object = self.repository.get(Job.id_for(job_id))
        except AggregateNotFoundError:
            return None
        assert isinstance(job, Job)
        return job


def is_interview_event(event: DomainEventProtocol[Any]) -> bool:
    return isinstance(event, Interview.Event)
