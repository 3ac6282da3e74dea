"""The relay: follows the event store's notification log and publishes to Kafka.

An outbox, read from the log itself. The relay reads the interview events
after its recorded position, publishes them (key = interview id) and records
a new position only once the broker acknowledged every event up to it. A crash
therefore loses nothing and at worst publishes some events again; they keep
their ids, so consumers drop the duplicates.

It wakes on PostgreSQL ``NOTIFY`` (``adapters/pg_listen.py``), on the
in-process listener of the application when it shares the process, and polls
slowly as a fallback, so it never busy-loops. Caught up, it sends each event
at once and never waits for the broker before reading on: acknowledgements
are settled and recorded while it waits for the next wake-up. When Kafka or the database is
down it backs off and retries, and catches up by itself. One relay publishes
at a time (``adapters/relay_position.py:FencedLease``). ``bootstrap.py`` wires
it (``RelayProcess``); ``entrypoints/processes.py`` runs it as ``interviewctl relay``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .adapters.kafka_publisher import Delivery, EventPublisher
from .adapters.leases import Lease
from .adapters.relay_position import FencedLease, LostLeadershipError, PositionStore
from .settings import RelaySettings

log = logging.getLogger(__name__)

# The shortest wait of an idle relay between two looks at its deliveries (a look
# at memory, no read of the log), when checkpoints are due that often or more.
ACK_TICK_SECONDS = 0.005


class Positioned(Protocol):
    @property
    def position(self) -> int: ...


class LogFeed(Protocol):
    """What the relay follows: ``feed.InterviewMessageFeed``, or the erasures' feed."""

    def read(self, after: int, limit: int) -> Sequence[Positioned]: ...

    def read_from_head(self, after: int, limit: int) -> tuple[int, Sequence[Positioned]]:
        """``max_position()`` and then ``read(after, limit)``, in one round trip."""
        ...

    def max_position(self) -> int: ...


@dataclass
class RelayStats:
    published: int = 0  # acknowledged by the broker, this process
    published_position: int = 0  # recorded position
    errors: int = 0
    rate: float = 0.0  # events acknowledged per second, last interval
    connected: bool = False
    leader: bool = False  # holds the lease: this relay is the one publishing


class Relay:
    """Publishes the interview events of the log in order, at least once."""

    def __init__(
        self,
        feed: LogFeed,
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
        self._prefetched: tuple[Future[tuple[int, Sequence[Any]]], int, int] | None = None
        self._saved = 0
        # The position being recorded, off the publishing thread: (its save, position).
        self._saving: tuple[Future[None], int] | None = None
        self._bookkeeper: ThreadPoolExecutor | None = None
        self._last_checkpoint = 0.0
        self._rate_mark = (time.monotonic(), 0)
        self._lease_checked = -1e9
        self._progress_at = clock()

    # ----------------------------------------------------------------- control

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()

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
        # The first batch is read while the producer connects.
        self._prefetch_batch(min(self.settings.read_batch, self.settings.max_in_flight))
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
        caught_up = bool(limit) and len(envelopes) < limit
        publish, pending = self._publisher.publish, self._pending
        if envelopes:
            # Caught up, each event goes to the broker at once (nothing more is
            # coming to batch it with); a backlog is sent in full batches, each
            # read while the last one goes.
            self._publisher.linger(not caught_up)
        for envelope in envelopes:
            pending.append((envelope.position, publish(envelope)))
        if caught_up:
            # Every interview event up to store_max has been read: positions
            # are assigned in commit order, so nothing below it can still appear.
            self._read = max(self._read, store_max)
            self._scanned = max(self._scanned, store_max)
        before = self._acked
        self._settle()
        if pending and room <= len(envelopes):
            # Full: wait for the broker rather than for more events.
            self._publisher.flush(1.0)
            self._settle()
        self._checkpoint()
        if caught_up:
            # Whatever is committed after the read wakes the relay (NOTIFY, or
            # the application's own listener): no second read to find nothing.
            self._await_work()
        return bool(envelopes) or self._acked > before

    def _await_work(self) -> None:
        """Until woken (new events, ``stop()``) or the poll interval is over.

        It never waits for the broker: what was sent is acknowledged while the
        relay waits here (or reads and sends the next events), and the
        acknowledgements are settled and recorded every ``checkpoint_seconds``
        meanwhile, each a look at the deliveries without a read of the log.
        """
        poll_until = time.monotonic() + self.settings.poll_seconds
        while True:
            if not self._pending and self._acked == self._saved:
                self._progress_at = self.clock()  # caught up: nothing to move
            timeout = self._idle_timeout(poll_until)
            if self.wake.wait(timeout) or time.monotonic() >= poll_until:
                return
            self._settle()
            self._checkpoint()

    def _read_batch(self, after: int, limit: int) -> tuple[int, Sequence[Any]]:
        # With the store's max: every event up to it is visible to the read.
        return self.feed.read_from_head(after, limit)

    def _next_batch(self, limit: int) -> tuple[int, Sequence[Any]]:
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

    def _idle_timeout(self, poll_until: float) -> float:
        """Until the next poll, or sooner while acknowledgements are awaited or an
        acknowledged position awaits its checkpoint."""
        now = time.monotonic()
        timeout = max(poll_until - now, 0.0)
        if self._acked <= self._saved and not self._pending and self._saving is None:
            return timeout
        if self._saving is not None:
            return min(ACK_TICK_SECONDS, timeout)
        due = self._last_checkpoint + self.settings.checkpoint_seconds - now
        if due <= 0 and self._pending:
            # Overdue and still awaiting the broker (slow, or down and retried by
            # the producer): look again a checkpoint interval later.
            due = self.settings.checkpoint_seconds
        return min(max(due, ACK_TICK_SECONDS), timeout)

    def _checkpoint(self, force: bool = False) -> None:
        """Records the acknowledged position every ``checkpoint_seconds`` (``force``: now,
        and waits for it).

        The save runs on a thread of its own: it is a write and a commit (a WAL
        flush), and when PostgreSQL is slow (a checkpoint's I/O, a busy machine)
        it took 50-150 ms, during which events committed meanwhile waited to be
        read and sent. Its outcome is collected by a later call, on the relay's
        thread, and counts only then: the recorded position is what a restart
        republishes from, so one that was not saved is never taken as saved
        (the next save covers it), and a save refused because another relay
        took over (``LostLeadershipError``) or failed is raised here as it was
        when saves ran inline. One save at a time, in order; positions only grow.
        """
        self._collect_save(wait=force)
        now = time.monotonic()
        if (
            self._saving is None
            and self._acked > self._saved
            and (force or now - self._last_checkpoint >= self.settings.checkpoint_seconds)
        ):
            epoch, position = self._epoch(), self._acked
            if self._bookkeeper is None:
                self._bookkeeper = ThreadPoolExecutor(1, thread_name_prefix="relay-checkpoint")
            if epoch is None:
                save = self._bookkeeper.submit(self.positions.save, position)
            else:
                save = self._bookkeeper.submit(self.positions.save, position, epoch)
            self._saving = (save, position)
            self._last_checkpoint = now
            self._collect_save(wait=force)
        mark_time, mark_count = self._rate_mark
        if now - mark_time >= 1.0:
            self.stats.rate = (self.stats.published - mark_count) / (now - mark_time)
            self._rate_mark = (now, self.stats.published)

    def _collect_save(self, *, wait: bool) -> None:
        """The outcome of the save in progress, if it is over (``wait``: once it is)."""
        saving = self._saving
        if saving is None or not (wait or saving[0].done()):
            return
        self._saving = None
        saving[0].result()  # raises what the save raised
        self._saved = max(self._saved, saving[1])
        self._progress_at = self.clock()
        self.stats.published_position = self._saved

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
        saving, self._saving = self._saving, None
        if saving is not None:  # _start() loads the position once no save is in progress
            with contextlib.suppress(Exception):
                saving[0].result()
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
        if self._bookkeeper is not None:
            self._bookkeeper.shutdown()
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
