"""The embedded source batches more under load, never at the cost of a lone event:
time is a fake clock that only the source's pauses move."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from services.common.runner.embedded import EmbeddedSource


class Log:
    """The event store's log as the source reads it, and when each read ran."""

    def __init__(self) -> None:
        self.now = 0.0
        self.events: list[Any] = []
        self.reads: list[float] = []
        self.pauses: list[float] = []

    def append(self, count: int) -> None:
        start = len(self.events)
        self.events += [SimpleNamespace(position=start + n + 1) for n in range(count)]

    def read(self, after: int, limit: int) -> list[Any]:
        self.reads.append(self.now)
        return [e for e in self.events if e.position > after][:limit]

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds

    def source(self, **options: Any) -> EmbeddedSource:
        return EmbeddedSource(
            self.read,
            threading.Event(),
            linger=0.1,
            linger_from=4,
            clock=lambda: self.now,
            pause=self.pause,
            **options,
        )


def polled(source: EmbeddedSource) -> list[int]:
    return [r.envelope.position for r in source.poll(0.0) if r.envelope is not None]


def test_while_events_stream_in_a_read_waits_for_more_at_most_the_linger() -> None:
    log = Log()
    source = log.source()
    log.append(5)
    assert polled(source) == [1, 2, 3, 4, 5]
    log.now += 0.03  # the batch took 30 ms; meanwhile more commands committed
    log.append(6)
    assert polled(source) == [6, 7, 8, 9, 10, 11]
    assert log.pauses == [pytest.approx(0.07)], "waited until 0.1 s after the previous read"
    assert log.reads == [0.0, pytest.approx(0.1)]


def test_a_lone_event_is_read_at_once() -> None:
    log = Log()
    source = log.source()
    for expected in ([1], [2, 3], [4]):
        log.append(len(expected))
        assert polled(source) == expected
        log.now += 0.01
    assert log.pauses == [], "light traffic never waits"


def test_a_consumer_behind_the_log_reads_its_next_batch_at_once() -> None:
    log = Log()
    source = log.source(batch=10)
    log.append(25)
    assert [len(polled(source)) for _ in range(3)] == [10, 10, 5]
    assert log.pauses == [], "a full batch: the rest is waiting already"
    log.append(1)
    assert polled(source) == [26]
    assert log.pauses == [pytest.approx(0.1)], "after a streaming read of 5: the linger"


def test_stopping_ends_a_linger_at_once() -> None:
    source = EmbeddedSource(
        lambda after, limit: [SimpleNamespace(position=after + n + 1) for n in range(5)],
        threading.Event(),
        linger=60.0,
    )
    assert len(source.poll(0.0)) == 5
    threading.Timer(0.05, source.interrupt).start()
    started = time.monotonic()
    source.poll(0.0)
    assert time.monotonic() - started < 30, "the 60 s linger outlived stop()"
