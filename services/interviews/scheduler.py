"""Deadlines: invitations and offers that nobody answers in time expire.

The command path knows nothing of the scheduler. The scheduler keeps its own
index of open deadlines in the interviews database by following the event
store's interview log (``adapters/deadline_index.py``: the tables, and why the
index never skips or double-applies an event).

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
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import sqlalchemy as sa
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..common.db import create_engine
from .adapters.deadline_index import (
    FOLLOWER,
    OUTAGES,
    Deadline,
    DeadlineIndex,
    IndexChange,
    IsolatedDeadline,
    change_for,
    describe,
)
from .adapters.leases import Lease, leader_lease, new_holder
from .application import InterviewNotFoundError, InterviewsApplication
from .domain import Interview, NotYetDueError, TransitionNotAllowedError
from .settings import InterviewsSettings

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0  # pause before retrying deadlines whose expiry failed
MIN_PAUSE_SECONDS = 0.05  # floor between ticks while rows are due, so nothing spins
MIN_WAKE_INTERVAL = 0.2  # a burst of commits wakes the loop once, not once per batch
ISOLATE_AFTER = 3  # failed expiries of one row in a row before it is set aside


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
        min_wake_interval: float = MIN_WAKE_INTERVAL,
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
        self.failed_total = 0
        self.tick_failures_total = 0
        self.last_tick_ok: float | None = None  # monotonic time of the last good tick
        self.isolate_after = isolate_after
        # Woken by commits, the loop ticks at most this often: each tick reads the
        # new events of the log and writes the index, so a stream of commands is
        # taken in few ticks.
        self.min_wake_interval = min_wake_interval
        self.failed_by_stage: Counter[str] = Counter()  # scheduler_failed_deadlines{stage}
        self.isolated_count = 0  # rows in isolated_deadlines, at the last look
        self.isolated_counted_at = 0.0
        if registry is not None:
            SchedulerCollector.attach(registry, self)
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
                self._stopping.wait(max(0.0, began + self.min_wake_interval - time.monotonic()))
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
            self.failed_total += report.failed
            self._count_isolated(index)
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
            changes = (self._change_for(event) for _, event in batch)
            isolated = index.advance(position, batch[-1][0], [c for c in changes if c])
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
        self.failed_by_stage["expire"] += 1
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
            self.failed_by_stage["index"] += 1
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
            self._count_isolated(index)
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

    def _count_isolated(self, index: DeadlineIndex) -> None:
        self.isolated_count = index.count_isolated()
        self.isolated_counted_at = time.monotonic()

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
    """The Prometheus metrics of the schedulers that report to one registry, read at
    scrape time (a process runs one scheduler; tests may run several)."""

    _by_registry: weakref.WeakKeyDictionary[Any, SchedulerCollector] = weakref.WeakKeyDictionary()

    def __init__(self, *schedulers: Scheduler) -> None:
        self.schedulers: weakref.WeakSet[Scheduler] = weakref.WeakSet(schedulers)

    @classmethod
    def attach(cls, registry: Any, scheduler: Scheduler) -> None:
        """Reports ``scheduler`` in ``registry``, through the registry's one collector."""
        collector = cls._by_registry.get(registry)
        if collector is None:
            collector = cls._by_registry[registry] = cls()
            registry.register(collector)
        collector.schedulers.add(scheduler)

    def collect(self) -> Iterator[Metric]:
        schedulers = list(self.schedulers)
        yield GaugeMetricFamily(
            "scheduler_leader",
            "1 while this scheduler holds the lease",
            value=int(any(s.is_leader for s in schedulers)),
        )
        yield CounterMetricFamily(
            "scheduler_expired",
            "Invitations and offers expired",
            value=sum(s.expired_total for s in schedulers),
        )
        yield CounterMetricFamily(
            "scheduler_failures",
            "Deadlines that could not be expired or settled, and ticks that failed",
            value=sum(s.failed_total + s.tick_failures_total for s in schedulers),
        )
        failed = CounterMetricFamily(
            "scheduler_failed_deadlines",
            "Deadlines the scheduler could not index or expire (each attempt)",
            labels=["stage"],
        )
        for stage, count in sorted(sum((s.failed_by_stage for s in schedulers), Counter()).items()):
            failed.add_metric([stage], count)
        yield failed
        latest = max(schedulers, key=lambda s: s.isolated_counted_at, default=None)
        yield GaugeMetricFamily(
            "scheduler_isolated_deadlines",
            "Deadlines set aside for an operator (interviewctl deadlines isolated)",
            value=latest.isolated_count if latest is not None else 0,
        )
