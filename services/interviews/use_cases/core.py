"""The machinery every use case of the interview service runs on: an ``eventsourcing``
Application with its event store, the group committer and the aggregates' loaders.

Each command loads what it needs, asks the domain to decide, and commits all
new events (the interview's, the job's, the idempotency record's) in one
transaction through the group committer. A command that loses a race on a
version is run again on fresh state, so the loser gets the answer the domain
gives it then (usually 409), never a corrupted stream. The commands themselves
are in ``interview_commands.py`` and ``job_commands.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from copy import deepcopy
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, TypeVar
from uuid import UUID

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    ProcessingEvent,
    Repository,
    project_aggregate,
)
from eventsourcing.persistence import (
    ApplicationRecorder,
    IntegrityError,
    JSONTranscoder,
    Recording,
)

from ...common.loop_threads import may_block
from ...common.privacy import InMemoryKeys, KeyIssuer, SealedValue
from ..adapters.transcodings import register_domain_transcodings
from ..domain import Interview, Job
from ..personal_data import Keys
from .errors import ConcurrencyConflictError, InterviewNotFoundError

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
T = TypeVar("T")
A = TypeVar("A")

# Immutable: a copy of an aggregate may share them with the original (a sealed
# text, too: ``SealedValue`` refuses every change).
SHARED_TYPES = frozenset(
    {
        str,
        int,
        float,
        bool,
        bytes,
        type(None),
        datetime,
        date,
        timedelta,
        UUID,
        Decimal,
        SealedValue,
    }
)


def private_copy(aggregate: A) -> A:
    """What ``copy.deepcopy`` gives, at a fraction of its cost: a new aggregate
    that shares the original's immutable values (texts, numbers, instants, ids,
    frozen dataclasses of them) and holds copies of the others, so neither sees
    the other's changes."""
    cls = type(aggregate)
    clone = cls.__new__(cls)
    memo: dict[int, Any] = {}
    clone.__dict__.update(
        {name: _copied(value, memo) for name, value in aggregate.__dict__.items()}
    )
    return clone


def _copied(value: Any, memo: dict[int, Any]) -> Any:
    kind = type(value)
    if kind in SHARED_TYPES:
        return value
    copied = memo.get(id(value))
    if copied is not None:
        return copied  # aliased, as deepcopy keeps it
    if kind is list and all(type(item) in SHARED_TYPES for item in value):
        copied = list(value)
    elif kind is dict and all(
        type(k) in SHARED_TYPES and type(v) in SHARED_TYPES for k, v in value.items()
    ):
        copied = dict(value)
    elif _frozen_of_shared(value, kind):
        return value
    else:
        return deepcopy(value, memo)
    memo[id(value)] = copied
    return copied


def _frozen_of_shared(value: Any, kind: type) -> bool:
    """A frozen dataclass all of whose values are immutable (``SHARED_TYPES``)."""
    params = getattr(kind, "__dataclass_params__", None)
    if params is None or not params.frozen:
        return False
    state = getattr(value, "__dict__", None)
    values = (
        state.values()
        if state is not None
        else (getattr(value, f.name) for f in dataclasses.fields(value))
    )
    return all(type(v) in SHARED_TYPES for v in values)


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

    async def commit_async(self, aggregates: Sequence[Any]) -> list[Recording[Any]]: ...

    def close(self) -> None: ...


class KeyedLocks:
    """One lock per key, created on demand and dropped when nobody holds it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, list[Any]] = {}  # key -> [lock, holders]

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
        self.acquire(key)
        try:
            yield
        finally:
            self.release(key)

    def acquire(self, key: str, *, blocking: bool = True) -> bool:
        """Takes the key's lock (``blocking=False``: only if nobody holds it)."""
        with self._guard:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        if entry[0].acquire(blocking):
            return True
        self._let_go(key, entry)
        return False

    def release(self, key: str) -> None:
        """Releases the key's lock, taken with ``acquire`` (from any thread)."""
        entry = self._locks[key]
        entry[0].release()
        self._let_go(key, entry)

    def _let_go(self, key: str, entry: list[Any]) -> None:
        with self._guard:
            entry[1] -= 1
            if entry[1] == 0:
                del self._locks[key]


class ApplicationCore(Application[UUID]):
    """The event store and how a command commits on it; ``InterviewsApplication``
    adds the commands (``InterviewCommands``, ``JobCommands``) and the queries."""

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
        # Read the store only (no cache): cold loads and past versions. Only
        # interviews are snapshotted; the others are read without asking for one.
        self._stored_aggregates: Repository[UUID] = Repository(
            self.events, snapshot_store=self.snapshots
        )
        self._stored_streams: Repository[UUID] = Repository(self.events)

    def close(self) -> None:
        self.committer.close()
        super().close()

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        register_domain_transcodings(transcoder)

    def position_of(self, interview_id: UUID, version: int) -> int | None:
        """The global notification id of an interview's event at ``version``."""
        return self._stored.position_of(interview_id, version)

    def _until_committed(
        self, decide: Callable[[bool], tuple[list[Any], T]]
    ) -> tuple[T, list[Recording[UUID]]]:
        """``decide`` gives the aggregates to commit and the answer; a commit that
        lost a race on a version records nothing, and the decision is taken again
        on fresh state (at most ``MAX_ATTEMPTS`` times). ``decide`` is told whether
        this is the first attempt (see ``_get_job``'s ``assume_new``)."""
        for attempt in range(MAX_ATTEMPTS):
            aggregates, answer = decide(attempt == 0)
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
        # Already collected from their aggregates: no need for collect_events's
        # protocol checks, one per event.
        processing_event.events.extend(events)
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

    def _load(
        self,
        aggregate_id: UUID,
        trusted: list[Any] | None = None,
        *,
        snapshotted: bool = True,
        assume_new: bool = False,
    ) -> Any:
        """A private copy of an aggregate, for the caller to change.

        A cached aggregate is fast-forwarded with the store's newer events (one
        query), others are reconstructed from the store. With ``trusted`` (a list)
        a cached aggregate is taken as it is, without a query, and appended to
        ``trusted``: another process may have written newer events, so the caller
        commits new events on it (the store refuses a stale version) or decides
        again without trusting. Cached aggregates are never changed in place, only
        replaced, so a copy is never torn by another thread's fast-forward.
        ``snapshotted=False``: a kind of aggregate never snapshotted (no query for one).
        ``assume_new``: one that is not cached is taken not to exist, without a
        query; the caller then creates it, and the store refuses its version 1 if
        it did exist. On the event loop (``on_the_loop``) a load that would query
        raises ``WouldBlockError`` instead, before it changed anything."""
        cache = self.repository.cache
        try:
            cached = cache.get(aggregate_id) if cache is not None else None
        except KeyError:
            cached = None
        if cached is None:
            if assume_new:
                raise AggregateNotFoundError(aggregate_id)
            may_block()  # a query: not on the event loop
            store = self._stored_aggregates if snapshotted else self._stored_streams
            aggregate: Any = store.get(aggregate_id)
            if cache is None:
                return aggregate
            cache.put(aggregate_id, aggregate)
            return private_copy(aggregate)
        aggregate = private_copy(cached)
        if trusted is not None:
            trusted.append(aggregate)
            return aggregate
        may_block()  # the fast-forward query: not on the event loop
        newer = list(self.events.get(aggregate_id, gt=aggregate.version))
        if not newer:
            return aggregate
        aggregate = project_aggregate(aggregate, newer)
        assert cache is not None
        cache.put(aggregate_id, aggregate)
        return private_copy(aggregate)

    def _get_interview(
        self,
        interview_id: UUID,
        version: int | None = None,
        trusted: list[Any] | None = None,
    ) -> Interview:
        """The interview (at ``version``: as it was then, from the store); for
        ``trusted`` see ``_load``."""
        try:
            if version is None:
                aggregate: object = self._load(interview_id, trusted)
            else:
                aggregate = self._stored_aggregates.get(interview_id, version=version)
        except AggregateNotFoundError:
            raise InterviewNotFoundError(f"interview {interview_id} not found") from None
        if not isinstance(aggregate, Interview):
            raise InterviewNotFoundError(f"interview {interview_id} not found")
        return aggregate

    def _get_job(
        self, job_id: str, trusted: list[Any] | None = None, *, assume_new: bool = False
    ) -> Job | None:
        """The job, None if nobody created or registered it; for ``trusted`` and
        ``assume_new`` see ``_load``."""
        try:
            job: object = self._load(
                Job.id_for(job_id), trusted, snapshotted=False, assume_new=assume_new
            )
        except AggregateNotFoundError:
            return None
        assert isinstance(job, Job)
        return job
