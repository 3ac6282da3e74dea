"""A relay leader that hangs instead of dying (here: paused inside a publish) loses
its lease to the standby, and once it wakes it records nothing and publishes
nothing more: the epoch stored with the position fences it. On PostgreSQL the
paused leader keeps its connection and its advisory lock, which therefore cannot
be what decides."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from uuid import uuid4

import pytest
import sqlalchemy as sa

from services.common.db import create_engine
from services.common.migrations import migrate
from services.contracts import EventEnvelope
from services.interviews.adapters.relay_position import FencedLease, PositionStore, fenced_lease
from services.interviews.migrations import HISTORY as INTERVIEWS_HISTORY
from services.interviews.relay import Relay
from services.interviews.settings import RelaySettings
from tests.support.relay_fakes import FakeBroker, FakeDelivery, FakeFeed, envelope
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@dataclass
class PausingBroker(FakeBroker):
    """A broker whose publish hangs while ``paused`` is set (the leader is frozen)."""

    paused: threading.Event = field(default_factory=threading.Event)
    hanging: threading.Event = field(default_factory=threading.Event)
    resume: threading.Event = field(default_factory=threading.Event)

    def publish(self, event: EventEnvelope) -> FakeDelivery:
        if self.paused.is_set():
            self.hanging.set()
            self.resume.wait(60)
        return super().publish(event)


@pytest.fixture
def engine(database_url: str | None, tmp_path: Path) -> Iterator[sa.Engine]:
    engine = create_engine(database_url, tmp_path / "interviews.sqlite")
    migrate(engine, [INTERVIEWS_HISTORY])
    yield engine
    engine.dispose()


def events_of(count: int, first_position: int) -> list[EventEnvelope]:
    return [envelope(uuid4(), 1, first_position + i) for i in range(count)]


def test_a_hung_leader_loses_its_lease_and_cannot_publish_or_record_after_waking(
    engine: sa.Engine,
) -> None:
    settings = RelaySettings(
        RELAY_CHECKPOINT_SECONDS=0,
        RELAY_POLL_SECONDS=0.02,
        RELAY_LEASE_SECONDS=0.6,
        RELAY_TAKEOVER_SECONDS=30,
        RELAY_READ_BATCH=5,
    )
    feed = FakeFeed(events_of(10, 1), max_position=10)
    broker_a, broker_b = PausingBroker(), PausingBroker()

    def relay(broker: FakeBroker) -> Relay:
        positions = PositionStore(engine, "interviews.events")
        lease = fenced_lease(positions, settings, feed.max_position)
        return Relay(feed, positions, broker.connect, settings=settings, lease=lease)  # type: ignore[arg-type]

    leader, standby = relay(broker_a), relay(broker_b)
    store = PositionStore(engine, "interviews.events")
    threads = [threading.Thread(target=r.run, daemon=True) for r in (leader, standby)]
    threads[0].start()
    try:
        assert wait_until(lambda: store.load() == 10, 30)
        threads[1].start()
        assert isinstance(leader.lease, FencedLease) and leader.lease.epoch == 1

        broker_a.paused.set()  # the leader freezes inside its next publish
        feed.events += events_of(10, 11)
        feed.max = 20
        leader.wake.set()
        assert broker_a.hanging.wait(30)

        assert wait_until(lambda: standby.stats.leader and store.load() == 20, 30)
        assert store.row().epoch == 2 and store.row().holder == standby.lease.holder  # type: ignore[union-attr]
        assert [e.position for e in broker_b.published] == list(range(11, 21))

        broker_a.resume.set()  # the old leader wakes up
        assert wait_until(lambda: not leader.stats.leader, 30)
        assert leader.lease.epoch is None
        feed.events += events_of(5, 21)
        feed.max = 25
        standby.wake.set()
        leader.wake.set()
        assert wait_until(lambda: store.load() == 25, 30)
        assert [e.position for e in broker_b.published][-5:] == list(range(21, 26))
        assert max(e.position for e in broker_a.published) <= 15, (
            "after waking the old leader published at most the batch it had checked"
        )
        assert store.row().epoch == 2
    finally:
        broker_a.resume.set()
        for r in (leader, standby):
            r.stop()
        for t in threads:
            if t.is_alive() or t.ident is not None:
                t.join(10)


@pytest.mark.kafka
def test_a_sigstopped_relay_process_is_replaced_and_fenced_on_postgres(
    postgres_url: str, tmp_path: Path, kafka_bootstrap: str
) -> None:
    """Real processes, PostgreSQL and Kafka: the frozen leader keeps its connection
    (and its advisory lock); the standby takes over all the same, and the leader,
    thawed, does not take the lead back or move the recorded position."""
    import json
    import os
    import random
    import signal
    import subprocess
    import sys

    from services.interviews.bootstrap import InterviewsContainer
    from services.interviews.settings import InterviewsSettings
    from tests.conftest import TEST_SECRET

    from .eventflow import Workload, expected_events, read_topic, topic_cleanup, unique_topic

    topic = unique_topic("fence")
    cleanup = topic_cleanup(kafka_bootstrap, topic)
    next(cleanup)
    container = InterviewsContainer(
        InterviewsSettings(database_url=postgres_url, data_dir=tmp_path, auth_secret=TEST_SECRET)
    )
    app = container.interviews()
    engine = create_engine(postgres_url, tmp_path / "unused.sqlite")
    env = os.environ | {
        "DATABASE_URL": postgres_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "EVENTS_TOPIC": topic,
        "DATA_DIR": str(tmp_path),
        "RELAY_METRICS_PORT": "0",
        "RELAY_LEASE_SECONDS": "2",
        "LOG_LEVEL": "WARNING",
    }
    root = Path(__file__).resolve().parents[2]
    relays: list[subprocess.Popen[bytes]] = []
    stopped: subprocess.Popen[bytes] | None = None

    def start_relay() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "relay"],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "relay.log", "ab"),  # noqa: SIM115
        )
        relays.append(process)
        return process

    def row() -> tuple[int, int, int | None]:
        store = PositionStore(engine, topic)
        current = store.row()
        pid = int(current.holder.split(":")[1]) if current.holder else None
        return current.position, current.epoch, pid

    workload = Workload(app, rng=random.Random(7))
    try:
        first = start_relay()
        workload.run(40)
        assert wait_until(lambda: row()[0] >= app.max_position() and row()[2] == first.pid, 60)
        second = start_relay()
        workload.run(20)
        assert wait_until(lambda: row()[0] >= app.max_position(), 60)
        _, epoch, leader = row()
        assert leader == first.pid

        first.send_signal(signal.SIGSTOP)  # hangs: its connection and lock stay
        stopped = first
        workload.run(40)
        assert wait_until(lambda: row()[2] == second.pid and row()[0] >= app.max_position(), 60), (
            f"the standby did not take over: {row()}"
        )
        assert row()[1] == epoch + 1

        first.send_signal(signal.SIGCONT)
        stopped = None
        workload.run(40)
        assert wait_until(lambda: row()[0] >= app.max_position(), 60)
        _, final_epoch, final_leader = row()
        assert (final_epoch, final_leader) == (epoch + 1, second.pid), "no flapping back"

        expected = expected_events(app)
        published = {json.loads(m.value)["id"] for m in read_topic(kafka_bootstrap, topic,
                                                                    len(expected))}  # fmt: skip
        assert set(expected) <= published, "every event reached the topic"
    finally:
        workload.stop()
        if stopped is not None:
            stopped.send_signal(signal.SIGCONT)
        for process in relays:
            process.kill()
            process.wait(10)
        engine.dispose()
        container.close()
        next(cleanup, None)
