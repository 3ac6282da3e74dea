"""The relay's lean send: records go to the producer's accumulator on the partition
kafka-python's default partitioner picks, and anything the producer must check or
wait for goes through its own ``send``."""

from __future__ import annotations

import random
import uuid
from typing import Any

from kafka.partitioner.default import DefaultPartitioner
from kafka.partitioner.default import murmur2 as kafka_murmur2
from kafka.structs import TopicPartition

from services.common.kafka import MemoPartitioner, murmur2
from services.interviews.adapters.kafka_publisher import RecordSender

TOPIC = "interviews.events"
HEADERS = [("type", b"interview.invited"), ("schema_version", b"2")]


class FakeAccumulator:
    def __init__(self) -> None:
        self.appended: list[tuple[TopicPartition, bytes, bytes, list[Any]]] = []
        self.starts_batch = False

    def append(
        self, tp: TopicPartition, timestamp_ms: Any, key: bytes, value: bytes, headers: Any
    ) -> tuple[object, bool, bool, bool]:
        self.appended.append((tp, key, value, headers))
        return object(), False, self.starts_batch, False


class FakeSender:
    def __init__(self) -> None:
        self.wakeups = 0

    def wakeup(self) -> None:
        self.wakeups += 1


class FakeCluster:
    def __init__(self, partitions: set[int] | None) -> None:
        self.partitions = partitions

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return self.partitions


class FakeTransactions:
    def is_transactional(self) -> bool:
        return True


class FakeProducer:
    """kafka-python's ``KafkaProducer`` as far as ``RecordSender`` sees it."""

    def __init__(self, partitions: set[int] | None = None) -> None:
        self._accumulator = FakeAccumulator()
        self._sender = FakeSender()
        self._metadata = FakeCluster(partitions if partitions is not None else set(range(6)))
        self._transaction_manager: Any = None
        self.config = {"max_request_size": 1_048_576}
        self.sent: list[tuple[str, bytes, bytes]] = []

    def send(self, topic: str, *, key: bytes, value: bytes, headers: Any) -> object:
        self.sent.append((topic, key, value))
        return object()


def sender_of(producer: FakeProducer) -> RecordSender:
    return RecordSender(producer, TOPIC, MemoPartitioner())


def test_a_record_goes_to_the_partition_of_its_key_as_kafka_places_it() -> None:
    producer = FakeProducer()
    sender = sender_of(producer)
    keys = [f"interview-{i}".encode() for i in range(50)]

    for key in keys + keys:
        sender.send(key, b"{}", HEADERS)

    placed = [(tp.topic, tp.partition, key) for tp, key, _, _ in producer._accumulator.appended]
    expected = [(TOPIC, (kafka_murmur2(key) & 0x7FFFFFFF) % 6, key) for key in keys + keys]
    assert placed == expected
    assert producer.sent == []


def test_the_record_keeps_its_bytes_and_headers() -> None:
    producer = FakeProducer()

    sender_of(producer).send(b"i-1", b'{"id":"e-1"}', HEADERS)

    (_, key, value, headers), *_ = producer._accumulator.appended
    assert (key, value, headers) == (b"i-1", b'{"id":"e-1"}', HEADERS)


def test_the_sender_thread_is_woken_when_a_batch_starts() -> None:
    producer = FakeProducer()
    sender = sender_of(producer)
    sender.send(b"i-1", b"{}", HEADERS)
    assert producer._sender.wakeups == 0

    producer._accumulator.starts_batch = True
    sender.send(b"i-2", b"{}", HEADERS)

    assert producer._sender.wakeups == 1


def test_before_the_topic_is_known_the_producer_sends_it_and_waits_for_metadata() -> None:
    producer = FakeProducer()
    producer._metadata.partitions = None

    sender_of(producer).send(b"i-1", b"{}", HEADERS)

    assert producer.sent == [(TOPIC, b"i-1", b"{}")]
    assert producer._accumulator.appended == []


def test_a_value_near_the_request_limit_goes_through_the_producers_size_check() -> None:
    producer = FakeProducer()
    big = b"x" * (1_048_576 - 1000)

    sender_of(producer).send(b"i-1", big, HEADERS)

    assert producer.sent == [(TOPIC, b"i-1", big)]
    assert producer._accumulator.appended == []


def test_a_transactional_producer_sends_every_record_itself() -> None:
    producer = FakeProducer()
    producer._transaction_manager = FakeTransactions()

    sender_of(producer).send(b"i-1", b"{}", HEADERS)

    assert producer.sent == [(TOPIC, b"i-1", b"{}")]


def test_murmur2_is_the_java_clients_hash_as_kafka_python_computes_it() -> None:
    rng = random.Random(7)
    keys = [b"", b"a", b"ab", b"abc", b"abcd", str(uuid.UUID(int=0)).encode()]
    keys += [rng.randbytes(rng.randrange(0, 300)) for _ in range(2000)]
    keys += [str(uuid.UUID(int=rng.getrandbits(128))).encode() for _ in range(2000)]

    assert [murmur2(key) for key in keys] == [kafka_murmur2(key) for key in keys]


def test_with_another_partitioner_the_producer_places_every_record() -> None:
    producer = FakeProducer()

    RecordSender(producer, TOPIC, DefaultPartitioner()).send(b"i-1", b"{}", HEADERS)

    assert producer.sent == [(TOPIC, b"i-1", b"{}")]


class OneBroker:
    """Cluster metadata: every partition led by broker 0."""

    def leader_for_partition(self, tp: TopicPartition) -> int:
        return 0


def test_a_caught_up_publisher_sends_each_record_at_once_and_a_backlog_lingers() -> None:
    from kafka.producer.record_accumulator import RecordAccumulator

    from services.interviews.adapters.kafka_publisher import Producer

    accumulator = RecordAccumulator(linger_ms=60_000)
    producer = FakeProducer({0})
    producer._accumulator = accumulator  # type: ignore[assignment]
    publisher = Producer.__new__(Producer)  # kafka-python's real accumulator, no broker
    publisher._producer, publisher._linger_ms = producer, 60_000
    tp = TopicPartition(TOPIC, 0)

    publisher.linger(False)
    accumulator.append(tp, None, b"k", b"v", [])
    ready, _, _ = accumulator.ready(OneBroker())
    assert ready == {0}, "caught up: the record is ready to go at once"
    assert producer._sender.wakeups == 1

    publisher.linger(True)
    ready, _, _ = accumulator.ready(OneBroker())
    assert ready == set(), "a backlog's batch waits for more records"
