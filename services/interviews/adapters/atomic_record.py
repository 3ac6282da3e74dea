"""Recording events together with other writes, in the event store's own transaction.

``eventsourcing`` commits each batch of events in a transaction of its own.
An erasure must destroy keys (rows beside the event store) and record its
event in one transaction: :func:`record_with` opens the recorder's transaction,
lets ``work`` write with the same cursor and return the aggregates whose new
events are then inserted there, and commits once. It uses the recorders'
event-insert step (pinned ``eventsourcing`` 9.5), on PostgreSQL with its table
lock and NOTIFY, so followers of the log see the event like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eventsourcing.application import Application
from eventsourcing.postgres import PostgresApplicationRecorder

Work = Callable[[Any], list[Any]]


def record_with(app: Application[Any], work: Work) -> None:
    """Runs ``work(cursor)`` and records the new events of the aggregates it
    returns, in one database transaction (nothing at all if either fails)."""
    recorder: Any = app.recorder
    with recorder.datastore.transaction(commit=True) as cursor:
        if not isinstance(recorder, PostgresApplicationRecorder):
            # SQLite: freed space is zeroed (a destroyed key leaves no bytes behind).
            cursor.execute("PRAGMA secure_delete=ON")
        aggregates = work(cursor)
        stored = [
            app.mapper.to_stored_event(event)
            for aggregate in aggregates
            for event in aggregate.collect_events()
        ]
        if isinstance(recorder, PostgresApplicationRecorder):
            recorder._insert_stored_events(cursor, stored)
        else:
            recorder._insert_events(cursor, stored)
