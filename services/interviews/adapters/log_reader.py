"""The notification log read by a follower (the relay): the head of the log and
the notifications after a position, in one round trip on PostgreSQL.

The head is what lets a follower skip over other topics' positions: every
notification up to it is visible to the read. One statement reads both from
one snapshot, and notification ids are assigned in commit order (the store
locks the table to insert), so a visible head means every id below it is
visible too. It runs in autocommit: no ``BEGIN`` and ``ROLLBACK`` around a
read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import psycopg
from eventsourcing.persistence import ApplicationRecorder, Notification
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier


def read_log(
    recorder: ApplicationRecorder, after: int, limit: int, topics: Sequence[str]
) -> tuple[int, list[Notification]]:
    """The log's head (its max notification id, 0 when empty) and up to ``limit``
    notifications of ``topics`` after position ``after``, in order."""
    if isinstance(recorder, PostgresApplicationRecorder):
        return _read_postgres(recorder, after, limit, topics)
    # SQLite: one writer at a time, so the head read first bounds what the read sees.
    head = recorder.max_notification_id() or 0
    if not limit:
        return head, []
    notifications = recorder.select_notifications(
        start=after, limit=limit, topics=topics, inclusive_of_start=False
    )
    return head, list(notifications)


def _read_postgres(
    recorder: PostgresApplicationRecorder, after: int, limit: int, topics: Sequence[str]
) -> tuple[int, list[Notification]]:
    table = SQL("{schema}.{table}").format(
        schema=Identifier(recorder.datastore.schema),
        table=Identifier(recorder.events_table_name),
    )
    statement = SQL(
        "SELECT h.head, e.notification_id, e.originator_id, e.originator_version, e.topic,"
        " e.state FROM (SELECT max(notification_id) AS head FROM {table}) h"
        " LEFT JOIN LATERAL (SELECT * FROM {table} WHERE notification_id > %s"
        " AND topic = ANY(%s) ORDER BY notification_id LIMIT %s) e ON true"
        " ORDER BY e.notification_id"
    ).format(table=table)
    with recorder.datastore.get_connection() as conn:
        conn.autocommit = True
        try:
            with conn.cursor(row_factory=tuple_row) as cursor:
                cursor.execute(statement, (after, list(topics), limit), prepare=True)
                rows = cursor.fetchall()
        finally:
            # The pool's other users expect transactions. Only a connection that
            # is not idle refuses, and the pool discards those anyway.
            with contextlib.suppress(psycopg.Error):
                conn.autocommit = False
    # Tuples, not the pool's dict rows: the relay reads every event of the log.
    head = (rows[0][0] if rows else None) or 0
    return head, [
        Notification(
            id=position,
            originator_id=originator_id,
            originator_version=version,
            topic=topic,
            state=bytes(state),
        )
        for _, position, originator_id, version, topic, state in rows
        if position is not None
    ]
