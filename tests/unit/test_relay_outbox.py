"""The relay's outbox rules, with a fake broker: the position moves only past
acknowledged events, and a refused send means publishing again from there."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from uuid import uuid4

import pytest

from services.contracts import EventEnvelope
from services.interviews.relay import Relay, RelaySettings
from tests.support.relay_fakes import FakeBroker, FakeFeed, envelope
from tests.support.waiting import wait_until

pytestmark = pytest.mark.unit


@dataclass
class MemoryPositions:
    position: int = 0
    saves: list[int] = field(default_factory=list)

    def load(self) -> int:
        return self.position

    def save(self, position: int) -> None:
        self.position = position
        self.saves.append(position)


def relay(feed: FakeFeed, broker: FakeBroker, positions: MemoryPositions) -> Relay:
    settings = RelaySettings(RELAY_CHECKPOINT_SECONDS=0, RELAY_POLL_SECONDS=0.01)
    return Relay(feed, positions, broker.connect, settings=settings)  # type: ignore[arg-type]


def step(subject: Relay) -> None:
    """One round of the relay, and the position save it started (off its thread) over."""
    subject._step()
    subject._collect_save(wait=True)


def history() -> list[EventEnvelope]:
    a, b = uuid4(), uuid4()
    # Positions 1, 4, 5, 8, 9: the gaps are other aggregates' events (jobs, idempotency).
    return [envelope(a, 1, 1), envelope(b, 1, 4), envelope(a, 2, 5), envelope(b, 2, 8)]


def test_the_position_moves_only_past_events_the_broker_acknowledged() -> None:
    broker, positions = FakeBroker(auto_ack=False), MemoryPositions()
    subject = relay(FakeFeed(history(), max_position=9), broker, positions)
    subject._start()
    step(subject)
    assert len(broker.published) == 4
    assert positions.saves == [], "nothing acknowledged yet, nothing recorded"

    broker.acknowledge()
    step(subject)
    assert positions.position == 9, "caught up: past the other aggregates' events too"


def test_a_refused_send_republishes_from_the_recorded_position() -> None:
    events = history()
    feed = FakeFeed(events[:2], max_position=4)
    broker, positions = FakeBroker(), MemoryPositions()
    subject = relay(feed, broker, positions)
    subject._start()
    step(subject)  # publishes, acknowledged, records
    assert positions.position == 4

    feed.events, feed.max = events, 9
    broker.refuse_once = {5, 8}
    with pytest.raises(RuntimeError, match="refused"):
        for _ in range(3):
            step(subject)
    assert positions.position == 4
    subject._reset()
    subject._start()
    step(subject)
    assert [e.position for e in broker.published] == [1, 4, 5, 8, 5, 8]
    assert positions.position == 9
    assert broker.connections == 2


def test_run_backs_off_and_recovers_without_a_restart() -> None:
    events = history()
    broker, positions = FakeBroker(refuse_once={1, 4, 5, 8}), MemoryPositions()
    subject = relay(FakeFeed(events, max_position=9), broker, positions)
    subject.settings = subject.settings.model_copy(update={"max_backoff_seconds": 0.05})
    thread = threading.Thread(target=subject.run)
    thread.start()
    try:
        wait_until(lambda: positions.position == 9, 3.0)
    finally:
        subject.stop()
        thread.join(5)
    assert positions.position == 9
    assert subject.stats.errors == 1
    assert [e.position for e in broker.published] == [1, 4, 5, 8, 1, 4, 5, 8]


def test_a_send_refused_mid_batch_keeps_the_position_before_it_and_is_published_again() -> None:
    broker, positions = FakeBroker(refuse_once={5}), MemoryPositions()
    subject = relay(FakeFeed(history(), max_position=9), broker, positions)
    subject._start()
    with pytest.raises(RuntimeError, match="refused"):
        step(subject)  # 1 and 4 acknowledged, 5 refused, 8 acknowledged
    recorded = positions.position
    assert recorded < 5, "never past an event the broker did not take"

    subject._reset()
    subject._start()
    step(subject)
    assert [e.position for e in broker.published[4:]] == [p for p in (1, 4, 5, 8) if p > recorded]
    assert positions.position == 9


def test_a_caught_up_relay_sends_at_once_and_reads_on_before_the_broker_answers() -> None:
    events = history()
    feed = FakeFeed(events[:2], max_position=4)
    broker, positions = FakeBroker(auto_ack=False), MemoryPositions()
    subject = relay(feed, broker, positions)
    subject._start()
    step(subject)
    assert broker.lingering == [False], "no lingering for more: nothing more is coming"

    feed.events, feed.max = events, 9  # committed while 1 and 4 await the broker
    step(subject)
    assert [e.position for e in broker.published] == [1, 4, 5, 8]
    assert broker.flushes == 0, "it never waited for the broker"
    assert positions.saves == []

    broker.acknowledge()
    step(subject)
    assert positions.position == 9


def test_an_idle_relay_records_the_acknowledgements_without_reading_the_log_again() -> None:
    feed = CountingFeed(history(), max_position=9)
    broker, positions = FakeBroker(auto_ack=False), MemoryPositions()
    subject = relay(feed, broker, positions)
    subject.settings = subject.settings.model_copy(update={"poll_seconds": 60})
    thread = threading.Thread(target=subject.run)
    thread.start()
    try:
        assert wait_until(lambda: len(broker.published) == 4, 3.0)
        broker.acknowledge()
        assert wait_until(lambda: positions.position == 9, 3.0)
        assert feed.reads == 1, "nothing new was committed: it read the log once, not in a loop"
    finally:
        subject.stop()
        thread.join(5)
    assert [e.position for e in broker.published] == [1, 4, 5, 8]


class CountingFeed(FakeFeed):
    reads = 0

    def read_from_head(self, after: int, limit: int) -> tuple[int, list[EventEnvelope]]:
        self.reads += 1
        return super().read_from_head(after, limit)


def test_a_backlog_goes_in_full_batches_without_waiting_for_the_broker_between_them() -> None:
    broker, positions = FakeBroker(auto_ack=False), MemoryPositions()
    subject = relay(FakeFeed(history(), max_position=9), broker, positions)
    subject.settings = subject.settings.model_copy(update={"read_batch": 2})
    subject._start()
    step(subject)
    step(subject)
    assert [e.position for e in broker.published] == [1, 4, 5, 8]
    assert broker.lingering == [True, True], "a backlog's batches linger to fill up"
    step(subject)  # the log is read to its end
    assert broker.flushes == 0 and positions.saves == []
    broker.acknowledge()
    step(subject)
    assert positions.position == 9


@dataclass
class ScriptedLease:
    """Held or not, as the test says; counts how often it was asked."""

    held: bool = False
    asked: int = 0
    released: bool = False

    def acquire(self) -> bool:
        self.asked += 1
        return self.held

    def release(self) -> None:
        self.released = True


def test_a_standby_relay_publishes_nothing_then_takes_over_from_the_recorded_position() -> None:
    broker, positions = FakeBroker(), MemoryPositions(position=4)  # the leader got to 4
    lease = ScriptedLease(held=False)
    subject = relay(FakeFeed(history(), max_position=9), broker, positions)
    subject.lease = lease
    subject.settings = subject.settings.model_copy(update={"lease_seconds": 0.03})
    thread = threading.Thread(target=subject.run)
    thread.start()
    try:
        assert wait_until(lambda: lease.asked >= 3, 3.0), "a standby keeps asking for the lease"
        assert broker.published == [] and broker.connections == 0
        assert not subject.stats.leader
        assert subject.stats.published_position == 4, "its lag is the leader's"

        lease.held = True  # the leader died
        assert wait_until(lambda: positions.position == 9, 3.0)
        assert [e.position for e in broker.published] == [5, 8], "from where the leader was"
        assert subject.stats.leader
    finally:
        subject.stop()
        thread.join(5)
    assert lease.released, "a stopping leader lets go at once"


def test_a_relay_that_loses_the_lease_stops_publishing() -> None:
    events = history()
    feed = FakeFeed(events[:2], max_position=4)
    broker, positions = FakeBroker(), MemoryPositions()
    lease = ScriptedLease(held=True)
    subject = relay(feed, broker, positions)
    subject.lease = lease
    subject.settings = subject.settings.model_copy(update={"lease_seconds": 0.03})
    thread = threading.Thread(target=subject.run)
    thread.start()
    try:
        assert wait_until(lambda: positions.position == 4, 3.0)
        lease.held = False  # e.g. its lock's connection broke and another relay took it
        asked = lease.asked
        assert wait_until(lambda: lease.asked > asked + 2, 3.0)
        feed.events, feed.max = events, 9
        subject.wake.set()
        threading.Event().wait(0.1)
        assert [e.position for e in broker.published] == [1, 4]
        assert not subject.stats.leader
    finally:
        subject.stop()
        thread.join(5)


def test_a_leader_that_records_no_progress_while_there_is_work_is_not_ready() -> None:
    from services.interviews.relay import NotReadyError, relay_readiness

    now = [100.0]
    broker, positions = FakeBroker(auto_ack=False), MemoryPositions()
    subject = relay(FakeFeed(history(), max_position=9), broker, positions)
    subject.clock = lambda: now[0]
    subject.stats.leader = True
    subject._start()
    subject.stats.connected = True
    subject._progress_at = now[0]
    ready = relay_readiness(subject)
    step(subject)  # published, never acknowledged
    ready()
    now[0] += subject.settings.takeover_seconds + 1
    with pytest.raises(NotReadyError, match="no progress"):
        ready()
    broker.acknowledge()
    step(subject)
    ready()


@dataclass
class SlowPositions(MemoryPositions):
    """Saves that wait until the test lets them through (PostgreSQL slow to commit)."""

    through: threading.Event = field(default_factory=threading.Event)
    refuse: BaseException | None = None

    def save(self, position: int) -> None:
        self.through.wait(5)
        if self.refuse is not None:
            raise self.refuse
        super().save(position)


def test_a_slow_position_save_does_not_hold_up_the_next_events() -> None:
    events = history()
    feed = FakeFeed(events[:2], max_position=4)
    broker, positions = FakeBroker(), SlowPositions()
    subject = relay(feed, broker, positions)
    subject._start()
    subject._step()  # 1 and 4 acknowledged: their position's save starts and hangs
    feed.events, feed.max = events, 9
    subject._step()
    assert [e.position for e in broker.published] == [1, 4, 5, 8], "sent while it saved"
    assert positions.saves == [] and subject.stats.published_position == 0

    positions.through.set()
    subject._collect_save(wait=True)
    subject._step()
    subject._collect_save(wait=True)
    assert positions.saves == [4, 9], "each save in turn, never one past an unsaved one"
    assert subject.stats.published_position == 9


def test_a_save_refused_off_the_relays_thread_stops_it_as_an_inline_one_did() -> None:
    from services.interviews.adapters.relay_position import LostLeadershipError

    broker = FakeBroker()
    positions = SlowPositions(refuse=LostLeadershipError("epoch 1 is over"))
    subject = relay(FakeFeed(history()[:2], max_position=4), broker, positions)
    subject._start()
    subject._step()
    positions.through.set()
    with pytest.raises(LostLeadershipError):
        subject._collect_save(wait=True)
    assert positions.saves == [] and subject.stats.published_position == 0


def test_a_stopping_relay_records_its_last_position_after_a_save_in_progress() -> None:
    events = history()
    feed = FakeFeed(events[:2], max_position=4)
    broker, positions = FakeBroker(), SlowPositions()
    subject = relay(feed, broker, positions)
    subject._start()
    subject._step()  # the save of 4 hangs
    feed.events, feed.max = events, 9
    subject._step()  # 5 and 8 acknowledged; one save at a time, so 9 waits
    positions.through.set()
    subject._shutdown()
    assert positions.saves == [4, 9]
