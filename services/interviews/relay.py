"""The relay: follows the event store's notification log and publishes to Kafka.

An outbox, read from the log itself. The relay reads the interview events
after its recorded position, publishes them (key = interview id) and records
a new position only once the broker acknowledged every event up to it. A crash
therefore loses nothing and at worst publishes some events again; they keep
their ids, so consumers drop the duplicates.

It wakes on PostgreSQL ``NOTIFY`` (the recorder notifies its channel on every
insert), on the in-process listener of the application when it shares the
process, and polls slowly as a fallback, so it never busy-loops. When Kafka or
the database is down it backs off and retries, and catches up by itself.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from ..common.settings import CommonSettings
from ..contracts.envelope import ERASURES_TOPIC
from .adapters.kafka_publisher import Delivery, EventPublisher
from .adapters.leases import (
    AdvisoryLock,
    Lease,
    holder_gone,
    lock_key,
    new_holder,
    upsert_insert,
)
from .adapters.tables import relay_position
from .application import InterviewsApplication
from .erasure_feed import ErasureFeed
from .feed import InterviewEventFeed, unhook, wake_on_interview_events

log = logging.getLogger(__name__)


class RelaySettings(CommonSettings):
    """``RELAY_*`` environment variables, plus the common ones (EVENTS_TOPIC, ...)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    partitions: int = Field(default=6, ge=1, alias="RELAY_PARTITIONS")
    replication_factor: int = Field(default=-1, alias="RELAY_REPLICATION_FACTOR")
    read_batch: int = Field(default=1000, ge=1, alias="RELAY_READ_BATCH")
    max_in_flight: int = Field(default=20_000, ge=1, alias="RELAY_MAX_IN_FLIGHT")
    linger_ms: int = Field(default=5, ge=0, alias="RELAY_LINGER_MS")
    poll_seconds: float = Field(default=2.0, gt=0, alias="RELAY_POLL_SECONDS")
    checkpoint_seconds: float = Field(default=0.2, ge=0, alias="RELAY_CHECKPOINT_SECONDS")
    max_backoff_seconds: float = Field(default=10.0, gt=0, alias="RELAY_MAX_BACKOFF_SECONDS")
    # One relay publishes at a time; a standby takes over within about a third of
    # this after the leader dies (at once on PostgreSQL: the lock dies with it).
    lease_seconds: float = Field(default=9.0, gt=0, alias="RELAY_LEASE_SECONDS")
    # A standby also takes over from a leader that still heartbeats but has not
    # moved the position for this long while the log head is past it.
    takeover_seconds: float = Field(default=30.0, gt=0, alias="RELAY_TAKEOVER_SECONDS")
    metrics_port: int = Field(default=9465, ge=0, alias="RELAY_METRICS_PORT")
    metrics_host: str = Field(default="127.0.0.1", alias="RELAY_METRICS_HOST")


class LostLeadershipError(RuntimeError):
    """Another relay took over (a newer epoch): this one must not publish or record."""


@dataclass(frozen=True)
class PositionRow:
    position: int
    epoch: int
    holder: str | None
    heartbeat: int


class PositionStore:
    """How far the relay has published, per topic, and who leads (the epoch), in
    the interviews database."""

    def __init__(self, engine: sa.Engine, topic: str) -> None:
        self.engine = engine
        self.topic = topic
        # The table comes from the interviews migrations; the topic's row is made here.
        with engine.begin() as conn:
            conn.execute(
                upsert_insert(engine, relay_position)
                .values(topic=topic, position=0, updated_at=datetime.now(UTC), epoch=0)
                .on_conflict_do_nothing(index_elements=["topic"])
            )

    def load(self) -> int:
        return self.row().position

    def row(self) -> PositionRow:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(relay_position).where(relay_position.c.topic == self.topic)
            ).one()
        return PositionRow(int(row.position), int(row.epoch), row.holder, int(row.heartbeat))

    def save(self, position: int, epoch: int | None = None) -> None:
        """Records ``position``; never moves backwards. With ``epoch``, only while that
        epoch is the current one, else ``LostLeadershipError`` (one statement: a
        takeover either happened before it, and it changes nothing, or after)."""
        where = [relay_position.c.topic == self.topic, relay_position.c.position < position]
        if epoch is not None:
            where.append(relay_position.c.epoch == epoch)
        with self.engine.begin() as conn:
            updated = conn.execute(
                relay_position.update()
                .where(*where)
                .values(position=position, updated_at=datetime.now(UTC))
            ).rowcount
        if not updated and epoch is not None:
            self.check_epoch(epoch)

    def check_epoch(self, epoch: int) -> None:
        current = self.row().epoch
        if current != epoch:
            raise LostLeadershipError(f"epoch {epoch} is over: relay epoch {current} leads")

    def heartbeat(self, epoch: int, holder: str) -> bool:
        """The leader's beat; False when its epoch is over."""
        with self.engine.begin() as conn:
            return bool(
                conn.execute(
                    relay_position.update()
                    .where(
                        relay_position.c.topic == self.topic,
                        relay_position.c.epoch == epoch,
                        relay_position.c.holder == holder,
                    )
                    .values(heartbeat=relay_position.c.heartbeat + 1)
                ).rowcount
            )

    def take_over(self, seen_epoch: int, holder: str) -> bool:
        """Compare-and-set: epoch ``seen_epoch`` + 1 is ``holder``'s, unless another
        relay moved the epoch first."""
        with self.engine.begin() as conn:
            return bool(
                conn.execute(
                    relay_position.update()
                    .where(
                        relay_position.c.topic == self.topic, relay_position.c.epoch == seen_epoch
                    )
                    .values(epoch=seen_epoch + 1, holder=holder, heartbeat=0)
                ).rowcount
            )

    def release(self, epoch: int, holder: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                relay_position.update()
                .where(
                    relay_position.c.topic == self.topic,
                    relay_position.c.epoch == epoch,
                    relay_position.c.holder == holder,
                )
                .values(holder=None)
            )


class FencedLease:
    """Leadership of the relay: an epoch in the position's row, a heartbeat, and a
    standby that watches both with its own clock.

    The leader beats about once a second. A standby takes over (epoch + 1, a
    compare-and-set) when nobody holds the row, when the holder is a process of
    this machine that no longer exists, when (PostgreSQL) the holder's session
    no longer holds its advisory lock, when the beat has not moved for
    ``lease_seconds``, or when the log head is past the recorded position and
    the position has not moved for ``takeover_seconds``. An advisory lock alone
    is not enough: a hung (SIGSTOPped) process keeps its connection and its lock.
    The epoch fences the old leader: its position updates are conditional on
    its epoch, and it checks the epoch before it publishes each batch, so a
    leader that wakes up after a takeover records nothing and publishes at most
    the batch it had already checked (duplicates the consumers drop by id).
    """

    def __init__(
        self,
        positions: PositionStore,
        holder: str,
        *,
        lease_seconds: float,
        takeover_seconds: float,
        head: Callable[[], int],
        liveness: Lease | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.positions = positions
        self.holder = holder
        self.lease_seconds = lease_seconds
        self.takeover_seconds = takeover_seconds
        self.head = head
        self.liveness = liveness
        self.clock = clock
        self.epoch: int | None = None
        self._beat: tuple[int, int] | None = None  # (epoch, heartbeat) last seen
        self._beat_seen_at = 0.0
        self._position: int | None = None
        self._position_seen_at = 0.0

    def acquire(self) -> bool:
        if self.epoch is not None:
            if self.positions.heartbeat(self.epoch, self.holder):
                if self.liveness is not None:
                    self.liveness.acquire()  # held by the leader whenever it can be
                return True
            log.warning("relay: epoch %d is over: another relay took over", self.epoch)
            self.epoch = None
            self._release_liveness()
            return False
        row = self.positions.row()
        reason = self._takeover_reason(row)
        if reason is None:
            return False
        if not self.positions.take_over(row.epoch, self.holder):
            self._release_liveness()  # a standby never sits on the lock
            return False
        self.epoch = row.epoch + 1
        log.warning("relay: taking over as epoch %d: %s", self.epoch, reason)
        if self.liveness is not None:
            self.liveness.acquire()
        return True

    def _takeover_reason(self, row: PositionRow) -> str | None:
        now = self.clock()
        if self._beat != (row.epoch, row.heartbeat):
            self._beat, self._beat_seen_at = (row.epoch, row.heartbeat), now
        if self._position != row.position:
            self._position, self._position_seen_at = row.position, now
        if row.holder is None:
            return "no relay leads"
        if holder_gone(row.holder):
            return f"the leader {row.holder} is no longer running"
        if self.liveness is not None and self.liveness.acquire():
            return f"the leader {row.holder} lost its database session"
        if now - self._beat_seen_at >= self.lease_seconds:
            return f"the leader {row.holder} has not beaten for {now - self._beat_seen_at:.1f}s"
        if now - self._position_seen_at >= self.takeover_seconds and self.head() > row.position:
            return (
                f"the leader {row.holder} has not moved position {row.position} for "
                f"{now - self._position_seen_at:.1f}s while the log is ahead"
            )
        return None

    def release(self) -> None:
        if self.epoch is not None:
            self.positions.release(self.epoch, self.holder)
            self.epoch = None
        self._release_liveness()

    def _release_liveness(self) -> None:
        if self.liveness is not None:
            with contextlib.suppress(Exception):
                self.liveness.release()


class PostgresWakeUp:
    """Sets ``flag`` on every NOTIFY of the recorder's channel; reconnects on errors."""

    def __init__(self, app: InterviewsApplication, flag: threading.Event) -> None:
        self.recorder: Any = app.recorder
        self.flag = flag
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="relay-listen", daemon=True)

    def start(self) -> PostgresWakeUp:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=5)

    def _listen(self) -> None:
        import psycopg
        from psycopg.sql import SQL, Identifier

        datastore = self.recorder.datastore
        backoff = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    **_conninfo(datastore), autocommit=True, connect_timeout=5
                ) as conn:
                    conn.execute(SQL("LISTEN {0}").format(Identifier(self.recorder.channel_name)))
                    self.flag.set()  # anything recorded while we were not listening
                    backoff = 0.5
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self.flag.set()
            except Exception as error:  # the database is down: the poll fallback covers it
                log.debug("LISTEN connection failed (%s), retrying in %.1fs", error, backoff)
                self.flag.set()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)


def _conninfo(datastore: Any) -> dict[str, Any]:
    """Connection parameters of the eventsourcing PostgreSQL datastore's pool."""
    kwargs = dict(datastore.pool.kwargs)
    kwargs.pop("autocommit", None)
    kwargs.pop("row_factory", None)
    kwargs.pop("prepare_threshold", None)
    conninfo = datastore.pool.conninfo
    return {"conninfo": conninfo, **kwargs}


@dataclass
class RelayStats:
    published: int = 0  # acknowledged by the broker, this process
    published_position: int = 0  # recorded position
    errors: int = 0
    republish_from: int = 0
    rate: float = 0.0  # events acknowledged per second, last interval
    connected: bool = False
    leader: bool = False  # holds the lease: this relay is the one publishing


class Relay:
    """Publishes the interview events of the log in order, at least once."""

    def __init__(
        self,
        feed: InterviewEventFeed,
        positions: PositionStore,
        connect: Callable[[], EventPublisher],
        *,
        wake: threading.Event | None = None,
        settings: RelaySettings | None = None,
        lease: Lease | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.feed = feed
        self.clock = clock  # for readiness: how long the position has not moved
        self.lease = lease
        self.positions = positions
        self.connect = connect
        self.wake = wake or threading.Event()
        self.settings = settings or RelaySettings()
        self.stats = RelayStats()
        self._stop = threading.Event()
        self._publisher: EventPublisher | None = None
        self._pending: deque[tuple[int, Delivery]] = deque()
        self._acked = 0  # highest position whose event and all before it are acknowledged
        self._read = 0  # highest position handed to the publisher
        self._scanned = 0  # every interview event up to here has been handed over
        self._reader: ThreadPoolExecutor | None = None
        self._prefetched: tuple[Future[tuple[int, list[Any]]], int, int] | None = None
        self._saved = 0
        self._last_checkpoint = 0.0
        self._rate_mark = (time.monotonic(), 0)
        self._lease_checked = -1e9
        self._progress_at = clock()

    # ----------------------------------------------------------------- control

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """Until ``stop()``: publish, checkpoint, wait for more; back off on failures."""
        backoff = 0.2
        while not self._stop.is_set():
            try:
                if not self._lead():
                    self._stop.wait(self._standby_seconds())
                    continue
                if self._publisher is None:
                    self._start()
                if self._step():
                    backoff = 0.2
            except LostLeadershipError as error:
                log.warning("relay: %s; standing by", error)
                self._reset()
                self._lease_checked = -1e9  # ask the lease now: it says we lost it
            except Exception as error:
                self.stats.errors += 1
                self.stats.connected = False
                log.warning(
                    "relay: %s: %s; republishing from position %d in %.1fs",
                    type(error).__name__,
                    error,
                    self._acked,
                    backoff,
                )
                self._reset()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.settings.max_backoff_seconds)
        self._shutdown()

    # --------------------------------------------------------------- internals

    def _lead(self) -> bool:
        """Takes or renews the lease (about once a second while leading)."""
        if self.lease is None:
            self.stats.leader = True
            return True
        now = time.monotonic()
        if self.stats.leader and now - self._lease_checked < self._standby_seconds():
            return True
        leading = self.lease.acquire()
        self._lease_checked = now
        if leading and not self.stats.leader:
            log.info("relay: leading (holds the lease)")
        elif not leading and self.stats.leader:
            log.warning("relay: lost the lease; another relay publishes now")
        if not leading:
            if self._publisher is not None:
                self._reset()  # what it had sent unacknowledged, the leader sends again
            # The leader's progress, so this relay's lag metric shows the truth.
            self.stats.published_position = self.positions.load()
        self.stats.leader = leading
        return leading

    def _standby_seconds(self) -> float:
        return min(1.0, self.settings.lease_seconds / 3)

    def _start(self) -> None:
        self._acked = self._saved = self._read = self._scanned = self.positions.load()
        self.stats.published_position = self._acked
        self.stats.republish_from = self._acked
        publisher = self.connect()
        self._publisher = publisher
        self.stats.connected = True
        log.info("relay: publishing from position %d", self._acked)

    def _step(self) -> bool:
        """One round; True when it made progress."""
        assert self._publisher is not None
        self.wake.clear()
        room = self.settings.max_in_flight - len(self._pending)
        limit = min(self.settings.read_batch, max(room, 0))
        store_max, envelopes = self._next_batch(limit)
        if envelopes:
            self._check_epoch()  # a leader paused and superseded publishes nothing more
            self._read = envelopes[-1].position
            if len(envelopes) == limit and room - limit >= limit:
                # A backlog: read and convert the next batch while this one is sent.
                self._prefetch_batch(limit)
        for envelope in envelopes:
            self._pending.append((envelope.position, self._publisher.publish(envelope)))
        if limit and len(envelopes) < limit:
            # Every interview event up to store_max has been read: positions
            # are assigned in commit order, so nothing below it can still appear.
            self._read = max(self._read, store_max)
            self._scanned = max(self._scanned, store_max)
        before = self._acked
        self._settle()
        if self._pending and (not envelopes or room <= len(envelopes)):
            # Idle or full: wait for the broker rather than for more events.
            self._publisher.flush(1.0)
            self._settle()
        self._checkpoint()
        if not envelopes and not self._pending:
            if self._acked == self._saved:
                self._progress_at = self.clock()  # caught up: nothing to move
            self.wake.wait(self._idle_timeout())
        return bool(envelopes) or self._acked > before

    def _read_batch(self, after: int, limit: int) -> tuple[int, list[Any]]:
        # The store's max first: every event up to it is then visible to the read.
        store_max = self.feed.max_position()
        return store_max, self.feed.read(after, limit) if limit else []

    def _next_batch(self, limit: int) -> tuple[int, list[Any]]:
        prefetched, self._prefetched = self._prefetched, None
        if prefetched is not None:
            future, after, prefetch_limit = prefetched
            result = future.result()
            if after == self._read and prefetch_limit == limit:
                return result
        return self._read_batch(self._read, limit)

    def _prefetch_batch(self, limit: int) -> None:
        if self._reader is None:
            self._reader = ThreadPoolExecutor(1, thread_name_prefix="relay-read")
        future = self._reader.submit(self._read_batch, self._read, limit)
        self._prefetched = (future, self._read, limit)

    def _settle(self) -> None:
        """Moves ``_acked`` over the acknowledged prefix; raises on a refused send."""
        pending = self._pending
        acked = 0
        while pending and pending[0][1].is_done:
            position, delivery = pending[0]
            if delivery.failed():
                raise delivery.exception or RuntimeError("send failed")
            pending.popleft()
            self._acked = position
            acked += 1
        self.stats.published += acked
        if not pending:
            # All read events are acknowledged: skip the other aggregates' positions too.
            self._acked = max(self._acked, self._scanned)

    def _idle_timeout(self) -> float:
        """Until the next poll, or sooner if an acknowledged position awaits its checkpoint."""
        if self._acked <= self._saved:
            return self.settings.poll_seconds
        due = self._last_checkpoint + self.settings.checkpoint_seconds - time.monotonic()
        return min(max(due, 0.001), self.settings.poll_seconds)

    def _checkpoint(self, force: bool = False) -> None:
        now = time.monotonic()
        if self._acked > self._saved and (
            force or now - self._last_checkpoint >= self.settings.checkpoint_seconds
        ):
            epoch = self._epoch()
            if epoch is None:
                self.positions.save(self._acked)
            else:
                self.positions.save(self._acked, epoch)
            self._saved = self._acked
            self._progress_at = self.clock()
            self._last_checkpoint = now
            self.stats.published_position = self._acked
        mark_time, mark_count = self._rate_mark
        if now - mark_time >= 1.0:
            self.stats.rate = (self.stats.published - mark_count) / (now - mark_time)
            self._rate_mark = (now, self.stats.published)

    def stalled_seconds(self) -> float:
        """How long this relay has led without recording progress while there was work."""
        if not self.stats.leader:
            return 0.0
        return max(self.clock() - self._progress_at, 0.0)

    def _epoch(self) -> int | None:
        return self.lease.epoch if isinstance(self.lease, FencedLease) else None

    def _check_epoch(self) -> None:
        epoch = self._epoch()
        if epoch is not None:
            self.positions.check_epoch(epoch)

    def _reset(self) -> None:
        """Drops the producer and everything unacknowledged: start over from the checkpoint."""
        publisher, self._publisher = self._publisher, None
        self._pending.clear()
        prefetched, self._prefetched = self._prefetched, None
        if prefetched is not None:
            with contextlib.suppress(Exception):
                prefetched[0].result()
        if publisher is not None:
            try:
                publisher.close(timeout=0)
            except Exception:
                log.debug("closing the producer failed", exc_info=True)

    def _shutdown(self) -> None:
        publisher = self._publisher
        if publisher is not None:
            try:
                deadline = time.monotonic() + 10
                while self._pending and time.monotonic() < deadline:
                    publisher.flush(1.0)
                    self._settle()
                self._checkpoint(force=True)
            except Exception:
                log.warning("relay: could not flush on shutdown", exc_info=True)
            self._reset()
        if self._reader is not None:
            self._reader.shutdown()
        if self.lease is not None and self.stats.leader:
            try:
                self.lease.release()
            except Exception:  # it lapses (or dies with its connection)
                log.warning("relay: releasing the lease failed", exc_info=True)
            self.stats.leader = False
        log.info("relay stopped at position %d", self._saved)


class RelayCollector:
    """Prometheus view of a relay: lag, published (total and per second), errors."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.store_position = _Cached(relay.feed.max_position, seconds=1.0)

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        stats = self.relay.stats
        store = self.store_position()
        yield GaugeMetricFamily(
            "relay_lag_positions",
            "Positions the relay is behind the event store (store max - published)",
            value=max(store - stats.published_position, 0),
        )
        yield GaugeMetricFamily(
            "relay_leader",
            "1 while this relay holds the lease and publishes, 0 while it stands by",
            value=1 if stats.leader else 0,
        )
        yield GaugeMetricFamily(
            "relay_store_position", "The event store's max notification id", value=store
        )
        yield GaugeMetricFamily(
            "relay_published_position",
            "Last position recorded as acknowledged by the broker",
            value=stats.published_position,
        )
        yield GaugeMetricFamily(
            "relay_events_published_per_second",
            "Events acknowledged by the broker per second (last interval)",
            value=stats.rate,
        )
        yield GaugeMetricFamily(
            "relay_connected", "1 while the relay has a working producer", value=stats.connected
        )
        yield CounterMetricFamily(
            "relay_events_published", "Events acknowledged by the broker", value=stats.published
        )
        yield CounterMetricFamily(
            "relay_errors",
            "Failures that made the relay back off and republish",
            value=stats.errors,
        )


class NotReadyError(Exception):
    """The relay cannot publish now."""


def relay_readiness(relay: Relay) -> Callable[[], None]:
    """Ready when the event store answers and, leading, the relay has a producer and
    has recorded progress within ``RELAY_TAKEOVER_SECONDS`` while there was work
    (a standby is ready: standing by is its job)."""

    def ready() -> None:
        relay.feed.max_position()  # raises while the event store is unreachable
        if relay.stats.leader and not relay.stats.connected:
            raise NotReadyError("leading, but no connection to the broker")
        if not isinstance(relay, Relay):
            return
        stalled = relay.stalled_seconds()
        if stalled > relay.settings.takeover_seconds:
            raise NotReadyError(
                f"leading, but no progress recorded for {stalled:.0f}s while the log is ahead"
            )

    return ready


class _Cached:
    """The last value of ``fn``, refreshed at most every ``seconds`` (kept on errors)."""

    def __init__(self, fn: Callable[[], int], seconds: float) -> None:
        self.fn = fn
        self.seconds = seconds
        self._value = 0.0
        self._at = -seconds

    def __call__(self) -> float:
        now = time.monotonic()
        if now - self._at >= self.seconds:
            try:
                self._value = float(self.fn())
            except Exception:
                return self._value
            self._at = now
        return self._value


# ------------------------------------------------------------------- wiring


def fenced_lease(
    positions: PositionStore, settings: RelaySettings, head: Callable[[], int]
) -> FencedLease:
    """The relay's leadership; on PostgreSQL an advisory lock tells a standby at once
    that a crashed leader's session is gone."""
    engine = positions.engine
    liveness = (
        AdvisoryLock(engine, lock_key(f"interviews.relay:{settings.topic}"), name="relay")
        if engine.dialect.name == "postgresql"
        else None
    )
    return FencedLease(
        positions,
        new_holder(),
        lease_seconds=settings.lease_seconds,
        takeover_seconds=settings.takeover_seconds,
        head=head,
        liveness=liveness,
    )


def erasure_relay(app: InterviewsApplication, settings: RelaySettings, engine: sa.Engine) -> Relay:
    """The relay of erasures: ``subject.erased`` on ``privacy.erasures``, from the
    same log, with its own position and lease (it polls: erasures are rare)."""
    from .adapters.erasure_publisher import ErasurePublisher

    own = settings.model_copy(update={"topic": ERASURES_TOPIC})

    def connect() -> Any:
        publisher = ErasurePublisher(
            settings.kafka_bootstrap_servers or "",
            ERASURES_TOPIC,
            partitions=settings.partitions,
            replication_factor=settings.replication_factor,
        )
        try:
            publisher.ensure_topic()
        except Exception:
            publisher.close(timeout=0)
            raise
        return publisher

    feed = ErasureFeed(app)
    positions = PositionStore(engine, ERASURES_TOPIC)
    lease = fenced_lease(positions, own, feed.max_position)
    return Relay(feed, positions, connect, settings=own, lease=lease)  # type: ignore[arg-type]


class RelayProcess:
    """A relay wired from settings: feed, position table, producer, wake-ups, metrics."""

    def __init__(
        self,
        app: InterviewsApplication,
        settings: RelaySettings,
        *,
        registry: Any = None,
    ) -> None:
        from ..common.db import create_engine
        from .adapters.kafka_publisher import KafkaPublisher

        if not settings.kafka_bootstrap_servers:
            raise ValueError("the relay needs KAFKA_BOOTSTRAP_SERVERS")
        self.app = app
        self.settings = settings
        self.engine = create_engine(settings.database_url, settings.data_dir / "interviews.sqlite")
        bootstrap = settings.kafka_bootstrap_servers

        def connect() -> EventPublisher:
            publisher = KafkaPublisher(
                bootstrap,
                settings.topic,
                partitions=settings.partitions,
                replication_factor=settings.replication_factor,
                linger_ms=settings.linger_ms,
            )
            try:
                publisher.ensure_topic()
            except Exception:
                publisher.close(timeout=0)
                raise
            return publisher

        self.wake = wake_on_interview_events(app)
        self.listener = (
            PostgresWakeUp(app, self.wake) if hasattr(app.recorder, "channel_name") else None
        )
        positions = PositionStore(self.engine, settings.topic)
        self.relay = Relay(
            InterviewEventFeed(app),
            positions,
            connect,
            wake=self.wake,
            settings=settings,
            lease=fenced_lease(positions, settings, InterviewEventFeed(app).max_position),
        )
        self.registry = registry
        if registry is not None:
            registry.register(RelayCollector(self.relay))
        self._thread: threading.Thread | None = None
        self.erasures = erasure_relay(app, settings, self.engine)
        self._erasures_thread = threading.Thread(
            target=self.erasures.run, name="erasure-relay", daemon=True
        )

    def run(self) -> None:
        if self.listener is not None:
            self.listener.start()
        self._erasures_thread.start()
        try:
            self.relay.run()
        finally:
            self.erasures.stop()
            self._erasures_thread.join(15.0)
            self.close()

    def start(self) -> RelayProcess:
        """Runs in a background thread (inside ``interviewctl up``)."""
        self._thread = threading.Thread(target=self.run, name="relay", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self.erasures.stop()
        self.relay.stop()
        if self._thread is not None:
            self._thread.join(timeout)

    def close(self) -> None:
        if self.listener is not None:
            self.listener.stop()
        unhook(self.app, self.wake)
        self.engine.dispose()


def serve(settings: RelaySettings | None = None) -> None:
    """``interviewctl relay``: runs until SIGTERM/SIGINT, with /metrics on its own port."""
    import signal

    from prometheus_client import CollectorRegistry

    from ..common.health import HealthServer
    from .bootstrap import DependencyUnavailableError, InterviewsContainer
    from .settings import InterviewsSettings

    settings = settings or RelaySettings()
    stop = threading.Event()
    # kafka-python reports every connection at INFO; keep its warnings only.
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLogger().level))

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("relay: signal %d, stopping", signum)
        stop.set()
        if process is not None:
            process.relay.stop()

    process: RelayProcess | None = None
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    container = InterviewsContainer(
        InterviewsSettings(database_url=settings.database_url, data_dir=settings.data_dir)
    )
    backoff = 0.5
    while not stop.is_set():
        try:
            app = container.interviews()
            break
        except DependencyUnavailableError as error:
            log.warning("relay: event store unavailable (%s), retrying in %.1fs", error, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, settings.max_backoff_seconds)
    else:
        return
    registry = CollectorRegistry()
    process = RelayProcess(app, settings, registry=registry)
    server = None
    if settings.metrics_port:
        server = HealthServer(
            settings.metrics_port,
            registry,
            relay_readiness(process.relay),
            host=settings.metrics_host,
        ).start()
        log.info(
            "relay /metrics, /healthz, /readyz on http://%s:%d",
            settings.metrics_host,
            settings.metrics_port,
        )
    if stop.is_set():
        process.relay.stop()
    try:
        process.run()
    finally:
        if server is not None:
            server.shutdown()
        container.close()
