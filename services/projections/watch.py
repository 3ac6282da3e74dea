"""Wakes read-your-writes waiters and live streams when the views move on.

``advance`` is called from the consumer's thread (the runner's
``on_committed``) or a rebuild; waiters are asyncio tasks of the API. Other
processes may move the views too (another consumer, ``interviewctl
replay``), so waiters also re-check the database every ``poll`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class PositionWatch:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.position = 0
        self.ticks = 0
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def advance(self, position: int | None = None) -> None:
        """Something was committed (``position``: the highest it applied)."""
        with self._lock:
            if position is not None and position > self.position:
                self.position = position
            self.ticks += 1
            waiters, self._waiters = self._waiters, []
        for loop, flag in waiters:
            with contextlib.suppress(RuntimeError):  # the loop is closed
                loop.call_soon_threadsafe(flag.set)

    def observe(self, position: int) -> None:
        """A read saw the views at ``position`` (e.g. moved by another process)."""
        with self._lock:
            if position > self.position:
                self.position = position

    async def changed(self, timeout: float) -> bool:
        """Waits up to ``timeout`` seconds for the next ``advance``."""
        flag = asyncio.Event()
        with self._lock:
            self._waiters.append((asyncio.get_running_loop(), flag))
        try:
            await asyncio.wait_for(flag.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                self._waiters = [w for w in self._waiters if w[1] is not flag]
