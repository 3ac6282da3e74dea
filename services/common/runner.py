"""The consumer runner: feeds a ``ConsumerSpec``'s handlers, exactly once in effect.

Events come from a *source*: ``KafkaSource`` (the topic, manual offsets) or
``EmbeddedSource`` (the event store's notification log, read in-process). For
every polled batch the runner opens ONE transaction in the consumer's own
database and in it skips events already processed (by event id), calls the
handler of each event's type, records the processed ids and stores the
source's position (Kafka offsets or log position); then it commits and calls
``on_committed``. A crash anywhere replays the batch, and the replay changes
nothing twice.

Poison messages (undecodable, unknown type, newer ``schema_version``, invalid
fields) go to the dead-letter topic with their original bytes and error
headers. A handler that fails on a well-formed event is retried with backoff;
then that event and every later event of the same interview are *parked*
(table ``parked_events``), so per-interview order holds while other
interviews go on. ``interviewctl dlq list|retry|skip`` resolves parked events.

Tables (created on start, in the consumer's database): ``processed_events``,
``consumer_offsets``, ``consumer_positions``, ``parked_events``.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

import sqlalchemy as sa
from kafka import ConsumerRebalanceListener
from opentelemetry.trace import SpanKind

if TYPE_CHECKING:
    import psycopg

from ..contracts import DLQ_TOPIC, EventEnvelope, UnsupportedEventError, decode_envelope
from .consumer import ConsumerSpec
from .db import DATABASE_OUTAGES
from .logs import EventLogContext, trace_id_from
from .migrations import History, SchemaError, migrate
from .privacy import KeyServiceUnavailable
from .readiness import NotReadyError, ReadinessRules, schema_problem
from .tracing import continued_span

log = logging.getLogger(__name__)

runner_metadata = sa.MetaData()

processed_events = sa.Table(
    "processed_events",
    runner_metadata,
    sa.Column("group", sa.String(100), primary_key=True),
    sa.Column("event_id", sa.String(36), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)
consumer_offsets = sa.Table(
    "consumer_offsets",
    runner_metadata,
    sa.Column("group", sa.String(100), primary_key=True),
    sa.Column("topic", sa.String(255), primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("next_offset", sa.BigInteger, nullable=False),
)
consumer_positions = sa.Table(
    "consumer_positions",
    runner_metadata,
    sa.Column("group", sa.String(100), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)
parked_events = sa.Table(
    "parked_events",
    runner_metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("group", sa.String(100), nullable=False),
    sa.Column("interview_id", sa.String(36), nullable=False),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("type", sa.String(100), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("source", sa.String(255), nullable=True),  # topic/partition/offset, if any
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("parked_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("group", "event_id", name="uq_parked_group_event"),
    sa.Index("ix_parked_group_interview", "group", "interview_id"),
)

# The runner's tables are a migration history of their own, applied to every
# database a consumer writes to (services/common/runner_migrations).
RUNNER_HISTORY = History(
    name="runner",
    package="services.common.runner_migrations",
    metadata=runner_metadata,
    first_release_tables=("processed_events", "consumer_offsets", "consumer_positions",
                          "parked_events"),
)  # fmt: skip

# Errors of the consumer's database itself (down, disconnected), or of the key service
# that opens sealed texts: never a reason to park an event; the runner backs off and
# replays the batch instead.
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    *DATABASE_OUTAGES,
    KeyServiceUnavailable,
)


# ------------------------------------------------------------------ records


@dataclass
class SourceRecord:
    """One message from a source: already an envelope (embedded) or raw bytes (Kafka)."""

    envelope: EventEnvelope | None = None
    raw: bytes | None = None
    key: bytes | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)

    def where(self) -> str | None:
        if self.topic is None:
            return None
        return f"{self.topic}/{self.partition}/{self.offset}"


class Source(Protocol):
    """Where a runner's events come from, and where it keeps its position."""

    def open(self, runner: ConsumerRunner) -> None: ...

    def poll(self, timeout: float) -> list[SourceRecord]: ...

    def hold(
        self, records: list[SourceRecord]
    ) -> contextlib.AbstractContextManager[list[SourceRecord]]:
        """While a batch is processed: the records still ours (no rebalance meanwhile)."""
        ...

    def store_position(self, conn: sa.Connection, records: Sequence[SourceRecord]) -> None:
        """Inside the batch's transaction: the position after ``records``."""
        ...

    def committed(self, records: Sequence[SourceRecord]) -> None:
        """After the transaction committed."""
        ...

    def rewind(self) -> None:
        """Forget what was read but not committed (the batch will be read again)."""
        ...

    def dead_letter(self, record: SourceRecord, error: str, group: str) -> None: ...

    def interrupt(self) -> None:
        """Wake up a blocked ``poll`` (used by ``stop``)."""
        ...

    def update_lag(self, metrics: RunnerMetrics, group: str) -> int | None:
        """Sets the lag gauges; returns the total lag (None: no partition is ours)."""
        ...

    def close(self) -> None: ...


# ------------------------------------------------------------------ metrics


class RunnerMetrics:
    """Prometheus metrics of every runner sharing one registry (labelled by group)."""

    _by_registry: weakref.WeakKeyDictionary[Any, RunnerMetrics] = weakref.WeakKeyDictionary()

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Gauge

        self.lag = Gauge(
            "consumer_lag",
            "Messages (Kafka) or positions (embedded) the consumer is behind, per partition",
            ["group", "topic", "partition"],
            registry=registry,
        )
        self.processed = Counter(
            "consumer_events_processed",
            "Events applied by the handlers",
            ["group"],
            registry=registry,
        )
        self.duplicates = Counter(
            "consumer_duplicates_skipped",
            "Events skipped as already processed",
            ["group"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "consumer_dead_letters",
            "Poison messages sent to the DLQ topic",
            ["group"],
            registry=registry,
        )
        self.handler_failures = Counter(
            "consumer_handler_failures",
            "Handler exceptions (each attempt)",
            ["group"],
            registry=registry,
        )
        self.parked = Gauge(
            "consumer_parked_events",
            "Events parked after handler failures",
            ["group"],
            registry=registry,
        )

    @classmethod
    def existing(cls, registry: Any) -> RunnerMetrics | None:
        """The metrics a runner registered on ``registry``, if one runs in this process."""
        return cls._by_registry.get(registry)

    def group_lag(self, group: str) -> int | None:
        """The group's lag summed over its partitions; ``None`` before the first reading."""
        samples = [
            s.value
            for metric in self.lag.collect()
            for s in metric.samples
            if s.labels.get("group") == group
        ]
        return int(sum(samples)) if samples else None

    def group_dead_letters(self, group: str) -> int:
        """Poison messages the group sent to the DLQ since this process started."""
        return int(
            sum(
                s.value
                for metric in self.dead_letters.collect()
                for s in metric.samples
                if s.labels.get("group") == group and s.name.endswith("_total")
            )
        )

    @classmethod
    def for_registry(cls, registry: Any) -> RunnerMetrics:
        if registry is None:
            from prometheus_client import CollectorRegistry

            return cls(CollectorRegistry())
        metrics = cls._by_registry.get(registry)
        if metrics is None:
            metrics = cls._by_registry[registry] = cls(registry)
        return metrics


# ------------------------------------------------------------------ the runner


class HandlerFailedError(Exception):
    def __init__(self, envelope: EventEnvelope, error: BaseException) -> None:
        super().__init__(f"{envelope.type} {envelope.id}: {type(error).__name__}: {error}")
        self.envelope = envelope
        self.error = error


@dataclass
class RunnerStats:
    batches: int = 0
    processed: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    parked: int = 0
    errors: int = 0
    last_position: int = 0


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

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

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
                self.source.open(self)
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
            self._safe(self.source.close)
            log.info("consumer %s stopped", self.group)

    # ------------------------------------------------------------- processing

    def process(self, records: Sequence[SourceRecord]) -> None:
        """One batch: dead-letter the poison, apply the rest in one transaction."""
        items: list[tuple[SourceRecord, EventEnvelope | None]] = []
        for record in records:
            envelope = record.envelope
            if envelope is None:
                try:
                    envelope = decode_envelope(record.raw or b"")
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
            items.append((record, envelope))
        try:
            with self.engine.begin() as conn:
                self._apply(conn, items)
                self.source.store_position(conn, records)
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception as failure:  # a handler, or a write it deferred to the commit
            if schema_problem(failure) is not None:
                raise  # never park for it: run() steps aside
            log.warning(
                "consumer %s: batch failed (%s); applying it event by event",
                self.group,
                failure,
            )
            for item in items:
                self._apply_carefully(item)
        else:
            self.source.committed(records)
        self.halted = None
        self.stats.batches += 1
        positions = [e.position for _, e in items if e is not None]
        if positions:
            self.stats.last_position = max(self.stats.last_position, *positions)
            if self.spec.on_committed is not None:
                try:
                    self.spec.on_committed(max(positions))
                except Exception:
                    log.exception("consumer %s: on_committed failed", self.group)

    def _apply(
        self,
        conn: sa.Connection,
        items: Sequence[tuple[SourceRecord, EventEnvelope | None]],
    ) -> None:
        envelopes = [e for _, e in items if e is not None]
        if not envelopes:
            return
        ids = list({str(e.id) for e in envelopes})
        interviews = list({str(e.interview_id) for e in envelopes})
        seen = set(
            conn.execute(
                sa.select(processed_events.c.event_id).where(
                    processed_events.c.group == self.group,
                    _one_of(conn, processed_events.c.event_id, ids),
                )
            ).scalars()
        )
        parked_rows = conn.execute(
            sa.select(parked_events.c.event_id, parked_events.c.interview_id).where(
                parked_events.c.group == self.group,
                _one_of(conn, parked_events.c.interview_id, interviews),
            )
        ).all()
        seen.update(row.event_id for row in parked_rows)
        blocked = {row.interview_id: row.event_id for row in parked_rows}
        done: list[dict[str, Any]] = []
        duplicates = 0
        for record, envelope in items:
            if envelope is None:
                continue
            event_id = str(envelope.id)
            if event_id in seen:
                duplicates += 1
                continue
            seen.add(event_id)
            interview_id = str(envelope.interview_id)
            if interview_id in blocked:
                self._park(
                    conn,
                    record,
                    envelope,
                    f"interview parked behind event {blocked[interview_id]}",
                    attempts=0,
                )
                continue
            handler = self.spec.handlers.get(envelope.type)
            if handler is not None:
                try:
                    with (
                        self._span(record, envelope),
                        _event_log_context(record, envelope),
                    ):
                        handler(conn, envelope)
                except INFRASTRUCTURE_ERRORS:
                    raise
                except Exception as error:
                    self.metrics.handler_failures.labels(self.group).inc()
                    raise HandlerFailedError(envelope, error) from error
            done.append({"group": self.group, "event_id": event_id, "position": envelope.position})
        if self.spec.flush is not None:
            self.spec.flush(conn)
        if done:
            _record_processed(conn, done)
            self._recent_parked.extend([False] * min(len(done), self.readiness.parked_window))
        self.stats.processed += len(done)
        self.stats.duplicates += duplicates
        self.metrics.processed.labels(self.group).inc(len(done))
        self.metrics.duplicates.labels(self.group).inc(duplicates)

    def _span(
        self, record: SourceRecord, envelope: EventEnvelope
    ) -> contextlib.AbstractContextManager[Any]:
        """The consumer span of one event, continuing the command's trace: from the
        Kafka ``traceparent`` header, or (embedded) the envelope read in-process."""
        return continued_span(
            f"{self.group} apply",
            _traceparent(record) or envelope.traceparent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka" if record.topic else "event store",
                "messaging.operation.type": "process",
                "messaging.consumer.group.name": self.group,
                "messaging.message.id": str(envelope.id),
                "interview.id": str(envelope.interview_id),
                "event.type": envelope.type,
            },
        )

    def _apply_carefully(self, item: tuple[SourceRecord, EventEnvelope | None]) -> None:
        """One event in its own transaction, retried with backoff, else parked."""
        record, envelope = item
        with _event_log_context(record, envelope):
            self._apply_or_park(record, envelope, item)

    def _apply_or_park(
        self,
        record: SourceRecord,
        envelope: EventEnvelope | None,
        item: tuple[SourceRecord, EventEnvelope | None],
    ) -> None:
        delay = self.retry_backoff
        last_error: BaseException | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                with self.engine.begin() as conn:
                    self._apply(conn, [item])
                    self.source.store_position(conn, [record])
            except INFRASTRUCTURE_ERRORS:
                raise
            except Exception as failure:
                if schema_problem(failure) is not None:
                    raise  # never park for it: run() steps aside
                last_error = failure.error if isinstance(failure, HandlerFailedError) else failure
                if not isinstance(failure, HandlerFailedError):
                    self.metrics.handler_failures.labels(self.group).inc()
                log.warning(
                    "consumer %s: attempt %d/%d failed: %s",
                    self.group,
                    attempt,
                    self.max_attempts,
                    failure,
                )
                if attempt < self.max_attempts:
                    self._stop.wait(delay)
                    delay *= 2
                continue
            self.source.committed([record])
            return
        assert envelope is not None and last_error is not None
        with self.engine.begin() as conn:
            self._park(
                conn,
                record,
                envelope,
                f"{type(last_error).__name__}: {last_error}",
                attempts=self.max_attempts,
            )
            self.source.store_position(conn, [record])
        self.source.committed([record])
        log.error(
            "consumer %s: parked %s %s of interview %s after %d attempts: %s",
            self.group,
            envelope.type,
            envelope.id,
            envelope.interview_id,
            self.max_attempts,
            last_error,
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
        conn.execute(
            parked_events.insert().values(
                group=self.group,
                interview_id=str(envelope.interview_id),
                event_id=str(envelope.id),
                type=envelope.type,
                version=envelope.version,
                position=envelope.position,
                source=record.where(),
                payload=envelope.model_dump_json(),
                error=error[:4000],
                attempts=attempts,
                parked_at=datetime.now(UTC),
            )
        )
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
        if self._thread is not None and not self._thread.is_alive() and not self.stopping:
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
        reachable = getattr(self.source, "check_reachable", None)
        if reachable is not None:
            reachable()

    def _observe_lag(self, lag: int | None) -> None:
        self.lag = lag
        if lag is not None and lag > self.readiness.max_lag:
            if self._behind_since is None:
                self._behind_since = self.clock()
        else:
            self._behind_since = None
        # consumer_lag always has a series: 0 while no partition is this consumer's.
        if lag is None and self._lag_placeholder is None:
            topic = str(getattr(self.source, "topic", "event-store"))
            self._lag_placeholder = (self.group, topic, "none")
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
                self.source.open(self)
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


def _event_log_context(
    record: SourceRecord, envelope: EventEnvelope | None
) -> contextlib.AbstractContextManager[None]:
    """Log lines written while one event is applied carry its ids."""
    if envelope is None:
        return contextlib.nullcontext()
    return EventLogContext(
        envelope.correlation_id,
        envelope.interview_id,
        trace_id_from(_traceparent(record) or envelope.traceparent or envelope.correlation_id),
    )


def _traceparent(record: SourceRecord) -> bytes | None:
    for key, value in record.headers:
        if key == "traceparent":
            return value
    return None


def migrate_consumer_database(spec: ConsumerSpec) -> None:
    """The runner's tables and the service's own (``spec.histories``) at their heads
    in the consumer's database (or ``SchemaError`` if it must not be used)."""
    migrate(
        spec.engine,
        [RUNNER_HISTORY, *spec.histories],
        auto=spec.auto_migrate,
        database=f"database of consumer {spec.group}",
    )


def _one_of(conn: sa.Connection, column: sa.Column[str], values: list[str]) -> Any:
    """``column IN values``; one array parameter on PostgreSQL (a 500-item IN list
    makes psycopg parse a 500-placeholder statement in Python on every batch)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == sa.any_(sa.literal(values, ARRAY(sa.String)))
    return column.in_(values)


def _record_processed(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Inserts the processed ids; with COPY on PostgreSQL (several times cheaper
    than a multi-row INSERT, which psycopg parses in Python)."""
    if conn.dialect.name != "postgresql":
        conn.execute(processed_events.insert(), rows)
        return
    statement = 'COPY processed_events ("group", event_id, position) FROM STDIN'
    # On PostgreSQL the driver connection is psycopg's (the only driver configured).
    dbapi = cast("psycopg.Connection[Any]", conn.connection.dbapi_connection)
    cursor = dbapi.cursor()
    with cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row((row["group"], row["event_id"], row["position"]))


def _upsert_greater(
    conn: sa.Connection,
    table: sa.Table,
    keys: dict[str, Any],
    column: str,
    value: int,
) -> None:
    """Sets ``column`` to ``value`` for the row ``keys``, never moving it backwards."""
    dialect = conn.dialect.name
    if dialect in ("postgresql", "sqlite"):
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            # The two dialects' inserts share on_conflict_do_update(index_elements=,
            # set_=), but no common type declares it.
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        stmt = insert(table).values(**keys, **{column: value})
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keys),
            set_={column: stmt.excluded[column]},
            where=table.c[column] < stmt.excluded[column],
        )
        conn.execute(stmt)
        return
    where = sa.and_(*(table.c[k] == v for k, v in keys.items()))
    current = conn.execute(sa.select(table.c[column]).where(where)).scalar()
    if current is None:
        conn.execute(table.insert().values(**keys, **{column: value}))
    elif current < value:
        conn.execute(table.update().where(where).values(**{column: value}))


# ------------------------------------------------------------------ sources


class EmbeddedSource:
    """The event store's log, read in-process: ``read(after, limit)`` + a wake-up flag.

    Waits on ``wake`` (set after every committed batch of the event store) and
    polls every ``poll_seconds`` as a fallback: no busy loop.
    """

    def __init__(
        self,
        read: Callable[[int, int], list[EventEnvelope]],
        wake: threading.Event,
        *,
        batch: int = 500,
        poll_seconds: float = 2.0,
        max_position: Callable[[], int] | None = None,
    ) -> None:
        self.read = read
        self.wake = wake
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.max_position = max_position
        self.reads = 0
        self._committed = 0
        self._read_to = 0
        self._group = ""
        self._engine: sa.Engine | None = None
        self._interrupted = False

    def open(self, runner: ConsumerRunner) -> None:
        self._group = runner.group
        self._engine = runner.engine
        with runner.engine.connect() as conn:
            value = conn.execute(
                sa.select(consumer_positions.c.position).where(
                    consumer_positions.c.group == runner.group
                )
            ).scalar()
        self._committed = self._read_to = int(value or 0)

    @property
    def position(self) -> int:
        return self._committed

    def poll(self, timeout: float) -> list[SourceRecord]:
        self.wake.clear()
        self.reads += 1
        envelopes = self.read(self._read_to, self.batch)
        if not envelopes:
            if not self._interrupted:
                self.wake.wait(max(timeout, self.poll_seconds))
            return []
        self._read_to = envelopes[-1].position
        return [SourceRecord(envelope=e) for e in envelopes]

    def hold(
        self, records: list[SourceRecord]
    ) -> contextlib.AbstractContextManager[list[SourceRecord]]:
        return contextlib.nullcontext(records)

    def store_position(self, conn: sa.Connection, records: Sequence[SourceRecord]) -> None:
        position = max(r.envelope.position for r in records if r.envelope is not None)
        _upsert_greater(conn, consumer_positions, {"group": self._group}, "position", position)

    def committed(self, records: Sequence[SourceRecord]) -> None:
        positions = [r.envelope.position for r in records if r.envelope is not None]
        if positions:
            self._committed = max(self._committed, *positions)

    def rewind(self) -> None:
        self._read_to = self._committed

    def dead_letter(self, record: SourceRecord, error: str, group: str) -> None:
        raise RuntimeError(f"the embedded source produced an invalid event: {error}")

    def interrupt(self) -> None:
        self._interrupted = True
        self.wake.set()

    def update_lag(self, metrics: RunnerMetrics, group: str) -> int | None:
        if self.max_position is None:
            return None
        try:
            lag = max(self.max_position() - self._committed, 0)
        except Exception:
            return None
        metrics.lag.labels(group, "event-store", "0").set(lag)
        return lag

    def close(self) -> None:
        pass


class KafkaSource:
    """A topic read with a consumer group; offsets live in the consumer's database.

    On every assignment the consumer seeks to the offsets stored in table
    ``consumer_offsets`` (the earliest offset where none is stored), so a
    rebalance or a restart resumes exactly after the last committed batch.
    Batches are committed to the database before the next ``poll``, and the
    rebalance callbacks run inside ``poll``, so nothing is in flight when
    partitions are revoked.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        dlq_topic: str | None = None,
        max_records: int = 500,
        partitions: int = 6,
        **consumer_overrides: Any,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        default_dlq = DLQ_TOPIC if topic == "interviews.events" else f"{topic}.dlq"
        self.dlq_topic = dlq_topic or default_dlq
        self.max_records = max_records
        self.partitions = partitions  # when it has to create the topic
        self.consumer_overrides = consumer_overrides
        self.consumer: Any = None
        self._producer: Any = None
        self._group = ""
        self._engine: sa.Engine | None = None
        self._committed: dict[Any, int] = {}
        self._needs_seek: set[Any] = set()
        self._lock = threading.RLock()
        self._lag_partitions: set[int] = set()
        self._metrics: RunnerMetrics | None = None

    def open(self, runner: ConsumerRunner) -> None:
        from kafka import KafkaConsumer

        self._group = runner.group
        self._engine = runner.engine
        self._metrics = runner.metrics
        settings: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "group_id": runner.group,
            "client_id": f"{runner.group}-consumer",
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "max_poll_records": self.max_records,
            "session_timeout_ms": 10_000,
            "heartbeat_interval_ms": 3_000,
            "max_poll_interval_ms": 300_000,
            "reconnect_backoff_max_ms": 2_000,
        }
        from .kafka import DLQ_TOPIC_CONFIG, UNLIMITED_RETENTION, ensure_topics

        ensure_topics(
            self.bootstrap_servers,
            {
                self.topic: (self.partitions, UNLIMITED_RETENTION),
                self.dlq_topic: (1, DLQ_TOPIC_CONFIG),
            },
            client_id=f"{runner.group}-admin",
        )
        self.consumer = KafkaConsumer(**(settings | self.consumer_overrides))
        self._await_partitions()
        self.consumer.subscribe([self.topic], listener=_Rebalance(self))

    def _await_partitions(self, timeout: float = 30.0) -> None:
        """Joins the group only once the topic's partitions are known: a topic created
        a moment ago (by us, the relay or an operator) may have no partition metadata
        yet, and a group that joins then is assigned nothing until the next metadata
        refresh, minutes later. Raises (the runner retries) if they never appear."""
        deadline = time.monotonic() + timeout
        while not self.consumer.partitions_for_topic(self.topic):
            if time.monotonic() > deadline:
                raise RuntimeError(f"topic {self.topic} has no partitions after {timeout:.0f}s")
            time.sleep(0.2)

    # -- rebalance

    def load_offsets(self, partitions: Iterable[Any]) -> dict[Any, int]:
        assert self._engine is not None
        wanted = {p.partition: p for p in partitions if p.topic == self.topic}
        if not wanted:
            return {}
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(consumer_offsets.c.partition, consumer_offsets.c.next_offset).where(
                    consumer_offsets.c.group == self._group,
                    consumer_offsets.c.topic == self.topic,
                    consumer_offsets.c.partition.in_(list(wanted)),
                )
            ).all()
        return {wanted[row.partition]: int(row.next_offset) for row in rows}

    def on_assigned(self, partitions: Sequence[Any]) -> None:
        with self._lock:
            self._assign(partitions)

    def _assign(self, partitions: Sequence[Any]) -> None:
        try:
            self._seek_stored(partitions)
        except Exception as error:
            # The database is down: seek before the next poll instead (see poll).
            log.warning("consumer %s: cannot load offsets (%s); will retry", self._group, error)
            self._needs_seek.update(partitions)

    def _seek_stored(self, partitions: Sequence[Any]) -> None:
        offsets = self.load_offsets(partitions)
        for tp in partitions:
            if tp in offsets:
                self.consumer.seek(tp, offsets[tp])
                self._committed[tp] = offsets[tp]
            else:
                self.consumer.seek_to_beginning(tp)
                self._committed.pop(tp, None)
        log.info(
            "consumer %s: assigned %s",
            self._group,
            ", ".join(f"{tp.partition}@{offsets.get(tp, 'earliest')}" for tp in partitions) or "-",
        )

    def on_revoked(self, partitions: Sequence[Any]) -> None:
        # Offsets are committed with the effects, batch by batch; once the batch
        # in progress (if any) has committed there is nothing left to flush.
        with self._lock:
            self._revoke(partitions)

    def _revoke(self, partitions: Sequence[Any]) -> None:
        for tp in partitions:
            self._committed.pop(tp, None)
            self._needs_seek.discard(tp)
            if self._metrics is not None and tp.partition in self._lag_partitions:
                self._lag_partitions.discard(tp.partition)
                with contextlib.suppress(KeyError):
                    self._metrics.lag.remove(self._group, self.topic, str(tp.partition))

    # -- polling

    def poll(self, timeout: float) -> list[SourceRecord]:
        self._seek_pending()
        batches = self.consumer.poll(timeout_ms=int(timeout * 1000), max_records=self.max_records)
        if self._needs_seek:
            batches = {tp: m for tp, m in batches.items() if tp not in self._needs_seek}
            self._seek_pending()
        records: list[SourceRecord] = []
        for messages in batches.values():
            for m in messages:
                records.append(
                    SourceRecord(
                        raw=m.value,
                        key=m.key,
                        topic=m.topic,
                        partition=m.partition,
                        offset=m.offset,
                        headers=list(m.headers or []),
                    )
                )
        return records

    @contextlib.contextmanager
    def hold(self, records: list[SourceRecord]) -> Iterator[list[SourceRecord]]:
        # kafka-python 3 runs the rebalance callbacks on its IO thread; the lock
        # makes a revocation wait for the batch in progress to commit, and
        # records of partitions revoked since the poll are left to their new owner.
        with self._lock:
            assigned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
            yield [r for r in records if (r.topic, r.partition) in assigned]

    def _seek_pending(self) -> None:
        if self._needs_seek:
            assigned = self.consumer.assignment()
            pending = [tp for tp in self._needs_seek if tp in assigned]
            self._seek_stored(pending)
            self._needs_seek.clear()

    def store_position(self, conn: sa.Connection, records: Sequence[SourceRecord]) -> None:
        for (topic, partition), offset in _next_offsets(records).items():
            _upsert_greater(
                conn,
                consumer_offsets,
                {"group": self._group, "topic": topic, "partition": partition},
                "next_offset",
                offset,
            )

    def committed(self, records: Sequence[SourceRecord]) -> None:
        from kafka import TopicPartition

        for (topic, partition), offset in _next_offsets(records).items():
            tp = TopicPartition(topic, partition)
            self._committed[tp] = max(self._committed.get(tp, 0), offset)

    def rewind(self) -> None:
        if self.consumer is None:
            return
        for tp in self.consumer.assignment():
            if tp in self._committed:
                self.consumer.seek(tp, self._committed[tp])
            else:
                offsets = self.load_offsets([tp])
                if tp in offsets:
                    self.consumer.seek(tp, offsets[tp])
                else:
                    self.consumer.seek_to_beginning(tp)

    def dead_letter(self, record: SourceRecord, error: str, group: str) -> None:
        from kafka.errors import MessageSizeTooLargeError

        from .kafka import DLQ_MAX_MESSAGE_BYTES, producer_settings

        if self._producer is None:
            from kafka import KafkaProducer

            self._producer = KafkaProducer(
                **producer_settings(self.bootstrap_servers, client_id=f"{group}-dlq", linger_ms=0)
                | {"max_request_size": DLQ_MAX_MESSAGE_BYTES}
            )
        headers = [(k, v) for k, v in record.headers if k not in _DLQ_HEADER_NAMES]
        headers += [
            ("error", error[:1000].encode("utf-8", "replace")),
            ("source_topic", (record.topic or "").encode()),
            ("source_partition", str(record.partition).encode()),
            ("source_offset", str(record.offset).encode()),
            ("group", group.encode()),
        ]
        send = self._producer.send
        try:
            send(self.dlq_topic, key=record.key, value=record.raw, headers=headers).get(timeout=30)
        except MessageSizeTooLargeError:
            # A dead-letter topic created smaller than its source: keep the consumer
            # going with the first 64 KiB (the source offset in the headers finds the rest).
            size = len(record.raw or b"")
            log.error("consumer %s: poison at %s (%d bytes) too large for %s; truncated",
                      group, record.where(), size, self.dlq_topic)  # fmt: skip
            headers.append(("truncated_from_bytes", str(size).encode()))
            value = (record.raw or b"")[: 64 * 1024]
            send(self.dlq_topic, key=record.key, value=value, headers=headers).get(timeout=30)

    def interrupt(self) -> None:
        if self.consumer is not None:
            with contextlib.suppress(Exception):
                self.consumer.wakeup()

    def update_lag(self, metrics: RunnerMetrics, group: str) -> int | None:
        if self.consumer is None:
            return None
        total: int | None = None
        for tp in self.consumer.assignment():
            try:
                highwater = self.consumer.highwater(tp)
                position = self.consumer.position(tp, timeout_ms=0)
            except Exception:
                continue
            if highwater is None or position is None:
                continue
            lag = max(highwater - position, 0)
            metrics.lag.labels(group, tp.topic, str(tp.partition)).set(lag)
            self._lag_partitions.add(tp.partition)
            total = (total or 0) + lag
        return total

    def check_reachable(self, timeout: float = 2.0) -> None:
        """Raises ``NotReadyError`` unless a bootstrap server accepts a connection."""
        import socket

        for server in self.bootstrap_servers.split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                socket.create_connection((host or "localhost", int(port or 9092)), timeout).close()
                return
            except (OSError, ValueError):
                continue
        raise NotReadyError(f"the broker ({self.bootstrap_servers}) does not answer")

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close(autocommit=False)
            self.consumer = None
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None


_DLQ_HEADER_NAMES = {
    "error", "source_topic", "source_partition", "source_offset", "group", "truncated_from_bytes",
}  # fmt: skip


def _next_offsets(records: Sequence[SourceRecord]) -> dict[tuple[str, int], int]:
    offsets: dict[tuple[str, int], int] = {}
    for r in records:
        if r.topic is None or r.partition is None or r.offset is None:
            continue
        key = (r.topic, r.partition)
        offsets[key] = max(offsets.get(key, 0), r.offset + 1)
    return offsets


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, source: KafkaSource) -> None:
        self.source = source

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.source.on_revoked(list(revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.source.on_assigned(list(assigned))


# ------------------------------------------------------------------ running


def install_signal_handlers(*runners: ConsumerRunner | Any) -> None:
    """SIGTERM and SIGINT stop the runners cleanly (main thread only)."""

    def handler(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping", signum)
        for runner in runners:
            runner.stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def kafka_runner(
    spec: ConsumerSpec,
    bootstrap_servers: str,
    topic: str = "interviews.events",
    *,
    registry: Any = None,
    **options: Any,
) -> ConsumerRunner:
    return ConsumerRunner(spec, KafkaSource(bootstrap_servers, topic), registry=registry, **options)


def embedded_runner(
    spec: ConsumerSpec,
    read: Callable[[int, int], list[EventEnvelope]],
    wake: threading.Event,
    *,
    registry: Any = None,
    max_position: Callable[[], int] | None = None,
    **options: Any,
) -> ConsumerRunner:
    source = EmbeddedSource(read, wake, max_position=max_position)
    return ConsumerRunner(spec, source, registry=registry, **options)


# ------------------------------------------------------------------ parked events


@dataclass(frozen=True)
class ParkedEvent:
    id: int
    group: str
    interview_id: str
    event_id: str
    type: str
    version: int
    position: int
    source: str | None
    error: str
    attempts: int
    parked_at: datetime
    payload: str


def prune_processed(engine: sa.Engine, group: str, keep_positions: int) -> int:
    """Forgets the ids of events more than ``keep_positions`` log positions older
    than the newest one the group processed; returns how many.

    ``processed_events`` only has to catch what can still come again: a relay
    republishing after a crash (from its recorded position, moments behind) or a
    rebalance. Older ids are dead weight, and even if such an event came back
    its effects are guarded by the views' versions and the notifications' stable ids."""
    if keep_positions < 0:
        raise ValueError("keep_positions must be 0 or more")
    migrate(engine, [RUNNER_HISTORY])
    with engine.begin() as conn:
        newest = conn.execute(
            sa.select(sa.func.max(processed_events.c.position)).where(
                processed_events.c.group == group
            )
        ).scalar()
        if newest is None or newest - keep_positions <= 0:
            return 0
        return conn.execute(
            processed_events.delete().where(
                processed_events.c.group == group,
                processed_events.c.position < newest - keep_positions,
            )
        ).rowcount


def count_parked(engine: sa.Engine, group: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(parked_events)
                .where(parked_events.c.group == group)
            ).scalar()
            or 0
        )


def list_parked(
    engine: sa.Engine, group: str, interview_id: str | None = None
) -> list[ParkedEvent]:
    query = sa.select(parked_events).where(parked_events.c.group == group)
    if interview_id:
        query = query.where(parked_events.c.interview_id == interview_id)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(parked_events.c.position, parked_events.c.id)).all()
    return [ParkedEvent(**row._mapping) for row in rows]


@dataclass
class RetryReport:
    applied: list[str] = field(default_factory=list)  # event ids
    still_parked: dict[str, str] = field(default_factory=dict)  # interview id -> error


def retry_parked(spec: ConsumerSpec, interview_id: str | None = None) -> RetryReport:
    """Re-applies parked events in order through the handlers, interview by interview.

    An interview stops at its first event that fails again (it stays parked
    with the new error, and so do the events after it).
    """
    report = RetryReport()
    migrate_consumer_database(spec)
    parked = list_parked(spec.engine, spec.group, interview_id)
    by_interview: dict[str, list[ParkedEvent]] = {}
    for event in parked:
        by_interview.setdefault(event.interview_id, []).append(event)
    for interview, events in by_interview.items():
        for event in events:
            envelope = EventEnvelope.model_validate_json(event.payload)
            try:
                with spec.engine.begin() as conn:
                    already = conn.execute(
                        sa.select(processed_events.c.event_id).where(
                            processed_events.c.group == spec.group,
                            processed_events.c.event_id == event.event_id,
                        )
                    ).first()
                    if already is None:
                        spec.apply(conn, [envelope])
                        conn.execute(
                            processed_events.insert().values(
                                group=spec.group,
                                event_id=event.event_id,
                                position=envelope.position,
                            )
                        )
                    conn.execute(parked_events.delete().where(parked_events.c.id == event.id))
            except INFRASTRUCTURE_ERRORS:
                raise
            except Exception as error:
                message = f"{type(error).__name__}: {error}"
                with spec.engine.begin() as conn:
                    conn.execute(
                        parked_events.update()
                        .where(parked_events.c.id == event.id)
                        .values(error=message[:4000], attempts=parked_events.c.attempts + 1)
                    )
                report.still_parked[interview] = message
                break
            report.applied.append(event.event_id)
        if spec.on_committed is not None and report.applied:
            try:
                spec.on_committed(max(e.position for e in events))
            except Exception:
                log.exception("on_committed failed after a retry")
    return report


def skip_parked(
    engine: sa.Engine,
    group: str,
    *,
    event_id: str | None = None,
    interview_id: str | None = None,
) -> list[str]:
    """Drops parked events without applying them; they count as processed.

    Returns the skipped event ids. With ``event_id``, later parked events of
    its interview stay parked until retried.
    """
    if not event_id and not interview_id:
        raise ValueError("name an event id or an interview id to skip")
    migrate(engine, [RUNNER_HISTORY])
    query = sa.select(parked_events).where(parked_events.c.group == group)
    if event_id:
        query = query.where(parked_events.c.event_id == event_id)
    if interview_id:
        query = query.where(parked_events.c.interview_id == interview_id)
    with engine.begin() as conn:
        rows = conn.execute(query).all()
        for row in rows:
            exists = conn.execute(
                sa.select(processed_events.c.event_id).where(
                    processed_events.c.group == group,
                    processed_events.c.event_id == row.event_id,
                )
            ).first()
            if exists is None:
                conn.execute(
                    processed_events.insert().values(
                        group=group, event_id=row.event_id, position=row.position
                    )
                )
            conn.execute(parked_events.delete().where(parked_events.c.id == row.id))
    return [row.event_id for row in rows]
