"""Waiting for something another thread or process does, and counting the
rounds of a background loop so a test can prove a round ran and did nothing.

``wait_until`` is the suite's one polling loop. On timeout it says what it
waited for and the last value (or error) it saw, so a red run explains itself.
"""

from __future__ import annotations

import inspect
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """``wait_until`` gave up: the message names the condition and its last value."""


def _describe(check: Callable[..., Any]) -> str:
    try:
        source = inspect.getsource(check).strip()
    except (OSError, TypeError):
        return getattr(check, "__qualname__", repr(check))
    if "lambda" in source:
        source = source[source.index("lambda") :]
    return " ".join(source.split())[:200]


def wait_until(
    check: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.05,
    *,
    what: str | None = None,
    until: Callable[[T], object] | None = None,
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """Calls ``check`` every ``interval`` seconds until its value is true (or
    satisfies ``until``), and returns that value. After ``timeout`` seconds raises
    :class:`WaitTimeout` naming ``what`` (by default the check's source) and the
    last value seen. Errors of the ``ignoring`` types count as "not yet" (a server
    still starting) and are reported as the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
            if until(last) if until is not None else last:
                return last
        except ignoring as error:
            last = error
        if time.monotonic() >= deadline:
            raise WaitTimeout(
                f"waited {timeout:g}s for {what or _describe(check)}; last seen: {last!r}"
            )
        time.sleep(interval)


def holds_within(
    check: Callable[[], object],
    timeout: float,
    interval: float = 0.05,
    *,
    what: str | None = None,
    ignoring: tuple[type[BaseException], ...] = (Exception,),
) -> bool:
    """``wait_until`` for a caller that tallies a timeout instead of failing at
    once (the reliability checks, among services that crash and restart): True if
    it held, else False after writing the timeout's report to stderr. An error
    from ``check`` counts as "not yet" unless ``ignoring`` says otherwise."""
    try:
        wait_until(check, timeout, interval, what=what, ignoring=ignoring)
    except WaitTimeout as timed_out:
        print(timed_out, file=sys.stderr)
        return False
    return True


@dataclass(frozen=True)
class Tick:
    """One round of a background loop: when the clock said it ran, what it returned."""

    number: int
    at: datetime | None
    result: Any


class Ticks:
    """Counts the rounds of a background loop by wrapping one of its methods.

    ``Ticks.install(worker, "run_once", clock)`` replaces ``worker.run_once`` with
    a recording wrapper (the loop looks the method up on every round). A test then
    waits for a round that began after something it did (``after=len(ticks)``) and
    asserts on that round's result, instead of sleeping and hoping a round ran.
    """

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock
        self.ticks: list[Tick] = []
        self._lock = threading.Lock()

    @classmethod
    def install(
        cls, target: Any, method: str, clock: Callable[[], datetime] | None = None
    ) -> Ticks:
        ticks = cls(clock)
        original = getattr(target, method)

        def counted(*args: Any, **kwargs: Any) -> Any:
            at = ticks.clock() if ticks.clock is not None else None
            result = original(*args, **kwargs)
            with ticks._lock:
                ticks.ticks.append(Tick(len(ticks.ticks) + 1, at, result))
            return result

        setattr(target, method, counted)
        return ticks

    def __len__(self) -> int:
        with self._lock:
            return len(self.ticks)

    def since(self, count: int) -> list[Tick]:
        """The rounds that completed after the first ``count``."""
        with self._lock:
            return self.ticks[count:]

    def wait_for(
        self, after: int, timeout: float = 10.0, where: Callable[[Tick], bool] | None = None
    ) -> Tick:
        """The first round after the first ``after`` (that satisfies ``where``)."""

        def found() -> Tick | None:
            return next((t for t in self.since(after) if where is None or where(t)), None)

        try:
            return wait_until(found, timeout, 0.01, what=f"a round after round {after}")
        except WaitTimeout as timed_out:
            raise WaitTimeout(f"{timed_out}; rounds since: {self.since(after)}") from None
