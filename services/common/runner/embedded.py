"""The embedded source: the event store's log read in-process, no Kafka.

``interviewctl up`` without ``KAFKA_BOOTSTRAP_SERVERS`` feeds both consumers
this way; the position is the log's (table ``consumer_positions``).
"""

from __future__ import annotations

import bisect
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from ...contracts import EventEnvelope
from ..consumer import ConsumerSpec
from .loop import ConsumerRunner
from .metrics import RunnerMetrics
from .source import SourceRecord
from .tables import consumer_positions, upsert_greater


class EmbeddedSource:
    """The event store's log, read in-process: ``read(after, limit)`` + a wake-up flag.

    Waits on ``wake`` (set after every committed batch of the event store) and
    polls every ``poll_seconds`` as a fallback: no busy loop.

    Under load it batches more: once a read found ``linger_from`` events or more
    (commands are streaming in), the next read waits until ``linger`` seconds
    after it, so a batch takes what arrived meanwhile and the per-batch work (the
    consumer's transaction, its bookkeeping, the wake-ups of the workers behind
    it) is shared by more events. A read that found fewer, or a full batch (the
    consumer is behind), is followed at once: at low rates an event is applied
    as soon as it is committed, and under load at most ``linger`` later.
    """

    topic = "event-store"

    def __init__(
        self,
        read: Callable[[int, int], list[EventEnvelope]],
        wake: threading.Event,
        *,
        batch: int = 500,
        poll_seconds: float = 2.0,
        max_position: Callable[[], int] | None = None,
        linger: float = 0.1,
        linger_from: int = 4,
        clock: Callable[[], float] = time.monotonic,
        pause: Callable[[float], object] | None = None,
    ) -> None:
        self.read = read
        self.wake = wake
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.max_position = max_position
        self.linger = linger
        self.linger_from = linger_from
        self.clock = clock
        self._committed = 0
        self._read_to = 0
        self._group = ""
        self._interrupted = threading.Event()
        # Waits out a linger (a test's moves its clock instead); interrupt() ends it.
        self._pause = pause or self._interrupted.wait
        self._next_read = 0.0  # clock() before which a read waits (streaming in)

    def open(self, group: str, engine: sa.Engine, metrics: RunnerMetrics) -> None:
        self._group = group
        with engine.connect() as conn:
            value = conn.execute(
                sa.select(consumer_positions.c.position).where(consumer_positions.c.group == group)
            ).scalar()
        self._committed = self._read_to = int(value or 0)

    def poll(self, timeout: float) -> list[SourceRecord]:
        wait = self._next_read - self.clock()
        if wait > 0 and not self._interrupted.is_set():
            self._pause(wait)
        self.wake.clear()
        read_at = self.clock()
        envelopes = self.read(self._read_to, self.batch)
        streaming = self.linger_from <= len(envelopes) < self.batch
        self._next_read = read_at + self.linger if streaming else 0.0
        if not envelopes:
            if not self._interrupted.is_set():
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
        upsert_greater(conn, consumer_positions, {"group": self._group}, "position", position)

    def committed(self, records: Sequence[SourceRecord]) -> None:
        positions = [r.envelope.position for r in records if r.envelope is not None]
        self._committed = max([self._committed, *positions])

    def rewind(self) -> None:
        self._read_to = self._committed

    def dead_letter(self, record: SourceRecord, error: str, group: str) -> None:
        # Every record of this source is an envelope the feed built: nothing to decode.
        raise RuntimeError(f"the embedded source produced an invalid event: {error}")

    def interrupt(self) -> None:
        self._interrupted.set()
        self.wake.set()

    def update_lag(self, metrics: RunnerMetrics, group: str) -> int | None:
        if self.max_position is None:
            return None
        try:
            lag = max(self.max_position() - self._committed, 0)
        except Exception:  # the event store is down: no reading this time
            return None
        metrics.lag.labels(group, self.topic, "0").set(lag)
        return lag

    def check_reachable(self) -> None:
        """The log is read in-process: nothing to reach."""

    def close(self) -> None:
        pass


class SharedLog:
    """One reading of the event store's log for every in-process consumer.

    ``read(after, limit)`` answers like ``read_from_head`` would (the events after
    ``after``, in order, at most ``limit``), but each event is read and converted
    once, however many consumers follow the log: the events read last (up to
    ``keep``) stay in a window that covers every event of the log between its
    ``start`` and its ``end``, and a consumer whose position is in it takes its
    events from there, reading only what lies after the window. The objects a
    consumer gets are the ones the conversion built; consumers never change them
    (envelopes are frozen). A consumer before the window (behind, or replaying)
    reads the store directly. ``head`` is the log's head as the last read found it:
    the consumers' lag, with no query of its own.
    """

    def __init__(
        self,
        read_from_head: Callable[[int, int], tuple[int, list[EventEnvelope]]],
        *,
        keep: int = 2000,
    ) -> None:
        self._read_from_head = read_from_head
        self.keep = keep
        self.head = 0
        self._lock = threading.Lock()
        self._start = 0  # the window holds every event in (start, end]
        self._end = 0
        self._events: list[EventEnvelope] = []
        self._positions: list[int] = []

    def read(self, after: int, limit: int) -> list[EventEnvelope]:
        with self._lock:
            if after < self._start:
                return self._read_store(after, limit)
            if after > self._end:  # a consumer ahead of the window: it starts there
                self._start = self._end = after
                self._events, self._positions = [], []
            first = bisect.bisect_right(self._positions, after)
            events = self._events[first : first + limit]
            if len(events) < limit:
                wanted = limit - len(events)
                fresh = self._read_store(self._end, wanted)
                self._events += fresh
                self._positions += [e.position for e in fresh]
                # Short of ``wanted``: every event up to the head was read (and
                # maybe a few committed after the head was taken).
                last = fresh[-1].position if fresh else self._end
                self._end = last if len(fresh) == wanted else max(last, self.head)
                events += fresh
                self._trim()
            return events

    def _read_store(self, after: int, limit: int) -> list[EventEnvelope]:
        head, events = self._read_from_head(after, limit)
        self.head = max(self.head, head)
        return events

    def _trim(self) -> None:
        extra = len(self._events) - self.keep
        if extra > 0:
            self._start = self._positions[extra - 1]
            del self._events[:extra], self._positions[:extra]


def embedded_runner(
    spec: ConsumerSpec,
    read: Callable[[int, int], list[EventEnvelope]],
    wake: threading.Event,
    *,
    registry: Any = None,
    max_position: Callable[[], int] | None = None,
    linger: float = 0.1,
    **options: Any,
) -> ConsumerRunner:
    """A runner of ``spec`` over the event store's log (``read``, woken by ``wake``)."""
    source = EmbeddedSource(read, wake, max_position=max_position, linger=linger)
    return ConsumerRunner(spec, source, registry=registry, **options)
