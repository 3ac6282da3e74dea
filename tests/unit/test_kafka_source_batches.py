"""How much one poll of the Kafka source may return: more while a backlog keeps
polls full, back to small batches once traffic is light."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

from services.common.kafka import TopicLayout
from services.common.runner.kafka_source import KafkaSource

Message = namedtuple("Message", "topic partition offset key value headers")


class FakeConsumer:
    """Has ``waiting`` messages on one partition; records the limit of each poll."""

    def __init__(self, waiting: int) -> None:
        self.waiting = waiting
        self.offset = 0
        self.limits: list[int] = []

    def poll(self, timeout_ms: int, max_records: int) -> dict[Any, list[Message]]:
        self.limits.append(max_records)
        n = min(self.waiting, max_records)
        self.waiting -= n
        messages = [Message("t", 0, self.offset + i, b"k", b"{}", []) for i in range(n)]
        self.offset += n
        return {("t", 0): messages} if messages else {}


def source_over(consumer: FakeConsumer) -> KafkaSource:
    source = KafkaSource("localhost:9092", "t", layout=TopicLayout(1, 1),
                         min_records=100, max_records=800)  # fmt: skip
    source.consumer = consumer
    return source


def test_a_backlog_is_read_in_batches_that_grow_to_the_maximum() -> None:
    consumer = FakeConsumer(waiting=5_000)
    source = source_over(consumer)
    sizes = [len(source.poll(0.1)) for _ in range(6)]
    assert sizes == [100, 200, 400, 800, 800, 800]
    assert consumer.limits == [100, 200, 400, 800, 800, 800]


def test_light_traffic_brings_the_limit_back_to_the_minimum() -> None:
    consumer = FakeConsumer(waiting=700)
    source = source_over(consumer)
    sizes = [len(source.poll(0.1)) for _ in range(4)]
    assert sizes == [100, 200, 400, 0]  # the fourth poll finds nothing left
    consumer.waiting = 3  # a few events arrive
    assert len(source.poll(0.1)) == 3
    assert consumer.limits == [100, 200, 400, 800, 100]
    source.poll(0.1)
    assert consumer.limits[-1] == 100  # a partial poll did not grow it
