"""Every embedded consumer follows one reading of the event store's log: each event
is read and converted once, and each consumer still gets exactly the events it
would have read on its own, in order, with none missing or repeated."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

from services.common.runner.embedded import SharedLog


class Log:
    """The store's log: interview events at some positions (others hold other
    events, e.g. jobs'), and every conversion the feed made."""

    def __init__(self) -> None:
        self.head = 0
        self.events: list[Any] = []
        self.converted: list[int] = []

    def append(self, count: int, *, gap: int = 0) -> None:
        for _ in range(count):
            self.head += 1 + gap
            self.events.append(SimpleNamespace(position=self.head))

    def read_from_head(self, after: int, limit: int) -> tuple[int, list[Any]]:
        head = self.head  # SQLite's order: the head first, then the events
        self.committed_meanwhile()
        found = [e for e in self.events if e.position > after][:limit]
        self.converted += [e.position for e in found]
        return head, found

    def committed_meanwhile(self) -> None:
        """Events committed between the read of the head and that of the events."""

    def direct(self, after: int, limit: int) -> list[int]:
        return [e.position for e in self.events if e.position > after][:limit]


def positions(events: list[Any]) -> list[int]:
    return [e.position for e in events]


def test_two_consumers_at_the_same_place_convert_each_event_once() -> None:
    log = Log()
    shared = SharedLog(log.read_from_head)
    log.append(5)
    projections = shared.read(0, 500)
    notifications = shared.read(0, 500)
    assert positions(projections) == positions(notifications) == [1, 2, 3, 4, 5]
    assert projections[0] is notifications[0]
    assert log.converted == [1, 2, 3, 4, 5]
    log.append(3, gap=1)  # the positions between belong to other events
    assert positions(shared.read(5, 500)) == [7, 9, 11]
    assert positions(shared.read(5, 500)) == [7, 9, 11]
    assert log.converted == [1, 2, 3, 4, 5, 7, 9, 11]


def test_a_consumer_behind_the_window_reads_the_store_itself() -> None:
    log = Log()
    shared = SharedLog(log.read_from_head, keep=4)
    log.append(10)
    assert positions(shared.read(0, 500)) == list(range(1, 11))
    assert positions(shared.read(2, 3)) == [3, 4, 5]  # before the kept 4 events
    assert positions(shared.read(6, 500)) == [7, 8, 9, 10]
    assert log.converted == [*range(1, 11), 3, 4, 5]


def test_the_head_the_reads_found_is_the_lag_reference() -> None:
    log = Log()
    shared = SharedLog(log.read_from_head)
    log.append(3, gap=2)
    shared.read(0, 500)
    assert shared.head == 9


def test_events_committed_after_the_head_was_read_are_read_once() -> None:
    log = Log()
    shared = SharedLog(log.read_from_head)
    log.append(2)
    log.committed_meanwhile = lambda: log.append(1)  # type: ignore[method-assign]
    assert positions(shared.read(0, 500)) == [1, 2, 3]
    log.committed_meanwhile = lambda: None  # type: ignore[method-assign]
    assert positions(shared.read(3, 500)) == []
    assert positions(shared.read(0, 500)) == [1, 2, 3]
    assert log.converted == [1, 2, 3]


class RacyLog(Log):
    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self.rng = rng

    def committed_meanwhile(self) -> None:
        if self.rng.random() < 0.3:
            self.append(self.rng.randint(1, 3))


def test_any_interleaving_of_consumers_reads_what_each_would_read_alone() -> None:
    rng = random.Random(18)
    for _ in range(200):
        log = RacyLog(rng)
        shared = SharedLog(log.read_from_head, keep=rng.choice([1, 3, 10, 2000]))
        consumers = {"projections": rng.randint(0, 3), "notifications": 0, "scheduler": 0}
        log.append(rng.randint(0, 5))
        for _ in range(40):
            if rng.random() < 0.4:
                log.append(rng.randint(1, 6), gap=rng.choice([0, 0, 1]))
            name = rng.choice(list(consumers))
            after, limit = consumers[name], rng.randint(1, 8)
            if rng.random() < 0.1:  # a replay after a failed batch: back to before
                after = max(after - rng.randint(1, 5), 0)
            got = positions(shared.read(after, limit))
            assert got == log.direct(after, limit)[: len(got)]
            consumers[name] = got[-1] if got else after
