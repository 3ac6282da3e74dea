"""The relay against the real broker: every event once, in order per interview, and
nothing lost when the relay is SIGKILLed again and again while commands flow."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest

from services.common.db import create_engine
from services.common.runner.kafka_source import KafkaSource
from services.common.runner.loop import ConsumerRunner
from services.contracts import decode_envelope
from services.interviews.adapters.tables import relay_position
from services.interviews.bootstrap import InterviewsContainer, RelayProcess
from services.interviews.feed import InterviewEventFeed
from services.interviews.settings import InterviewsSettings, RelaySettings
from tests.conftest import TEST_SECRET
from tests.support.waiting import wait_until

from .eventflow import (
    TEST_LAYOUT,
    Workload,
    check_exactly_once_in_order,
    effects,
    expected_events,
    read_topic,
    recording_spec,
    topic_cleanup,
    unique_topic,
)

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def topic(kafka_bootstrap: str) -> Iterator[str]:
    yield from topic_cleanup(kafka_bootstrap, unique_topic("relay"))


def store_and_relay_settings(
    database_url: str | None, tmp_path: Path, bootstrap: str, topic: str, **extra: Any
) -> tuple[InterviewsContainer, RelaySettings]:
    container = InterviewsContainer(
        InterviewsSettings(database_url=database_url, data_dir=tmp_path, auth_secret=TEST_SECRET)
    )
    settings = RelaySettings(
        database_url=database_url,
        data_dir=tmp_path,
        kafka_bootstrap_servers=bootstrap,
        EVENTS_TOPIC=topic,
        **extra,
    )
    return container, settings


def consumer(engine: sa.Engine, group: str, bootstrap: str, topic: str) -> ConsumerRunner:
    return ConsumerRunner(
        recording_spec(engine, group), KafkaSource(bootstrap, topic, layout=TEST_LAYOUT)
    ).start()


def test_relay_publishes_every_event_once_keyed_and_in_order_per_interview(
    database_url: str | None, tmp_path: Path, kafka_bootstrap: str, topic: str
) -> None:
    container, settings = store_and_relay_settings(database_url, tmp_path, kafka_bootstrap, topic)
    app = container.interviews()
    registry = CollectorRegistry()
    relay = RelayProcess(app, settings, registry=registry).start()
    engine = create_engine(None, tmp_path / "consumer.sqlite")
    runner = consumer(engine, "relayed", kafka_bootstrap, topic)
    try:
        assert runner.wait_opened(30)
        Workload(app).run(400)
        expected = expected_events(app)
        assert wait_until(lambda: len(effects(engine, "relayed")) >= len(expected), 60)
        check_exactly_once_in_order(effects(engine, "relayed"), expected)
        assert wait_until(lambda: b"relay_lag_positions 0.0" in generate_latest(registry), 5)

        messages = read_topic(kafka_bootstrap, topic, expect=len(expected))
        feed = InterviewEventFeed(app)
        envelopes = {e.position: e for e in feed.read(0, len(expected) + 10)}
        partitions = defaultdict(set)
        for m in messages:
            envelope = envelopes[decode_envelope(m.value).position]
            assert m.value == envelope.to_bytes(), "exactly the contract model's bytes"
            assert m.key == str(envelope.interview_id).encode()
            headers = dict(m.headers)
            assert headers["content-type"] == b"application/json"
            assert headers["type"] == envelope.type.encode()
            assert headers["schema_version"] == str(envelope.schema_version).encode()
            partitions[m.key].add(m.partition)
        assert all(len(p) == 1 for p in partitions.values()), "one partition per interview"
        assert {k.decode() for k in partitions} == {i for i, _ in expected.values()}
    finally:
        runner.stop()
        relay.stop()
        runner.join(15)
        engine.dispose()
        container.close()


def test_two_relays_publish_each_event_once_and_the_standby_takes_over(
    database_url: str | None, tmp_path: Path, kafka_bootstrap: str, topic: str
) -> None:
    """Run a spare relay for failover: only the lease holder publishes, and when it
    stops the other carries on from its recorded position, nothing twice."""
    container, settings = store_and_relay_settings(
        database_url, tmp_path, kafka_bootstrap, topic, RELAY_LEASE_SECONDS=1.5
    )
    app = container.interviews()
    first = RelayProcess(app, settings).start()
    second: RelayProcess | None = None
    workload = Workload(app, rng=random.Random(3))

    def caught_up(process: RelayProcess) -> bool:
        return process.relay.stats.published_position >= app.max_position()

    try:
        assert wait_until(lambda: first.relay.stats.leader, 20)
        second = RelayProcess(app, settings).start()
        workload.run(150)
        assert wait_until(lambda: caught_up(first), 30)
        assert not second.relay.stats.leader and second.relay.stats.published == 0
        half = expected_events(app)

        first.stop()  # flushes, records its position, lets go of the lease
        assert wait_until(lambda: second.relay.stats.leader, 20), "the standby takes over"
        workload.run(150)
        assert wait_until(lambda: caught_up(second), 30)
        expected = expected_events(app)
        assert len(expected) > len(half)

        ids = [json.loads(m.value)["id"] for m in read_topic(kafka_bootstrap, topic, len(expected))]
        assert sorted(ids) == sorted(expected), "every event once: no gap, no duplicate"
        assert second.relay.stats.published == len(expected) - len(half)
    finally:
        workload.stop()
        first.stop()
        if second is not None:
            second.stop()
        container.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sigkilled_relay_loses_nothing_and_republished_events_take_effect_once(
    postgres_url: str, tmp_path: Path, kafka_bootstrap: str, topic: str
) -> None:
    container = InterviewsContainer(
        InterviewsSettings(database_url=postgres_url, data_dir=tmp_path, auth_secret=TEST_SECRET)
    )
    app = container.interviews()
    engine = create_engine(postgres_url, tmp_path / "unused.sqlite")
    runner = consumer(engine, "survivor", kafka_bootstrap, topic)
    metrics_port = _free_port()
    env = os.environ | {
        "DATABASE_URL": postgres_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "EVENTS_TOPIC": topic,
        "DATA_DIR": str(tmp_path),
        "RELAY_METRICS_PORT": "0",
        # Checkpoint rarely, so that a kill leaves acknowledged but unrecorded
        # events behind: they are published again and must not take effect twice.
        "RELAY_CHECKPOINT_SECONDS": "1.0",
        "LOG_LEVEL": "WARNING",
    }

    def start_relay(**extra: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", "relay"],
            cwd=ROOT,
            env=env | extra,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "relay.log", "ab"),
        )

    def recorded() -> int:
        with engine.connect() as conn:
            try:
                value = conn.execute(
                    sa.select(relay_position.c.position).where(relay_position.c.topic == topic)
                ).scalar()
            except sa.exc.ProgrammingError:
                return 0
        return int(value or 0)

    workload = Workload(app, rng=random.Random(11))
    rng = random.Random(5)
    kills = 0
    relay: subprocess.Popen[bytes] | None = None
    commands = None
    try:
        assert runner.wait_opened(30)
        commands = workload.in_background(2000, 160.0)
        while commands.is_alive() or kills < 5:
            before = recorded()
            relay = start_relay()
            # Kill it mid-stream: after it has published and recorded some progress.
            assert wait_until(lambda b=before: recorded() > b, 30, 0.02), "relay made no progress"
            time.sleep(rng.uniform(0.05, 0.9))
            relay.send_signal(signal.SIGKILL)
            relay.wait(10)
            kills += 1
        commands.join()
        assert workload.commands == 2000 and kills >= 5

        relay = start_relay(RELAY_METRICS_PORT=str(metrics_port))
        expected = expected_events(app)
        assert wait_until(lambda: len(effects(engine, "survivor")) >= len(expected), 90)
        check_exactly_once_in_order(effects(engine, "survivor"), expected)

        delivered = read_topic(kafka_bootstrap, topic, expect=len(expected))
        assert len(delivered) > len(expected), "the kills made the relay publish events again"
        assert runner.stats.duplicates >= len(delivered) - len(expected)

        def scrape() -> str:
            try:
                return httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            except httpx.TransportError:
                return ""  # the last relay may still be starting: it had nothing left to do

        assert wait_until(lambda: "relay_lag_positions 0.0" in scrape(), 30, 0.2)
        assert "relay_events_published_total" in scrape()
        ready = httpx.get(f"http://127.0.0.1:{metrics_port}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text  # leading, with a producer

        relay.send_signal(signal.SIGTERM)
        assert relay.wait(20) == 0, "SIGTERM stops the relay cleanly"
    finally:
        workload.stop(commands)
        if relay is not None and relay.poll() is None:
            relay.kill()
            relay.wait()
        runner.stop()
        runner.join(15)
        engine.dispose()
        container.close()
