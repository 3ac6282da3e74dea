"""The consumer loop: ``ConsumerRunner`` feeds a ``ConsumerSpec`` from a source,
exactly once in effect.

For every polled batch the runner opens ONE transaction in the consumer's own
database and in it skips events already processed (by event id), parks the
events of interviews that have a parked event, hands the rest to
``spec.apply`` as one ``Batch``, records their ids and stores the source's
position (Kafka offsets or log position); then it commits and calls
``on_committed``. A crash anywhere replays the batch, and the replay changes
nothing twice.

Poison messages (undecodable, unknown type, newer ``schema_version``, invalid
fields) go to the source's dead-letter topic. A batch that ``spec.apply``
refuses is applied again event by event, each retried with backoff; an event
that still fails is *parked* (``parked_events``) with every later event of its
interview, so per-interview order holds while other interviews go on.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from ...contracts import EventEnvelope, UnsupportedEventError, decode_envelope
from ..consumer import INFRASTRUCTURE_ERRORS, Batch, ConsumerSpec
from ..db import SMALL_BATCH
from ..migrations import SchemaError
from ..pipeline import pipelined
from ..readiness import NotReadyError, ReadinessRules, schema_problem
from .collector import cycle_collection_paused
from .metrics import RunnerMetrics, RunnerStats
from .parked import count_parked, park
from .source import ReceivedTraceparents, Source, SourceRecord, event_log_context
from .tables import (
    migrate_consumer_database,
    processed_or_parked,
    record_processed,
)

log = logging.getLogger(__name__)

Item = tuple[SourceRecord, EventEnvelope | None]  # a record and its envelope (None: poison)


class ConsumerRunner:
    """Runs one ``ConsumerSpec`` over one source until ``stop()``."""

    def __init__(
        self,
        spec: ConsumerSpec,
        source: Source,
        *,
        registry: Any = None,
        max_attempts: int = 3,
        retry_backoff: float = 0.2,
        poll_timeout: float = 1.0,
        max_backoff: float = 10.0,
        readiness: ReadinessRules | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.source = source
        self.metrics = RunnerMetrics.for_registry(registry)
        self.readiness = readiness or ReadinessRules()
        self.clock = clock
        # What readiness judges (see check_ready).
        self.halted: str | None = None  # why it stopped consuming (an unknown schema)
        self.lag: int | None = None
        self._behind_since: float | None = None
        self._recent_parked: deque[bool] = deque(maxlen=self.readiness.parked_window)
        self._last_error: str | None = None
        self._lag_placeholder: tuple[str, str, str] | None = None
        # Always exported, from before the first batch: a series that is 0, not none.
        self.metrics.parked.labels(spec.group)
        self._observe_lag(None)
        self.max_attempts = max_attempts
        self.retry_backoff = retry_backoff
        self.poll_timeout = poll_timeout
        self.max_backoff = max_backoff
        self.stats = RunnerStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._opened = threading.Event()
        self._parked_checked = 0.0
        self._conn: sa.Connection | None = None  # the runner thread's (see _connection)

    @property
    def group(self) -> str:
        return self.spec.group

    @property
    def engine(self) -> sa.Engine:
        return self.spec.engine

    # ---------------------------------------------------------------- control

    def stop(self) -> None:
        self._stop.set()
        self.source.interrupt()

    def start(self) -> ConsumerRunner:
        """Runs in a background thread; ``stop()`` then ``join()`` to end it."""
        self._thread = threading.Thread(target=self.run, name=f"consumer-{self.group}", daemon=True)
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_opened(self, timeout: float) -> bool:
        return self._opened.wait(timeout)

    def run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                migrate_consumer_database(self.spec)
                self.source.open(self.group, self.engine, self.metrics)
                break
            except SchemaError as error:
                # Its database does not fit this code (newer, or behind with auto
                # migration off): say so in readiness, never consume.
                log.error("consumer %s: cannot start: %s", self.group, error)
                self.halted = str(error)
                return
            except Exception as error:
                self._last_error = f"{type(error).__name__}: {error}"
                log.warning("consumer %s: cannot start (%s), retrying", self.group, error)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
        else:
            return
        self._opened.set()
        # What the process holds once it consumes (modules, engines, clients) lives
        # as long as it does: out of the collector's sight, a batch's envelopes no
        # longer make every full collection scan it again.
        gc.freeze()
        self._refresh_parked(force=True)
        backoff = 0.2
        try:
            while not self._stop.is_set():
                try:
                    records = self.source.poll(self.poll_timeout)
                    if records:
                        with self.source.hold(records) as claimed:
                            if claimed:
                                self.process(claimed)
                    self._observe_lag(self.source.update_lag(self.metrics, self.group))
                    self._refresh_parked()
                    backoff = 0.2
                except Exception as error:
                    self.stats.errors += 1
                    self._let_go()
                    problem = schema_problem(error)
                    if problem is not None:
                        self._step_aside(problem)
                        continue
                    log.warning(
                        "consumer %s: %s: %s; replaying from the last commit in %.1fs",
                        self.group,
                        type(error).__name__,
                        error,
                        backoff,
                    )
                    self._safe(self.source.rewind)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, self.max_backoff)
        finally:
            self._let_go()
            self._safe(self.source.close)
            log.info("consumer %s stopped", self.group)

    # ------------------------------------------------------------- processing

    def process(self, records: Sequence[SourceRecord]) -> None:
        """One batch: dead-letter the poison, apply the rest in one transaction, with
        the cycle collector paused (``cycle_collection_paused``)."""
        with cycle_collection_paused():
            self._process(records)

    def _process(self, records: Sequence[SourceRecord]) -> None:
        items = [(record, self._decode(record)) for record in records]
        failure = self._commit(items, records)
        if failure is not None:
            log.warning(
                "consumer %s: batch failed (%s); applying it event by event", self.group, failure
            )
            for record, envelope in items:
                if envelope is None:  # dead-lettered: only its position moves on
                    if (stuck := self._commit([(record, None)], [record])) is not None:
                        raise stuck  # nothing of the events' doing: run() replays
                else:
                    with event_log_context(record, envelope):
                        self._apply_or_park(record, envelope)
        self.halted = None
        positions = [e.position for _, e in items if e is not None]
        if positions and self.spec.on_committed is not None:
            try:
                self.spec.on_committed(max(positions))
            except Exception:
                log.exception("consumer %s: on_committed failed", self.group)

    def _commit(
        self, items: Sequence[Item], records: Sequence[SourceRecord], again: bool = True
    ) -> Exception | None:
        """``items`` applied and the position after ``records`` stored, in one
        transaction; returns why the consumer refused them (None: committed).

        The small batches of light traffic are ``pipelined``: the writes go with the
        COMMIT, so the effect is visible a few round trips after the batch was read,
        not one round trip per statement; a large batch writes by COPY, whose round
        trips the batch amortises.

        Raises what is not the events' fault, never a reason to park: the
        consumer's database being down (run() backs off and replays the batch) or
        a schema this code does not know (run() steps aside; tried ``again`` first
        when the spec reads ahead, whose guess of a table may be out of date)."""
        try:
            conn = self._connection()
            together = pipelined(conn) if len(records) <= SMALL_BATCH else contextlib.nullcontext()
            with conn.begin(), together:
                applied, duplicates, processed = self._apply(conn, items)
                record_processed(conn, processed)
                self.source.store_position(conn, records)
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception as failure:
            if schema_problem(failure) is not None:
                if again and self.spec.read_ahead is not None:
                    return self._commit(items, records, again=False)
                raise
            self.metrics.handler_failures.labels(self.group).inc()
            return failure
        self.source.committed(records)
        # Counted once committed: whoever reads the counts finds the effects.
        self.stats.processed += applied
        self.stats.duplicates += duplicates
        self.metrics.processed.labels(self.group).inc(applied)
        self.metrics.duplicates.labels(self.group).inc(duplicates)
        return None

    def _connection(self) -> sa.Connection:
        """The connection the batches are applied on, held from one batch to the next:
        no pool checkout, ping and reset around each batch. A session the server
        ended fails the batch, which ``run()`` replays; it also lets the connection
        go (``_let_go``), so the next batch checks out a new one, pinged by the pool."""
        if self._conn is None:
            self._conn = self.engine.connect()
        return self._conn

    def _let_go(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._safe(conn.close)

    def _decode(self, record: SourceRecord) -> EventEnvelope | None:
        """The record's envelope; None for poison, sent to the dead-letter topic."""
        if record.envelope is not None:
            return record.envelope
        try:
            return decode_envelope(record.raw or b"")
        except UnsupportedEventError as error:
            self.source.dead_letter(record, str(error), self.group)
            self.stats.dead_letters += 1
            self.metrics.dead_letters.labels(self.group).inc()
            log.warning(
                "consumer %s: poison message at %s to the DLQ: %s",
                self.group,
                record.where(),
                error,
            )
            return None

    def _apply(
        self, conn: sa.Connection, items: Sequence[Item]
    ) -> tuple[int, int, list[dict[str, Any]]]:
        """In ``conn``'s transaction: ``spec.apply`` on the batch's new events of
        interviews that are not parked, parking the others' behind their interview;
        returns how many it applied, how many it skipped as duplicates, and the
        ``processed_events`` rows of those it applied (for the caller to record)."""
        # Each event's ids as text, made once (``str`` of a UUID is not free).
        keyed = [
            (str(envelope.id), str(envelope.interview_id), record, envelope)
            for record, envelope in items
            if envelope is not None
        ]
        if not keyed:
            return 0, 0, []
        if (read_ahead := self.spec.read_ahead) is not None:  # sent with the read below
            read_ahead(conn, [envelope for _, _, _, envelope in keyed])
        seen, blocked = processed_or_parked(
            conn,
            self.group,
            list({event_id for event_id, _, _, _ in keyed}),
            list({interview_id for _, interview_id, _, _ in keyed}),
        )
        batch: list[EventEnvelope] = []
        traceparents = ReceivedTraceparents(self.group)
        processed: list[dict[str, Any]] = []
        duplicates = 0
        for event_id, interview_id, record, envelope in keyed:
            if event_id in seen:
                duplicates += 1
                continue
            seen.add(event_id)
            if interview_id in blocked:
                reason = f"interview parked behind event {blocked[interview_id]}"
                self._park(conn, record, envelope, reason, attempts=0)
                continue
            traceparents.receive(event_id, interview_id, record, envelope)
            batch.append(envelope)
            processed.append(
                {"group": self.group, "event_id": event_id, "position": envelope.position}
            )
        if batch:
            self.spec.apply(conn, Batch(batch, traceparents))
            self._recent_parked.extend([False] * min(len(batch), self.readiness.parked_window))
        return len(batch), duplicates, processed

    def _apply_or_park(self, record: SourceRecord, envelope: EventEnvelope) -> None:
        """One event in its own transaction, retried with backoff, else parked."""
        delay = self.retry_backoff
        attempt = 0
        while (failure := self._commit([(record, envelope)], [record])) is not None:
            attempt += 1
            log.warning(
                "consumer %s: attempt %d/%d failed: %s",
                self.group,
                attempt,
                self.max_attempts,
                failure,
            )
            if attempt >= self.max_attempts:
                self._park_failed(record, envelope, failure)
                return
            self._stop.wait(delay)
            delay *= 2

    def _park_failed(
        self, record: SourceRecord, envelope: EventEnvelope, error: BaseException
    ) -> None:
        with self.engine.begin() as conn:
            message = f"{type(error).__name__}: {error}"
            self._park(conn, record, envelope, message, attempts=self.max_attempts)
            self.source.store_position(conn, [record])
        self.source.committed([record])
        log.error(
            "consumer %s: parked %s %s of interview %s after %d attempts: %s",
            self.group,
            envelope.type,
            envelope.id,
            envelope.interview_id,
            self.max_attempts,
            error,
        )

    def _park(
        self,
        conn: sa.Connection,
        record: SourceRecord,
        envelope: EventEnvelope,
        error: str,
        *,
        attempts: int,
    ) -> None:
        park(conn, self.group, envelope, where=record.where(), error=error, attempts=attempts)
        self.stats.parked += 1
        self._recent_parked.append(True)
        self._parked_checked = 0.0

    # -------------------------------------------------------------- readiness

    def check_ready(self) -> None:
        """Raises ``NotReadyError`` saying why this consumer cannot do its work."""
        rules = self.readiness
        if self.halted is not None:
            raise NotReadyError(f"consumer {self.group} stopped consuming: {self.halted}")
        if not self._opened.is_set():
            raise NotReadyError(
                f"consumer {self.group} is not consuming yet: {self._last_error or 'starting'}"
            )
        if self._thread is not None and not self._thread.is_alive() and not self._stop.is_set():
            raise NotReadyError(f"consumer {self.group}: its thread has ended")
        recent = list(self._recent_parked)
        if len(recent) == rules.parked_window and all(recent):
            raise NotReadyError(
                f"consumer {self.group} parked each of the last {rules.parked_window} events "
                "(interviewctl dlq list)"
            )
        since = self._behind_since
        if since is not None and self.clock() - since > rules.lag_seconds:
            raise NotReadyError(
                f"consumer {self.group} is {self.lag} events behind (more than "
                f"{rules.max_lag}) for {self.clock() - since:.0f}s (more than "
                f"{rules.lag_seconds:g}s)"
            )
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as error:  # any failure means not ready
            raise NotReadyError(
                f"consumer {self.group}: its database does not answer ({type(error).__name__})"
            ) from error
        self.source.check_reachable()

    def _observe_lag(self, lag: int | None) -> None:
        self.lag = lag
        if lag is not None and lag > self.readiness.max_lag:
            if self._behind_since is None:
                self._behind_since = self.clock()
        else:
            self._behind_since = None
        # consumer_lag always has a series: 0 while no partition is this consumer's.
        if lag is None and self._lag_placeholder is None:
            self._lag_placeholder = (self.group, self.source.topic, "none")
            self.metrics.lag.labels(*self._lag_placeholder).set(0)
        elif lag is not None and self._lag_placeholder is not None:
            with contextlib.suppress(KeyError):
                self.metrics.lag.remove(*self._lag_placeholder)
            self._lag_placeholder = None

    def _step_aside(self, problem: str) -> None:
        """Stops consuming without parking or moving past anything: the source is
        closed (a Kafka consumer leaves its group, so another instance takes its
        partitions from the stored offsets), readiness fails with ``problem``, and
        after ``halt_retry_seconds`` the source is opened again."""
        if self.halted != problem:
            log.error(
                "consumer %s: stopped consuming: %s; nothing is parked or skipped, the "
                "position stays where it is; retrying in %.0fs",
                self.group,
                problem,
                self.readiness.halt_retry_seconds,
            )
        self.halted = problem
        self._safe(self.source.rewind)
        self._safe(self.source.close)
        self._stop.wait(self.readiness.halt_retry_seconds)
        while not self._stop.is_set():
            try:
                self.source.open(self.group, self.engine, self.metrics)
                return
            except Exception as error:  # the broker or database is down
                log.warning("consumer %s: cannot reopen (%s), retrying", self.group, error)
                self._stop.wait(min(self.readiness.halt_retry_seconds, self.max_backoff))

    def _refresh_parked(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._parked_checked < 5.0:
            return
        self._parked_checked = now
        try:
            count = count_parked(self.engine, self.group)
        except Exception:
            return
        self.metrics.parked.labels(self.group).set(count)

    def _safe(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:
            log.debug("consumer %s: %s failed", self.group, fn, exc_info=True)
