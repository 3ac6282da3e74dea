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
from services.contracts import EventEnvelope
from services.interviews.relay import (
    FencedLease,
    PositionStore,
    Relay,
    RelaySettings,
    fenced_lease,
)
from tests.integration.eventflow import wait_until
from tests.unit.test_relay_outbox import FakeBroker, FakeDelivery, FakeFeed, envelope

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
