"""SQL beyond the event store's own API: an interview's stored events with their
global positions (for the audit and for answering commands with a position), and
the audit log's checkpoints.

Both stores keep events in ``stored_events``; the position is PostgreSQL's
``notification_id`` and SQLite's ``rowid``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from ..audit_log import Checkpoint
from .tables import CHECKPOINTS

CHECKPOINTS_TABLE = CHECKPOINTS.name


@dataclass(frozen=True)
class StoredRow:
    position: int
    originator_id: UUID
    version: int
    topic: str
    state: bytes


class AuditStore:
    """Reads stored events and keeps checkpoints, on PostgreSQL or SQLite."""

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder
        self.datastore = recorder.datastore
        self.table = recorder.events_table_name
        self.postgres = hasattr(self.datastore, "schema")
        self._checkpoints_ready = False

    def interview_rows(self, interview_id: UUID) -> list[StoredRow]:
        """Every stored event of one aggregate, in the order they were recorded."""
        if self.postgres:
            rows = self._select(
                "SELECT notification_id AS position, originator_version, topic, state "
                "FROM {events} WHERE originator_id = %s ORDER BY notification_id",
                (interview_id,),
            )
        else:
            rows = self._select(
                "SELECT rowid AS position, originator_version, topic, state "
                "FROM {events} WHERE originator_id = ? ORDER BY rowid",
                (interview_id.hex,),
            )
        return [
            StoredRow(
                int(r["position"]),
                interview_id,
                int(r["originator_version"]),
                r["topic"],
                bytes(r["state"]),
            )
            for r in rows
        ]

    def position_of(self, interview_id: UUID, version: int) -> int | None:
        """The global position of one aggregate's event at ``version``, if stored."""
        if self.postgres:
            rows = self._select(
                "SELECT notification_id AS position FROM {events} "
                "WHERE originator_id = %s AND originator_version = %s",
                (interview_id, version),
            )
        else:
            rows = self._select(
                "SELECT rowid AS position FROM {events} "
                "WHERE originator_id = ? AND originator_version = ?",
                (interview_id.hex, version),
            )
        return int(rows[0]["position"]) if rows else None

    def log_rows(self, after: int, limit: int, topics: Sequence[str]) -> list[StoredRow]:
        """Events of the given topics in global order, after a position."""
        notifications = self.recorder.select_notifications(
            start=after, limit=limit, topics=tuple(topics), inclusive_of_start=False
        )
        return [
            StoredRow(n.id, n.originator_id, n.originator_version, n.topic, bytes(n.state))
            for n in notifications
        ]

    def checkpoints(self) -> list[Checkpoint]:
        """The checkpoints kept so far (none in a store that was never migrated)."""
        if not self._has_checkpoints_table():
            return []
        rows = self._select(
            "SELECT position, events, digest, created_at FROM {checkpoints} ORDER BY position", ()
        )
        return [
            Checkpoint(int(r["position"]), int(r["events"]), r["digest"], str(r["created_at"]))
            for r in rows
        ]

    def add_checkpoints(self, checkpoints: Sequence[Checkpoint]) -> None:
        if not checkpoints or not self._has_checkpoints_table():
            return  # checkpoints only spare work: a store not yet migrated goes without
        mark = "%s" if self.postgres else "?"
        statement = self._sql(
            "INSERT INTO {checkpoints} (position, events, digest, created_at) "
            f"VALUES ({mark}, {mark}, {mark}, {mark}) ON CONFLICT (position) DO NOTHING"
        )
        with self.datastore.transaction(commit=True) as curs:
            for c in checkpoints:
                curs.execute(statement, (c.position, c.events, c.digest, c.created_at))

    # ---------------------------------------------------------------- internals

    def _has_checkpoints_table(self) -> bool:
        if not self._checkpoints_ready:
            if self.postgres:
                query = "SELECT to_regclass(%s) AS name"
                params: tuple[Any, ...] = (
                    f"{self.datastore.schema or 'public'}.{CHECKPOINTS_TABLE}",
                )
            else:
                query = "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?"
                params = (CHECKPOINTS_TABLE,)
            with self.datastore.transaction(commit=False) as curs:
                curs.execute(query, params)
                row = curs.fetchone()
            self._checkpoints_ready = bool(row) and row["name"] is not None
        return self._checkpoints_ready

    def _sql(self, template: str) -> Any:
        if not self.postgres:
            return template.format(events=self.table, checkpoints=CHECKPOINTS_TABLE)
        from psycopg.sql import SQL, Identifier

        schema = Identifier(self.datastore.schema)
        return SQL(
            template.replace("{events}", "{s}.{events}").replace(
                "{checkpoints}", "{s}.{checkpoints}"
            )
        ).format(s=schema, events=Identifier(self.table), checkpoints=Identifier(CHECKPOINTS_TABLE))

    def _select(self, template: str, params: tuple[Any, ...]) -> list[Any]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._sql(template), params)
            return list(curs.fetchall())
