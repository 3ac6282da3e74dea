"""The relay's wake-up from another process: PostgreSQL ``LISTEN`` on the channel
the event store's recorder notifies on every insert."""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg
from psycopg.sql import SQL, Identifier

from ...common.loop import BackgroundThread

log = logging.getLogger(__name__)


class PostgresWakeUp(BackgroundThread):
    """Sets ``flag`` on every NOTIFY of the recorder's channel; reconnects on errors."""

    def __init__(self, recorder: Any, flag: threading.Event) -> None:
        self.recorder = recorder
        self.flag = flag
        super().__init__("relay-listen")

    def _run(self) -> None:
        datastore = self.recorder.datastore
        backoff = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    **_conninfo(datastore), autocommit=True, connect_timeout=5
                ) as conn:
                    conn.execute(SQL("LISTEN {0}").format(Identifier(self.recorder.channel_name)))
                    self.flag.set()  # anything recorded while we were not listening
                    backoff = 0.5
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self.flag.set()
            except Exception as error:  # the database is down: the poll fallback covers it
                log.debug("LISTEN connection failed (%s), retrying in %.1fs", error, backoff)
                self.flag.set()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)


def _conninfo(datastore: Any) -> dict[str, Any]:
    """Connection parameters of the eventsourcing PostgreSQL datastore's pool."""
    kwargs = dict(datastore.pool.kwargs)
    kwargs.pop("autocommit", None)
    kwargs.pop("row_factory", None)
    kwargs.pop("prepare_threshold", None)
    conninfo = datastore.pool.conninfo
    return {"conninfo": conninfo, **kwargs}
