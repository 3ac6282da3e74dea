"""The events topic gets the configured layout whichever process creates it first:
the relay, or a consumer that starts before any relay."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

from services.common.db import create_engine
from services.common.runner.kafka_source import kafka_runner
from services.interviews.bootstrap import InterviewsContainer, RelayProcess
from services.interviews.settings import InterviewsSettings, RelaySettings
from services.projections.settings import ProjectionsSettings
from tests.conftest import TEST_SECRET

from .eventflow import recording_spec, topic_cleanup, unique_topic

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


@pytest.fixture
def topic(kafka_bootstrap: str) -> Iterator[str]:
    yield from topic_cleanup(kafka_bootstrap, unique_topic("layout"))


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str, topic: str) -> None:
    """The environment an operator sets for every process: 4 partitions, 1 replica."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("EVENTS_TOPIC", topic)
    monkeypatch.setenv("KAFKA_TOPIC_PARTITIONS", "4")
    monkeypatch.setenv("KAFKA_REPLICATION_FACTOR", "1")


def layout_of(bootstrap: str, topic: str) -> tuple[int, set[int]] | None:
    """(partitions, replica counts) of ``topic``; None while it does not exist."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        if topic not in admin.list_topics():
            return None
        [described] = admin.describe_topics([topic])
    finally:
        admin.close()
    partitions = described["partitions"]
    return len(partitions), {len(p["replica_nodes"]) for p in partitions}


@pytest.mark.usefixtures("configured")
def test_a_topic_the_consumer_creates_has_the_configured_partitions(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    settings = ProjectionsSettings(data_dir=tmp_path)
    assert layout_of(kafka_bootstrap, topic) is None
    engine = create_engine(None, tmp_path / "consumer.sqlite")
    runner = kafka_runner(
        recording_spec(engine, "layout"),
        settings.kafka_bootstrap_servers or "",
        settings.topic,
        layout=settings.topic_layout(),
    ).start()
    try:
        assert runner.wait_opened(30)
        assert layout_of(kafka_bootstrap, topic) == (4, {1})
        assert layout_of(kafka_bootstrap, f"{topic}.dlq") == (1, {1})
    finally:
        runner.stop()
        runner.join(10)
        engine.dispose()


@pytest.mark.usefixtures("configured")
def test_a_topic_the_relay_creates_has_the_configured_partitions(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    container = InterviewsContainer(
        InterviewsSettings(database_url=None, data_dir=tmp_path, auth_secret=TEST_SECRET)
    )
    process = RelayProcess(
        container.interviews(), RelaySettings(database_url=None, data_dir=tmp_path)
    )
    try:
        assert layout_of(kafka_bootstrap, topic) is None
        process.relay.connect().close()  # what the relay does before publishing
        assert layout_of(kafka_bootstrap, topic) == (4, {1})
    finally:
        process.close()
        container.close()
