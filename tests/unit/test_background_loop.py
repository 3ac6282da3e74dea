"""The shared background loop: rounds on a daemon thread, sleeps cut short by
``wake``, a failing round logged and retried, ``stop`` joining the thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

import pytest

from services.common.loop import BackgroundLoop

pytestmark = pytest.mark.unit

WAIT = 5.0  # generous: only ever reached when something is broken
LONG_SLEEP = 60.0  # longer than any test may take: only wake or stop ends it


class Rounds:
    """A round function that counts its calls and signals each one."""

    def __init__(self, delay: float, fail_first: int = 0) -> None:
        self.delay = delay
        self.fail_first = fail_first
        self.calls = 0
        self._called = threading.Condition()

    def __call__(self) -> float:
        with self._called:
            self.calls += 1
            self._called.notify_all()
        if self.calls <= self.fail_first:
            raise RuntimeError(f"round {self.calls} broke")
        return self.delay

    def wait_for(self, calls: int) -> bool:
        with self._called:
            return self._called.wait_for(lambda: self.calls >= calls, WAIT)


@pytest.fixture
def make_loop() -> Iterator[Callable[..., BackgroundLoop]]:
    loops: list[BackgroundLoop] = []

    def make(rounds: Rounds, on_error_delay: float = LONG_SLEEP) -> BackgroundLoop:
        loop = BackgroundLoop("test-loop", rounds, on_error_delay)
        loops.append(loop)
        return loop

    yield make
    for loop in loops:
        loop.stop(WAIT)


def test_stop_ends_a_sleeping_loop_and_joins_its_thread(
    make_loop: Callable[..., BackgroundLoop],
) -> None:
    rounds = Rounds(delay=LONG_SLEEP)
    loop = make_loop(rounds)
    loop.start()
    assert rounds.wait_for(1)

    loop.stop(WAIT)

    assert not loop.running
    assert rounds.calls == 1


def test_wake_cuts_a_sleep_short(make_loop: Callable[..., BackgroundLoop]) -> None:
    rounds = Rounds(delay=LONG_SLEEP)
    loop = make_loop(rounds)
    loop.start()
    assert rounds.wait_for(1)

    loop.wake()

    assert rounds.wait_for(2)


def test_a_zero_delay_means_go_again_at_once(make_loop: Callable[..., BackgroundLoop]) -> None:
    rounds = Rounds(delay=0.0)
    loop = make_loop(rounds)
    loop.start()

    assert rounds.wait_for(20)


def test_a_failing_round_is_logged_and_the_loop_goes_on(
    make_loop: Callable[..., BackgroundLoop], caplog: pytest.LogCaptureFixture
) -> None:
    rounds = Rounds(delay=LONG_SLEEP, fail_first=2)
    loop = make_loop(rounds, on_error_delay=0.01)
    with caplog.at_level(logging.ERROR):
        loop.start()
        assert rounds.wait_for(3)

    assert loop.running
    failures = [r for r in caplog.records if "test-loop round failed" in r.getMessage()]
    assert len(failures) == 2
    assert all(r.exc_info is not None for r in failures)


def test_start_is_idempotent_and_a_stopped_loop_starts_again(
    make_loop: Callable[..., BackgroundLoop],
) -> None:
    rounds = Rounds(delay=LONG_SLEEP)
    loop = make_loop(rounds)
    loop.start()
    loop.start()
    assert rounds.wait_for(1)
    assert [t.name for t in threading.enumerate()].count("test-loop") == 1

    loop.stop(WAIT)
    loop.start()

    assert rounds.wait_for(2)
    assert loop.running
