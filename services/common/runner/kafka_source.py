"""The Kafka source: the events topic read by a consumer group, with its
dead-letter producer and its rebalance listener.

Offsets live in the consumer's own database (``consumer_offsets``), written in
each batch's transaction, never in Kafka's group offsets.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import MessageSizeTooLargeError

from ..consumer import ConsumerSpec
from ..kafka import (
    DLQ_MAX_MESSAGE_BYTES,
    TopicLayout,
    dlq_topic_for,
    ensure_event_topics,
    producer_settings,
)
from ..readiness import NotReadyError
from ..settings import CommonSettings
from .loop import ConsumerRunner
from .metrics import RunnerMetrics
from .source import SourceRecord
from .tables import consumer_offsets, upsert_greater_many

log = logging.getLogger(__name__)


class KafkaSource:
    """A topic read with a consumer group; offsets live in the consumer's database.

    On every assignment the consumer seeks to the offsets stored in table
    ``consumer_offsets`` (the earliest offset where none is stored), so a
    rebalance or a restart resumes exactly after the last committed batch.
    The rebalance callbacks (``_Rebalance``, on kafka-python's IO thread) take
    the lock a batch holds while it is processed (``hold``), so partitions are
    revoked between batches, and records of a partition revoked since the poll
    are left to its new owner.

    A poll returns at once whatever has arrived, up to a limit that adapts: it
    doubles (up to ``max_records``) while polls come back full, a backlog, so
    its events are applied in fewer, larger transactions, and falls back to
    ``min_records`` as soon as one does not, so light traffic is applied as it
    arrives in small batches.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        layout: TopicLayout,
        min_records: int = 500,
        max_records: int = 4000,
        **consumer_overrides: Any,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.dlq_topic = dlq_topic_for(topic)
        self.layout = layout  # if it has to create the topic
        self.min_records = min(min_records, max_records)
        self.max_records = max_records
        self._limit = self.min_records  # what the next poll may return
        self.consumer_overrides = consumer_overrides
        self.consumer: Any = None
        self._producer: Any = None
        self._group = ""
        self._engine: sa.Engine | None = None
        self._metrics: RunnerMetrics | None = None
        self._committed: dict[Any, int] = {}
        self._needs_seek: set[Any] = set()
        self._lock = threading.RLock()
        self._lag_partitions: set[int] = set()

    def open(self, group: str, engine: sa.Engine, metrics: RunnerMetrics) -> None:
        self._group = group
        self._engine = engine
        self._metrics = metrics
        settings: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "group_id": group,
            "client_id": f"{group}-consumer",
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "max_poll_records": self.max_records,
            "session_timeout_ms": 10_000,
            "heartbeat_interval_ms": 3_000,
            "max_poll_interval_ms": 300_000,
            "reconnect_backoff_max_ms": 2_000,
        }
        ensure_event_topics(
            self.bootstrap_servers, self.topic, self.layout, client_id=f"{group}-admin"
        )
        self.consumer = KafkaConsumer(**(settings | self.consumer_overrides))
        # Subscribed first, so that the metadata the wait below fetches is the
        # subscription's: the group's leader then assigns on metadata that lists
        # the topic's partitions. Fetched before subscribing, kafka-python's
        # coordinator kept an empty snapshot of the subscription, assigned on it,
        # and when the next metadata named the partitions it saw a change and
        # made the whole group rebalance again right after its first batch: a
        # moment alone, but a member of a larger group stalled until its next
        # heartbeat (up to 3 s) at every start.
        self.consumer.subscribe([self.topic], listener=_Rebalance(self))
        self._await_partitions()

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
        limit = self._limit
        batches = self.consumer.poll(timeout_ms=int(timeout * 1000), max_records=limit)
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
        full = len(records) >= limit
        self._limit = min(limit * 2, self.max_records) if full else self.min_records
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
        rows = [
            {"group": self._group, "topic": topic, "partition": partition, "next_offset": offset}
            for (topic, partition), offset in sorted(_next_offsets(records).items())
        ]
        upsert_greater_many(conn, consumer_offsets, rows, "next_offset")

    def committed(self, records: Sequence[SourceRecord]) -> None:
        for (topic, partition), offset in _next_offsets(records).items():
            tp = TopicPartition(topic, partition)
            self._committed[tp] = max(self._committed.get(tp, 0), offset)

    def rewind(self) -> None:
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
        if self._producer is None:
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


def kafka_runner(
    spec: ConsumerSpec,
    bootstrap_servers: str,
    topic: str,
    *,
    layout: TopicLayout,
    registry: Any = None,
    **options: Any,
) -> ConsumerRunner:
    """A runner of ``spec`` over ``topic`` (created with ``layout`` if missing)."""
    source = KafkaSource(bootstrap_servers, topic, layout=layout)
    return ConsumerRunner(spec, source, registry=registry, **options)


def service_kafka_runner(
    spec: ConsumerSpec, settings: CommonSettings, *, registry: Any = None, **options: Any
) -> ConsumerRunner:
    """A consumer service's runner of ``spec`` on Kafka, all from its settings: the
    brokers, the topic and its layout, the readiness rules (``options`` win)."""
    assert settings.kafka_bootstrap_servers, "a Kafka runner needs KAFKA_BOOTSTRAP_SERVERS"
    return kafka_runner(
        spec,
        settings.kafka_bootstrap_servers,
        settings.topic,
        layout=settings.topic_layout(),
        registry=registry,
        **({"readiness": settings.readiness_rules()} | options),
    )
