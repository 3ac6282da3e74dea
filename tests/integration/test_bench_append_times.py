"""The latency bench reads when each event reached the topic from the broker's own
append times, on the measuring process's clock, instead of tailing the topic."""

from __future__ import annotations

import time
import uuid

import pytest

from bench.common import LOG_APPEND_TIME, appended_at, delete_topics
from services.common.kafka import ensure_topics, producer_settings

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def test_each_key_gets_the_time_the_broker_appended_its_first_message(
    kafka_bootstrap: str,
) -> None:
    from kafka import KafkaProducer

    topic = f"test-append-times-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, {topic: (3, LOG_APPEND_TIME)})
    producer = KafkaProducer(**producer_settings(kafka_bootstrap, client_id="test", linger_ms=0))
    try:
        sent: dict[str, tuple[float, float]] = {}
        for key in ("a", "b", "c"):
            before = time.perf_counter()
            producer.send(topic, key=key.encode(), value=b"1").get(timeout=30)
            sent[key] = (before, time.perf_counter())
        producer.send(topic, key=b"a", value=b"2").get(timeout=30)  # a later copy of "a"

        times = appended_at(kafka_bootstrap, topic)
    finally:
        producer.close()
        delete_topics(kafka_bootstrap, [topic])

    assert set(times) == {"a", "b", "c"}
    for key, (before, acknowledged) in sent.items():
        # The broker's clock is the millisecond, truncated.
        assert before - 0.001 <= times[key] <= acknowledged, key
