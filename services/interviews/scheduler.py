"""Deadlines: invitations and offers that nobody answers in time expire.

The command path knows nothing of the scheduler. The scheduler keeps its own
index of open deadlines, ``deadlines(interview_id, what, due_at, version)`` in
the interviews database, by following the event store's interview log from a
position it stores in the same database (``scheduler_positions``). An index
batch and the new position are written in one transaction, and a batch
applies only if the position is still the one it was read from, so the index
never skips or double-applies an event, however often an instance crashes.

Each tick then asks the Interview aggregate to expire every row that is due.
The aggregate decides: a deadline that was answered first is refused
(``TransitionNotAllowedError``), one that is not due yet is refused
(``NotYetDueError``), and two instances expiring the same interview conflict
on its version, so the loser re-decides on fresh state and is refused. So
``Expired`` is recorded at most once per deadline, and, since a row leaves the
index only after the aggregate has been asked, at least once.

A deadline the scheduler cannot handle never stops the others. An event
whose deadline cannot be indexed (its batch fails, so each change is tried on
its own) and a due row whose expiry keeps failing (``ISOLATE_AFTER`` ticks in
a row, for reasons other than a database outage) are *isolated*: moved to
``isolated_deadlines`` with the error, logged, counted in
``scheduler_failed_deadlines_total`` and ``scheduler_isolated_deadlines``,
listed by ``interviewctl deadlines isolated`` and put back by ``interviewctl
deadlines release ID`` once the cause is fixed. Every other deadline goes on
firing on time. (Instants at the calendar's edges are not failures: they are
clamped to what UTC holds, see ``common/instants.py``.)

On top of that only one instance works at a time, so they do not duplicate
effort (``adapters/leases.py``: an advisory lock on PostgreSQL, a lease row on
SQLite).

The loop sleeps until the next deadline, or until this process commits a new
invitation or offer (the application's ``listeners`` hook), and never longer
than ``SCHEDULER_MAX_SLEEP_SECONDS``: a passed deadline is acted on within that
time, without busy polling. Time comes from the injected clock, so tests move
the clock and call :meth:`Scheduler.wake` or :meth:`Scheduler.run_once`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

import sqlalchemy as sa
from eventsourcing import persistence as es_persistence
from prometheus_client import CollectorRegistry, Counter, Gauge

from ..common.db import DATABASE_OUTAGES, create_engine
from .adapters.leases import Lease, leader_lease, new_holder, upsert_insert
from .adapters.tables import DEADLINES, ISOLATED, POSITIONS
from .application import InterviewNotFoundError, InterviewsApplication
from .domain import Interview, NotYetDueError, TransitionNotAllowedError
from .settings import InterviewsSettings

log = logging.getLogger(__name__)

FOLLOWER = "deadlines"
RETRY_SECONDS = 1.0  # pause before retrying deadlines whose expiry failed
MIN_PAUSE_SECONDS = 0.05  # floor between ticks while rows are due, so nothing spins
MIN_WAKE_INTERVAL = 0.2  # a burst of commits wakes the loop once, not once per batch
ISOLATE_AFTER = 3  # failed expiries of one row in a row before it is set aside
# A database that is down is a reason to retry later, never to isolate a deadline.
OUTAGES: tuple[type[BaseException], ...] = (
    *DATABASE_OUTAGES,
    es_persistence.OperationalError,
    es_persistence.InterfaceError,
    ConnectionError,
    TimeoutError,
)


@dataclass(frozen=True)
class Deadline:
    interview_id: UUID
    what: str
    due_at: datetime
    version: int


@dataclass(frozen=True)
class IndexChange:
    """What one interview event means for the index: a deadline, or none below ``version``;
    ``problem`` when the event's deadline could not be read (it is isolated instead)."""

    interview_id: UUID
    version: int
    deadline: Deadline | None
    problem: str | None = None


@dataclass(frozen=True)
class IsolatedDeadline:
    """A deadline set aside for an operator: the scheduler could not index or expire it."""

    interview_id: UUID
    what: str | None
    due_at: str | None
    version: int
    stage: str
    error: str
    isolated_at: datetime


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:2000]


# Events that leave an open invitation or offer (and its deadline) as it was.
KEEPS_DEADLINE: tuple[type[Interview.Event], ...] = (Interview.Rescheduled,)


def change_for(event: Interview.Event) -> IndexChange | None:
    """What ``event`` means for the index; None if it leaves the deadline alone."""
    if isinstance(event, KEEPS_DEADLINE):
        return None
    what: str | None = None
    due_at: datetime | None = None
    if isinstance(event, Interview.Invited):
        what, due_at = "invitation", event.expires_at
    elif isinstance(event, Interview.OfferExtended):
        what, due_at = "offer", event.expires_at
    version = event.originator_version
    deadline = None
    if what is not None and due_at is not None:
        deadline = Deadline(event.originator_id, what, due_at, version)
    return IndexChange(event.originator_id, version, deadline)


class DeadlineIndex:
    """The ``deadlines`` table and the scheduler's position in the interview log."""

    def __init__(self, engine: sa.Engine, name: str = FOLLOWER) -> None:
        self.engine = engine
        self.name = name

    def create(self) -> None:
        """The follower's position row (its tables come from the interviews migrations)."""
        with self.engine.begin() as conn:
            conn.execute(
                upsert_insert(self.engine, POSITIONS)
                .values(name=self.name, position=0)
                .on_conflict_do_nothing(index_elements=["name"])
            )

    def position(self) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(POSITIONS.c.position).where(POSITIONS.c.name == self.name)
            ).scalar_one()
        return int(value)

    def advance(
        self, expected: int, new: int, changes: Iterable[IndexChange]
    ) -> list[IsolatedDeadline] | None:
        """Applies ``changes`` and moves the position from ``expected`` to ``new`` in one
        transaction; None (and nothing written) if the position is no longer ``expected``.

        A change that cannot be written is isolated in the same transaction (the
        others are written); the isolated ones are returned."""
        changes = list(changes)
        try:
            return self._advance(expected, new, changes, {})
        except OUTAGES:
            raise
        except Exception as error:  # find the change(s) at fault
            log.warning("deadline index batch failed (%s); trying each change", describe(error))
        return self._advance(expected, new, changes, self._probe(changes))

    def _advance(
        self, expected: int, new: int, changes: list[IndexChange], failing: dict[int, str]
    ) -> list[IsolatedDeadline] | None:
        isolated: list[IsolatedDeadline] = []
        with self.engine.begin() as conn:
            moved = conn.execute(
                sa.update(POSITIONS)
                .where(POSITIONS.c.name == self.name, POSITIONS.c.position == expected)
                .values(position=new)
            ).rowcount
            if moved != 1:
                return None
            for n, change in enumerate(changes):
                problem = change.problem or failing.get(n)
                if problem is not None:
                    isolated.append(self._isolate(conn, change, problem))
                elif change.deadline is not None:
                    self._put(conn, change.deadline)
                else:
                    self._clear(conn, change.interview_id, below=change.version)
        return isolated

    def _probe(self, changes: list[IndexChange]) -> dict[int, str]:
        """Tries each change alone in a transaction that is rolled back: which ones fail."""
        failing: dict[int, str] = {}
        for n, change in enumerate(changes):
            if change.problem is not None or change.deadline is None:
                continue
            with self.engine.connect() as conn:
                try:
                    with conn.begin() as transaction:
                        self._put(conn, change.deadline)
                        transaction.rollback()
                except OUTAGES:
                    raise
                except Exception as error:  # this one is isolated
                    failing[n] = describe(error)
        return failing

    def _isolate(self, conn: sa.Connection, change: IndexChange, error: str) -> IsolatedDeadline:
        deadline = change.deadline
        row = IsolatedDeadline(
            interview_id=change.interview_id,
            what=deadline.what if deadline else None,
            due_at=_text_of(deadline.due_at) if deadline else None,
            version=change.version,
            stage="index",
            error=error,
            isolated_at=datetime.now(UTC),
        )
        self._write_isolated(conn, row)
        return row

    def isolate(self, deadline: Deadline, stage: str, error: str) -> IsolatedDeadline:
        """Moves a due row out of the index, for an operator to look at."""
        row = IsolatedDeadline(
            interview_id=deadline.interview_id,
            what=deadline.what,
            due_at=_text_of(deadline.due_at),
            version=deadline.version,
            stage=stage,
            error=error,
            isolated_at=datetime.now(UTC),
        )
        with self.engine.begin() as conn:
            conn.execute(
                sa.delete(DEADLINES).where(
                    DEADLINES.c.interview_id == deadline.interview_id,
                    DEADLINES.c.version <= deadline.version,
                )
            )
            self._write_isolated(conn, row)
        return row

    def _write_isolated(self, conn: sa.Connection, row: IsolatedDeadline) -> None:
        values = {
            "what": row.what,
            "due_at": row.due_at,
            "version": row.version,
            "stage": row.stage,
            "error": row.error,
            "isolated_at": row.isolated_at,
        }
        stmt = upsert_insert(self.engine, ISOLATED).values(interview_id=row.interview_id, **values)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["interview_id"],
                set_={name: stmt.excluded[name] for name in values},
                where=ISOLATED.c.version <= stmt.excluded.version,
            )
        )

    def isolated(self) -> list[IsolatedDeadline]:
        """The deadlines set aside, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(ISOLATED).order_by(ISOLATED.c.isolated_at)).all()
        return [IsolatedDeadline(**row._mapping) for row in rows]

    def count_isolated(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(ISOLATED)).scalar_one())

    def release(self, interview_id: UUID) -> bool:
        """Forgets an isolated deadline (the caller re-derives it); False if none was."""
        with self.engine.begin() as conn:
            gone = conn.execute(sa.delete(ISOLATED).where(ISOLATED.c.interview_id == interview_id))
        return bool(gone.rowcount)

    def put(self, deadline: Deadline) -> None:
        with self.engine.begin() as conn:
            self._put(conn, deadline)

    def clear(self, interview_id: UUID, below: int) -> None:
        """Forgets the interview's deadline if it was set before version ``below``."""
        with self.engine.begin() as conn:
            self._clear(conn, interview_id, below)

    def due(self, now: datetime, limit: int) -> list[Deadline]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(DEADLINES)
                .where(DEADLINES.c.due_at <= now)
                .order_by(DEADLINES.c.due_at)
                .limit(limit)
            ).all()
        return [Deadline(r.interview_id, r.what, r.due_at, r.version) for r in rows]

    def next_due(self) -> datetime | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.min(DEADLINES.c.due_at))).scalar()

    def all(self) -> list[Deadline]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(DEADLINES).order_by(DEADLINES.c.due_at)).all()
        return [Deadline(r.interview_id, r.what, r.due_at, r.version) for r in rows]

    def _put(self, conn: sa.Connection, deadline: Deadline) -> None:
        stmt = upsert_insert(self.engine, DEADLINES).values(
            interview_id=deadline.interview_id,
            what=deadline.what,
            due_at=deadline.due_at,
            version=deadline.version,
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["interview_id"],
                set_={
                    "what": stmt.excluded.what,
                    "due_at": stmt.excluded.due_at,
                    "version": stmt.excluded.version,
                },
                where=DEADLINES.c.version <= stmt.excluded.version,
            )
        )
        self._supersede(conn, deadline.interview_id, below=deadline.version)

    @classmethod
    def _clear(cls, conn: sa.Connection, interview_id: UUID, below: int) -> None:
        conn.execute(
            sa.delete(DEADLINES).where(
                DEADLINES.c.interview_id == interview_id, DEADLINES.c.version < below
            )
        )
        cls._supersede(conn, interview_id, below)

    @staticmethod
    def _supersede(conn: sa.Connection, interview_id: UUID, below: int) -> None:
        """A later event of the interview decides its deadline: an isolated older one is moot."""
        conn.execute(
            sa.delete(ISOLATED).where(
                ISOLATED.c.interview_id == interview_id, ISOLATED.c.version < below
            )
        )


def _text_of(value: datetime) -> str:
    return value.isoformat()


# ----------------------------------------------------------------- the loop


class InterviewsProvider(Protocol):
    """What the scheduler needs of the service's container (``InterviewsContainer``)."""

    settings: InterviewsSettings
    clock: Callable[[], datetime]

    def interviews(self) -> InterviewsApplication: ...


@dataclass
class TickReport:
    leader: bool = False
    indexed: int = 0  # interview events read into the index
    expired: int = 0  # Expired events recorded
    settled: int = 0  # due rows the aggregate refused (answered first...) and were put right
    failed: int = 0  # due rows left for a later tick
    isolated: int = 0  # deadlines set aside for an operator (see ``isolated_deadlines``)
    more: bool = False  # a whole batch was due: look again at once
    next_due: datetime | None = None


class SchedulerMetrics:
    """The scheduler's Prometheus metrics (one set per registry)."""

    _by_registry: weakref.WeakKeyDictionary[Any, SchedulerMetrics] = weakref.WeakKeyDictionary()

    def __init__(self, registry: Any) -> None:
        self.failed = Counter(
            "scheduler_failed_deadlines",
            "Deadlines the scheduler could not index or expire (each attempt)",
            ["stage"],
            registry=registry,
        )
        self.isolated = Gauge(
            "scheduler_isolated_deadlines",
            "Deadlines set aside for an operator (interviewctl deadlines isolated)",
            registry=registry,
        )

    @classmethod
    def for_registry(cls, registry: Any) -> SchedulerMetrics:
        if registry is None:
            return cls(CollectorRegistry())
        metrics = cls._by_registry.get(registry)
        if metrics is None:
            metrics = cls._by_registry[registry] = cls(registry)
        return metrics


class Scheduler:
    """Records ``Expired`` once when an invitation or offer passes unanswered.

    ``start()`` runs it on a background thread (``interviewctl up``);
    ``run_forever()`` on the calling one; ``run_once()`` is one tick, for tests.
    Several instances may run against one database: one leads, the others wait.
    """

    def __init__(
        self,
        container: InterviewsProvider,
        *,
        clock: Callable[[], datetime] | None = None,
        lease: Lease | None = None,
        max_sleep: float | None = None,
        lease_seconds: float | None = None,
        batch_size: int | None = None,
        index: DeadlineIndex | None = None,
        registry: Any = None,
        isolate_after: int = ISOLATE_AFTER,
    ) -> None:
        settings = container.settings
        self.container = container
        self.clock = clock or container.clock
        self.max_sleep = max_sleep or settings.scheduler_max_sleep_seconds
        self.lease_seconds = lease_seconds or settings.scheduler_lease_seconds
        self.batch_size = batch_size or settings.scheduler_batch_size
        self.holder = new_holder()
        self.is_leader = False
        self.expired_total = 0
        self.settled_total = 0
        self.failed_total = 0
        self.tick_failures_total = 0
        self.last_tick_ok: float | None = None  # monotonic time of the last good tick
        self.isolated_total = 0
        self.isolate_after = isolate_after
        self.metrics = SchedulerMetrics.for_registry(registry)
        self._failures: dict[UUID, int] = {}  # failed expiries of a due row, in a row
        self._lease = lease
        self._engine: sa.Engine | None = None
        self._index: DeadlineIndex | None = index
        self._schema_ready = False
        self._app: InterviewsApplication | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one tick at a time per instance

    # ------------------------------------------------------------ running it

    def start(self) -> Scheduler:
        """Runs the loop on a daemon thread; ``stop()`` ends it."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self.run_forever, name="deadline-scheduler", daemon=True
            )
            self._thread.start()
        return self

    def run_forever(self) -> None:
        log.info("deadline scheduler %s running (max sleep %.1fs)", self.holder, self.max_sleep)
        while not self._stopping.is_set():
            self._wake.clear()
            began = time.monotonic()
            try:
                pause = self._pause_after(self.run_once())
                self.last_tick_ok = time.monotonic()
            except Exception as error:  # e.g. the database is down: retry
                log.warning("deadline scheduler tick failed: %s: %s", type(error).__name__, error)
                self.tick_failures_total += 1
                self._set_leader(False)
                pause = self.max_sleep
            if pause > 0 and self._wake.wait(pause):
                # Woken early: let a burst of commits gather into one tick.
                self._stopping.wait(max(0.0, began + MIN_WAKE_INTERVAL - time.monotonic()))
        log.info("deadline scheduler %s stopped", self.holder)

    def check_ready(self) -> None:
        """Raises unless the loop runs and a tick (leading or standing by) succeeded
        within three of its longest sleeps."""
        if self._thread is None or not self._thread.is_alive():
            raise SchedulerNotReadyError("the scheduler loop is not running")
        limit = max(3 * self.max_sleep, 15.0)
        if self.last_tick_ok is None or time.monotonic() - self.last_tick_ok > limit:
            raise SchedulerNotReadyError(f"no successful tick in the last {limit:.0f}s")

    def wake(self) -> None:
        """Look at the deadlines now (e.g. after a test moved the clock)."""
        self._wake.set()

    def request_stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Ends the loop, lets go of the lease and closes the connections."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the deadline scheduler did not stop within %.0fs", timeout)
            self._thread = None
        self.close()

    def close(self) -> None:
        """Lets go of the lease and the connections (after ``stop`` or ``run_forever``)."""
        if self._lease is not None:
            try:
                self._lease.release()
            except Exception:  # a lease lapses or dies with its connection
                log.warning("releasing the scheduler lease failed", exc_info=True)
        self._set_leader(False)
        if self._app is not None:
            with contextlib.suppress(ValueError):
                self._app.listeners.remove(self._on_recordings)
            self._app = None
        if self._engine is not None:
            self._engine.dispose()

    # ------------------------------------------------------------- one tick

    def run_once(self) -> TickReport:
        """Leads if it can, brings the index up to date and expires what is due."""
        with self._lock:
            app = self.container.interviews()
            self._attach(app)
            lease, index = self._ensure()
            if not lease.acquire():
                self._set_leader(False)
                return TickReport()
            self._set_leader(True)
            if not self._schema_ready:
                index.create()
                self._schema_ready = True
            report = TickReport(leader=True)
            report.indexed = self._catch_up(app, index, report)
            self._expire_due(app, index, lease, report)
            report.next_due = index.next_due()
            self.expired_total += report.expired
            self.settled_total += report.settled
            self.failed_total += report.failed
            self.isolated_total += report.isolated
            self.metrics.isolated.set(index.count_isolated())
            return report

    def index(self) -> DeadlineIndex:
        """The deadline index this scheduler maintains (for inspection)."""
        return self._ensure()[1]

    def _catch_up(
        self, app: InterviewsApplication, index: DeadlineIndex, report: TickReport
    ) -> int:
        applied = 0
        while not self._stopping.is_set():
            position = index.position()
            batch = list(app.iter_interview_notifications(after=position, limit=self.batch_size))
            if not batch:
                break
            changes: dict[UUID, IndexChange] = {}
            for _, event in batch:  # the last event of an interview in the batch decides
                change = self._change_for(event)
                if change is not None:
                    changes[event.originator_id] = change
            isolated = index.advance(position, batch[-1][0], changes.values())
            if isolated is None:
                continue  # another instance moved the position: read from there
            for row in isolated:
                self._report_isolated(row, report)
            applied += len(batch)
            if len(batch) < self.batch_size:
                break
        return applied

    def _expire_due(
        self, app: InterviewsApplication, index: DeadlineIndex, lease: Lease, report: TickReport
    ) -> None:
        rows = index.due(self.clock(), self.batch_size)
        report.more = len(rows) == self.batch_size
        renewed = time.monotonic()
        for row in rows:
            if self._stopping.is_set():
                break
            if time.monotonic() - renewed > self.lease_seconds / 3:
                if not lease.acquire():
                    log.warning("lost the scheduler lease in the middle of a tick")
                    report.leader = False
                    self._set_leader(False)
                    break
                renewed = time.monotonic()
            try:
                result = app.expire(row.interview_id, at=self.clock())
            except (NotYetDueError, TransitionNotAllowedError, InterviewNotFoundError) as refusal:
                log.debug("interview %s not expired: %s", row.interview_id, refusal)
                try:
                    self._settle(app, index, row.interview_id)
                    report.settled += 1
                except Exception as error:  # tried again, then isolated
                    self._failed(index, row, error, report)
            except Exception as error:  # tried again, then isolated
                self._failed(index, row, error, report)
            else:
                self._failures.pop(row.interview_id, None)
                report.expired += 1
                log.info(
                    "expired the %s of interview %s (due %s)",
                    row.what,
                    row.interview_id,
                    row.due_at.isoformat(),
                )
                self._forget(index, row.interview_id, result.version)

    def _failed(
        self, index: DeadlineIndex, row: Deadline, error: Exception, report: TickReport
    ) -> None:
        """A due row stays in the index for the next tick; after ``isolate_after``
        failures in a row (a database outage does not count) it is isolated."""
        report.failed += 1
        if isinstance(error, OUTAGES):
            log.warning("could not expire interview %s: %s", row.interview_id, describe(error))
            return
        self.metrics.failed.labels("expire").inc()
        failures = self._failures[row.interview_id] = self._failures.get(row.interview_id, 0) + 1
        log.warning(
            "could not expire interview %s (%d/%d)",
            row.interview_id,
            failures,
            self.isolate_after,
            exc_info=error,
        )
        if failures >= self.isolate_after:
            del self._failures[row.interview_id]
            self._report_isolated(index.isolate(row, "expire", describe(error)), report)

    def _change_for(self, event: Interview.Event) -> IndexChange | None:
        try:
            return change_for(event)
        except Exception as error:  # isolated, the others go on
            return IndexChange(
                event.originator_id, event.originator_version, None, problem=describe(error)
            )

    def _report_isolated(self, row: IsolatedDeadline, report: TickReport) -> None:
        report.isolated += 1
        if row.stage == "index":
            self.metrics.failed.labels("index").inc()
        log.error(
            "deadline of interview %s (%s due %s, version %d) isolated at %s: %s; "
            "see `interviewctl deadlines isolated`",
            row.interview_id,
            row.what or "?",
            row.due_at or "?",
            row.version,
            row.stage,
            row.error,
        )

    def release(self, interview_id: UUID) -> bool:
        """Puts an isolated deadline back from what the aggregate says now (after the
        cause was fixed); False if it was not isolated."""
        with self._lock:
            app = self.container.interviews()
            index = self.index()
            index.create()
            if not index.release(interview_id):
                return False
            self._settle(app, index, interview_id)
            self.metrics.isolated.set(index.count_isolated())
            return True

    def _forget(self, index: DeadlineIndex, interview_id: UUID, expired_version: int) -> None:
        """Drops a deadline once ``Expired`` is recorded (the log would drop it later too)."""
        index.clear(interview_id, below=expired_version)

    @staticmethod
    def _settle(app: InterviewsApplication, index: DeadlineIndex, interview_id: UUID) -> None:
        """Puts a refused row right from what the aggregate says now."""
        try:
            interview = app.get_interview(interview_id)
        except InterviewNotFoundError:
            index.clear(interview_id, below=2**31 - 1)
            return
        what, due_at = interview.open_deadline or (None, None)
        if what is not None and due_at is not None:
            index.put(Deadline(interview_id, what, due_at, interview.version))
        else:
            index.clear(interview_id, below=interview.version + 1)

    def _pause_after(self, report: TickReport) -> float:
        if not report.leader:
            return self.max_sleep
        if report.more and not report.failed:
            return 0.0
        if report.next_due is None:
            return self.max_sleep
        seconds = (report.next_due - self.clock()).total_seconds()
        if seconds <= 0:
            return RETRY_SECONDS if report.failed else MIN_PAUSE_SECONDS
        return min(seconds, self.max_sleep)

    # ---------------------------------------------------------------- wiring

    def _ensure(self) -> tuple[Lease, DeadlineIndex]:
        if self._engine is None:
            settings = self.container.settings
            self._engine = create_engine(
                settings.database_url,
                settings.data_dir / "interviews.sqlite",
                **({"pool_size": 2, "max_overflow": 2} if settings.database_url else {}),
            )
        if self._index is None:
            self._index = DeadlineIndex(self._engine)
        if self._lease is None:
            self._lease = leader_lease(self._engine, FOLLOWER, self.holder, ttl=self.lease_seconds)
        return self._lease, self._index

    def _attach(self, app: InterviewsApplication) -> None:
        """Wakes on this process's new invitations and offers (earlier deadlines)."""
        if self._app is app:
            return
        if self._app is not None:
            with contextlib.suppress(ValueError):
                self._app.listeners.remove(self._on_recordings)
        app.listeners.append(self._on_recordings)
        self._app = app

    def _on_recordings(self, recordings: list[Any]) -> None:
        if any(
            isinstance(r.domain_event, Interview.Invited | Interview.OfferExtended)
            for r in recordings
        ):
            self._wake.set()

    def _set_leader(self, leader: bool) -> None:
        if leader != self.is_leader:
            log.info(
                "deadline scheduler %s %s",
                self.holder,
                "now leads" if leader else "is no longer leading",
            )
        self.is_leader = leader


class SchedulerNotReadyError(Exception):
    """The scheduler cannot expire deadlines now."""


class SchedulerCollector:
    """The scheduler's counters, read at scrape time."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        s = self.scheduler
        yield GaugeMetricFamily(
            "scheduler_leader", "1 while this scheduler holds the lease", value=int(s.is_leader)
        )
        yield CounterMetricFamily(
            "scheduler_expired", "Invitations and offers expired", value=s.expired_total
        )
        yield CounterMetricFamily(
            "scheduler_failures",
            "Deadlines that could not be expired or settled, and ticks that failed",
            value=s.failed_total + s.tick_failures_total,
        )


def start_scheduler(container: InterviewsProvider, registry: Any = None) -> Scheduler:
    """The deadline scheduler on a background thread of this process; ``stop()`` it
    before the container closes. Its metrics go to ``registry`` (the interviews app's)."""
    return Scheduler(container, registry=registry).start()
