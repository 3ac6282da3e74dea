"""Where a rebuild reads events from: the Kafka topic from its beginning, or
the event store's notification log (embedded default)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from ...contracts import EventEnvelope, UnsupportedEventError, decode_envelope

log = logging.getLogger(__name__)

LogReader = Callable[[int, int], Sequence[EventEnvelope]]
"""``read(after, limit)``: up to ``limit`` interview events with position > ``after``, in order."""


class RebuildSource(Protocol):
    name: str
    poison: int

    def read(self, limit: int) -> list[EventEnvelope]:
        """The next events up to the head seen at start; [] once there."""
        ...

    def catch_up(self, limit: int) -> Iterator[list[EventEnvelope]]:
        """Everything up to the head as it is now (called under the swap lock)."""
        ...

    def progress(self) -> tuple[int, int | None]:
        """(done, total) in the source's units (messages or log positions)."""
        ...

    def close(self) -> None: ...


class LogSource:
    """The event store's log through a ``read(after, limit)`` callable."""

    name = "log"

    def __init__(self, read: LogReader, head: Callable[[], int] | None = None) -> None:
        self._read = read
        self._head = head
        self.after = 0
        self.poison = 0
        self.total = head() if head is not None else None
        self._done = False

    def read(self, limit: int) -> list[EventEnvelope]:
        if self._done:
            return []
        events = list(self._read(self.after, limit))
        if events:
            self.after = events[-1].position
        if len(events) < limit or (self.total is not None and self.after >= self.total):
            self._done = True
        return events

    def catch_up(self, limit: int) -> Iterator[list[EventEnvelope]]:
        while True:
            events = list(self._read(self.after, limit))
            if not events:
                return
            self.after = events[-1].position
            yield events

    def progress(self) -> tuple[int, int | None]:
        return self.after, self.total

    def close(self) -> None:
        pass


class KafkaTopicSource:
    """A fresh consumer (no group, no committed offsets) reading every partition
    of the topic from its beginning."""

    name = "kafka"

    def __init__(self, bootstrap_servers: str, topic: str, *, timeout_s: float = 30.0) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.topic = topic
        self.poison = 0
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=10_000,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024,
            client_id="projections-rebuild",
        )
        partitions = self.consumer.partitions_for_topic(topic)
        if not partitions:
            self.consumer.close()
            raise LookupError(f"Kafka topic {topic!r} does not exist")
        self.partitions = [TopicPartition(topic, p) for p in sorted(partitions)]
        self.consumer.assign(self.partitions)
        self.consumer.seek_to_beginning(*self.partitions)
        self.begin = self.consumer.beginning_offsets(self.partitions)
        self.end = self.consumer.end_offsets(self.partitions)
        self.next = dict(self.begin)
        self.timeout_s = timeout_s

    def _behind(self) -> bool:
        return any(self.next[tp] < self.end[tp] for tp in self.partitions)

    def _poll(self, limit: int) -> list[EventEnvelope]:
        batch = self.consumer.poll(timeout_ms=500, max_records=limit)
        events: list[EventEnvelope] = []
        for tp, records in batch.items():
            for record in records:
                self.next[tp] = record.offset + 1
                try:
                    events.append(decode_envelope(record.value))
                except UnsupportedEventError as error:
                    self.poison += 1
                    log.warning(
                        "rebuild skips poison message %s[%d]@%d: %s",
                        tp.topic,
                        tp.partition,
                        record.offset,
                        error,
                    )
        return events

    def read(self, limit: int) -> list[EventEnvelope]:
        import time

        deadline = time.monotonic() + self.timeout_s
        while self._behind():
            events = self._poll(limit)
            if events:
                return events
            if time.monotonic() > deadline:
                raise TimeoutError(f"no progress reading {self.topic} for {self.timeout_s}s")
        return []

    def catch_up(self, limit: int) -> Iterator[list[EventEnvelope]]:
        self.end = self.consumer.end_offsets(self.partitions)
        while True:
            events = self.read(limit)
            if not events:
                return
            yield events

    def progress(self) -> tuple[int, int | None]:
        done = sum(min(self.next[tp], self.end[tp]) - self.begin[tp] for tp in self.partitions)
        total = sum(self.end[tp] - self.begin[tp] for tp in self.partitions)
        return done, total

    def close(self) -> None:
        self.consumer.close()
