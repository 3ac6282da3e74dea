"""A background loop: one round at a time on a daemon thread, until stopped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Self

log = logging.getLogger(__name__)


class BackgroundLoop:
    """Runs ``round_fn`` on a daemon thread until :meth:`stop`.

    ``round_fn`` does one round and returns how many seconds to sleep before the
    next; 0 means go again at once. :meth:`wake` cuts a sleep short (new work
    came in). A round that raises is logged and followed by ``on_error_delay``
    seconds of sleep: a database hiccup never kills the thread.
    """

    def __init__(
        self,
        name: str,
        round_fn: Callable[[], float],
        on_error_delay: float,
        *,
        logger: logging.Logger | None = None,
    ) -> None:
        self.name = name
        self.round_fn = round_fn
        self.on_error_delay = on_error_delay
        self._log = logger or log
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Starts the thread; does nothing if it was started and not stopped since."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Ends the loop after its current round; waits at most ``timeout`` seconds for it."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delay = self.round_fn()
            except Exception:  # a database hiccup must not kill the loop
                self._log.exception("%s round failed; retrying", self.name)
                delay = self.on_error_delay
            if delay > 0:
                self._wake.wait(delay)
                self._wake.clear()


def until_idle(run_once: Callable[[], int], max_rounds: int = 1000) -> int:
    """Calls ``run_once`` until a round does nothing (at most ``max_rounds``);
    returns the total it did. For tests and tools that want the work done now."""
    total = 0
    for _ in range(max_rounds):
        done = run_once()
        if not done:
            break
        total += done
    return total


class LoopWorker:
    """A worker whose rounds run on a :class:`BackgroundLoop`: ``run_once`` does one
    batch now (tests and tools call it), ``_round`` is the loop's round (it runs a
    batch and says how long to sleep); ``start``, ``wake`` and ``stop`` drive the
    thread. ``wake`` takes any arguments, so it can be an event's listener."""

    def __init__(self, name: str, *, on_error_delay: float, logger: logging.Logger) -> None:
        self._loop = BackgroundLoop(name, self._round, on_error_delay, logger=logger)

    def run_once(self) -> int:
        raise NotImplementedError

    def _round(self) -> float:
        raise NotImplementedError

    def run_until_idle(self, max_rounds: int = 1000) -> int:
        return until_idle(self.run_once, max_rounds)

    def start(self) -> None:
        self._loop.start()

    def wake(self, *_: object) -> None:
        self._loop.wake()

    def stop(self, timeout: float = 10.0) -> None:
        self._loop.stop(timeout)


class BackgroundThread:
    """A daemon thread running :meth:`_run` until :meth:`stop` sets ``_stop``
    (a subclass's ``_run`` waits on it between its steps)."""

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=5)
