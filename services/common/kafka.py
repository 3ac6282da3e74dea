"""Kafka plumbing shared by the relay and the consumer runner (kafka-python)."""

from __future__ import annotations

import logging
import struct
from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from kafka.partitioner.default import DefaultPartitioner

log = logging.getLogger(__name__)

UNLIMITED_RETENTION = {"retention.ms": "-1"}
# A dead-letter topic must take any message its source topic could hold, plus the
# error headers: up to 16 MiB per message (brokers default to about 1 MB).
DLQ_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
DLQ_TOPIC_CONFIG = {**UNLIMITED_RETENTION, "max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES)}


def producer_settings(
    bootstrap_servers: str,
    *,
    client_id: str,
    linger_ms: int = 5,
    batch_size: int = 256 * 1024,
    max_block_ms: int = 10_000,
    delivery_timeout_ms: int = 120_000,
) -> dict[str, Any]:
    """Durable, ordered producer settings: idempotent, acks=all, batched by linger.

    With idempotence the broker refuses a gap in a partition's sequence, so a
    later event of an interview is never written before an earlier one, even
    with several requests in flight.
    """
    return {
        "bootstrap_servers": bootstrap_servers.split(","),
        "client_id": client_id,
        "acks": "all",
        "enable_idempotence": True,
        "max_in_flight_requests_per_connection": 5,
        "retries": 2**31 - 1,
        "linger_ms": linger_ms,
        "batch_size": batch_size,
        "max_block_ms": max_block_ms,
        "delivery_timeout_ms": delivery_timeout_ms,
        "request_timeout_ms": min(30_000, delivery_timeout_ms - linger_ms - 1),
        "reconnect_backoff_max_ms": 2_000,
    }


class MemoPartitioner(DefaultPartitioner):
    """kafka-python's default partitioner (murmur2 of the key, as the Java client),
    remembering recent keys: the same partition for a key, without hashing it
    again for every event of the same interview (murmur2 is pure Python)."""

    def __init__(self, maxsize: int = 100_000) -> None:
        self._maxsize = maxsize
        self._memo: OrderedDict[tuple[bytes, int], int] = OrderedDict()

    def partition(
        self,
        topic: str,
        key: Any,
        serialized_key: bytes | None,
        value: Any,
        serialized_value: Any,
        cluster: Any,
    ) -> int:
        if serialized_key is None:
            return super().partition(topic, key, serialized_key, value, serialized_value, cluster)
        all_partitions = cluster.partitions_for_topic(topic)
        if all_partitions is None:
            raise ValueError(f"Topic {topic} not found in ClusterMetadata")
        return self.place(serialized_key, all_partitions)

    def place(self, serialized_key: bytes, all_partitions: Collection[int]) -> int:
        """The partition of ``serialized_key`` among the topic's ``all_partitions``."""
        memo_key = (serialized_key, len(all_partitions))
        partition = self._memo.get(memo_key)
        if partition is None:
            index = (murmur2(serialized_key) & 0x7FFFFFFF) % len(all_partitions)
            partition = sorted(all_partitions)[index]
            self._memo[memo_key] = partition
            if len(self._memo) > self._maxsize:
                self._memo.popitem(last=False)
        return partition


_M = 0x5BD1E995
_WORDS = [struct.Struct(f"<{n}I") for n in range(64)]


def murmur2(data: bytes) -> int:
    """``kafka.partitioner.default.murmur2`` (the Java client's hash), the same
    arithmetic on whole 32-bit words: a few times faster in pure Python."""
    length = len(data)
    words = length // 4
    unpack = _WORDS[words] if words < len(_WORDS) else struct.Struct(f"<{words}I")
    h = 0x9747B28C ^ length
    for k in unpack.unpack_from(data):
        k = (k * _M) & 0xFFFFFFFF
        k ^= k >> 24
        h = ((h * _M) & 0xFFFFFFFF) ^ ((k * _M) & 0xFFFFFFFF)
    tail = length & ~3
    extra = length & 3
    if extra >= 3:
        h ^= data[tail + 2] << 16
    if extra >= 2:
        h ^= data[tail + 1] << 8
    if extra >= 1:
        h = ((h ^ data[tail]) * _M) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * _M) & 0xFFFFFFFF
    return h ^ (h >> 15)


def ensure_topics(
    bootstrap_servers: str,
    topics: Mapping[str, tuple[int, Mapping[str, str]]],
    *,
    replication_factor: int = -1,
    client_id: str = "interviews-admin",
    timeout_ms: int = 15_000,
) -> list[str]:
    """Creates the topics that are missing: ``{name: (partitions, configs)}``.

    ``replication_factor=-1`` takes the broker's default. Returns the topics
    created now (an existing topic is left as it is).
    """
    from kafka import KafkaAdminClient
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_servers.split(","),
        client_id=client_id,
        request_timeout_ms=timeout_ms,
    )
    try:
        existing = set(admin.list_topics())
        wanted = {
            name: {
                "num_partitions": partitions,
                "replication_factor": replication_factor,
                "configs": dict(configs),
            }
            for name, (partitions, configs) in topics.items()
            if name not in existing
        }
        if not wanted:
            return []
        result = admin.create_topics(wanted, timeout_ms=timeout_ms, raise_errors=False)
        created = []
        for topic in result["topics"]:
            code = topic.get("error_code", 0)
            if code == 0:
                created.append(topic["name"])
            elif code != TopicAlreadyExistsError.errno:
                raise RuntimeError(
                    f"could not create topic {topic['name']}: error {code} "
                    f"{topic.get('error_message') or ''}"
                )
        if created:
            admin.wait_for_topics(created, timeout_ms=timeout_ms)
            log.info("created topics %s", ", ".join(created))
        return created
    finally:
        admin.close()


@dataclass(frozen=True)
class TopicLayout:
    """How the events topic is created when missing, by whichever process comes
    first (the relay or a consumer): ``CommonSettings.topic_layout()``, from
    ``KAFKA_TOPIC_PARTITIONS`` and ``KAFKA_REPLICATION_FACTOR``."""

    partitions: int
    replication_factor: int  # -1: the broker's default.replication.factor


def dlq_topic_for(topic: str) -> str:
    """The dead-letter topic of ``topic``: ``interviews.events.dlq`` for DESIGN's topic."""
    return f"{topic}.dlq"


def ensure_event_topics(
    bootstrap_servers: str, topic: str, layout: TopicLayout, *, client_id: str
) -> list[str]:
    """The events topic (unlimited retention, ``layout``) and its dead-letter topic
    (one partition, room for any message of the topic), if missing."""
    return ensure_topics(
        bootstrap_servers,
        {
            topic: (layout.partitions, UNLIMITED_RETENTION),
            dlq_topic_for(topic): (1, DLQ_TOPIC_CONFIG),
        },
        replication_factor=layout.replication_factor,
        client_id=client_id,
    )


def topic_exists(bootstrap_servers: str, topic: str, timeout_ms: int = 5_000) -> bool:
    """Whether ``topic`` exists; ConnectionError when no broker answers.

    A probe: the client's own connection warnings are silenced, its answer is
    the return value or the error."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaConnectionError, KafkaTimeoutError

    client_log = logging.getLogger("kafka")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers.split(","),
            client_id="interviewctl",
            bootstrap_timeout_ms=timeout_ms,
        )
        try:
            return topic in consumer.topics()
        finally:
            consumer.close()
    except (KafkaTimeoutError, KafkaConnectionError):
        raise ConnectionError(f"no Kafka broker answers at {bootstrap_servers}") from None
    finally:
        client_log.setLevel(level)
