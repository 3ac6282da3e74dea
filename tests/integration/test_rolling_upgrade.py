"""A rolling upgrade of the projections through a view schema bump, with events
flowing: the previous release and the new one run in ONE consumer group on Kafka
and one database. The new release rebuilds a new generation while the old one
keeps the current generation; once the new generation is swapped in, the old
release meets a generation newer than its code and steps aside (stops consuming,
moves no offset, parks nothing, fails readiness) instead of parking. After the
old one is stopped, every event is in the final views: they equal the fold of
the events."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from services.common.kafka import ensure_topics
from services.common.readiness import NotReadyError
from services.common.runner.parked import list_parked
from services.contracts import EventEnvelope
from services.projections.adapters.schema import VIEW_SCHEMAS, view_tables
from services.projections.adapters.store import current_generation
from services.projections.bootstrap import ConsumerWorker, ProjectionsContainer, create_app
from services.projections.settings import ProjectionsSettings
from tests.conftest import TEST_SECRET
from tests.support.projections_reference import (
    assert_views_equal_reference,
    batches,
    scripts,
    synthetic_events,
)
from tests.support.waiting import wait_until

from .eventflow import topic_cleanup, unique_topic

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

OLD = dict(VIEW_SCHEMAS)
NEW = {**VIEW_SCHEMAS, "interview_summary": VIEW_SCHEMAS["interview_summary"] + 1}


@pytest.fixture
def topic(kafka_bootstrap: str) -> Iterator[str]:
    name = unique_topic("upgrade")
    ensure_topics(kafka_bootstrap, {name: (3, {})})
    yield from topic_cleanup(kafka_bootstrap, name)


def produce(bootstrap: str, topic: str, events: list[EventEnvelope]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all")
    for e in events:
        producer.send(topic, key=str(e.interview_id).encode(), value=e.to_bytes())
    producer.flush(30)
    producer.close()


def applied_versions(container: ProjectionsContainer) -> int:
    """The sum of every interview's version in the current generation."""
    with container.engine().begin() as conn:
        generation = current_generation(conn)
        if generation is None:
            return 0
        version = view_tables(generation.number).interviews.c.version
        return int(conn.execute(sa.select(sa.func.sum(version))).scalar() or 0)


def versions_of(events: list[EventEnvelope]) -> int:
    latest: dict[str, int] = {}
    for e in events:
        latest[str(e.interview_id)] = max(latest.get(str(e.interview_id), 0), e.version)
    return sum(latest.values())


def test_old_and_new_releases_share_the_group_through_a_schema_bump_and_lose_nothing(
    postgres_url: str,
    tmp_path: Path,
    kafka_bootstrap: str,
    topic: str,
    token: Callable[[str, str], dict[str, str]],
) -> None:
    settings = ProjectionsSettings(
        database_url=postgres_url,
        projections_database_url=postgres_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        EVENTS_TOPIC=topic,
        projections_consumer_group=f"views-{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path,
        auth_secret=TEST_SECRET,
        consumer_halt_retry_seconds=600,  # the old release stays aside until stopped
    )
    events = synthetic_events(scripts(400))
    first, rest = events[:800], events[800:]
    old = ProjectionsContainer(settings, view_schemas=OLD)
    new = ProjectionsContainer(settings, view_schemas=NEW)
    old_worker = ConsumerWorker(old, poll_timeout=0.1).start()
    new_worker: ConsumerWorker | None = None
    flowing = threading.Event()

    def keep_producing() -> None:
        for chunk in batches(rest, 40):
            produce(kafka_bootstrap, topic, chunk)
            flowing.set()

    producer = threading.Thread(target=keep_producing)
    try:
        produce(kafka_bootstrap, topic, first)
        assert wait_until(lambda: applied_versions(old) == versions_of(first), 60)

        producer.start()
        assert flowing.wait(30)
        new_worker = ConsumerWorker(new, poll_timeout=0.1).start()  # the deploy begins
        assert wait_until(lambda: new.rebuild_thread is not None, 60)
        assert new.rebuild_thread is not None
        new.rebuild_thread.join(120)
        assert new.last_rebuild is not None, "the new generation was built and swapped in"
        with new.engine().begin() as conn:
            generation = current_generation(conn)
            assert generation is not None and generation.matches(NEW)

        producer.join(120)
        # Events keep coming to the old release's partitions: it steps aside.
        assert wait_until(lambda: old_worker.runner is not None and old_worker.runner.halted, 60)
        with pytest.raises(NotReadyError, match="ViewNewerThanCodeError"):
            old_worker.runner.check_ready()
        assert list_parked(old.engine(), settings.projections_consumer_group) == []

        old_worker.stop()  # the deploy ends
        total = versions_of(events)
        assert wait_until(lambda: applied_versions(new) == total, 120), (
            f"{applied_versions(new)} of {total} versions applied"
        )
        with TestClient(create_app(new)) as api:
            assert_views_equal_reference(api, token, events)
    finally:
        if producer.is_alive():
            producer.join(60)
        old_worker.stop()
        if new_worker is not None:
            new_worker.stop()
        old.close()
        new.close()
