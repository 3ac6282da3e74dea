"""Whether the event store's PostgreSQL answers: the interview service's 503 switch."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import psycopg

from ...common.loop import BackgroundThread

log = logging.getLogger(__name__)


class DatabaseWatch(BackgroundThread):
    """Whether the event store's PostgreSQL answers, checked every ``interval`` seconds
    over one connection of its own.

    While it does not, requests fail at once with 503 instead of each waiting out
    the recorder's retries (ten attempts, each waiting for a pool connection: about
    50 s), and ``/readyz`` says so. When it answers again the connection pool is
    told to check its connections, so it reconnects now rather than after its
    exponential backoff (by then a minute or more): ``on_back`` is called.
    """

    def __init__(self, url: str, on_back: Callable[[], None], interval: float = 1.0) -> None:
        self.url = url
        self.on_back = on_back
        self.interval = interval
        self.down = False
        super().__init__("database-watch")

    def _run(self) -> None:
        url = self.url
        conn: psycopg.Connection[Any] | None = None
        while not self._stop.wait(self.interval):
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(url, autocommit=True, connect_timeout=2)
                conn.execute("SELECT 1")
            except Exception as error:  # any failure: the database is down
                if not self.down:
                    log.warning("event store unreachable (%s); answering 503", error)
                self.down = True
                if conn is not None:
                    conn.close()
                    conn = None
                continue
            if self.down:
                log.warning("event store reachable again")
                self.down = False
                self.on_back()
