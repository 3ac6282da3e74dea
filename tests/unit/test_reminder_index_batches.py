"""The reminder index writes a consumer batch in rounds: each row's changes are
executed in the order of their events, and no statement touches a row twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from services.notifications import reminders
from services.notifications.reminders import ReminderIndex
from tests.support.notifications import OFFER, Interview

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class RecordingConnection:
    dialect = SimpleNamespace(name="postgresql")

    def __init__(self) -> None:
        self.statements: list[tuple[str, list[dict[str, Any]]]] = []

    def execute(self, statement: Any, rows: list[dict[str, Any]] | None = None) -> Any:
        if rows is None:  # the read of the stored meeting rows: none stored
            return SimpleNamespace(all=lambda: [])
        self.statements.append((statement, rows))
        return None


def test_each_rows_changes_run_in_event_order_and_a_statement_touches_a_row_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reminders, "_upsert_statement", lambda _d, kind, _c: kind)
    # The rows of each statement as the bulk write receives them (COPY on PostgreSQL).
    monkeypatch.setattr(
        reminders, "write_rows", lambda conn, statement, rows: conn.execute(statement, rows)
    )
    deadline = {"expires_at": (NOW + timedelta(hours=72)).isoformat()}
    other, negotiated = Interview("job-1"), Interview("job-2")
    events = [
        other.event("interview.cancelled", "client", {"reason": "x", "cancelled_by": "client"}),
        negotiated.event("interview.invited", "client", deadline),
        negotiated.event("interview.accepted", "freelancer"),
        negotiated.event("interview.offer_extended", "client", OFFER | deadline),
        negotiated.event("interview.offer_declined", "freelancer", {"reason": "low"}),
        negotiated.event("interview.offer_extended", "client", OFFER | deadline),
    ]
    conn = RecordingConnection()
    ReminderIndex(lambda: NOW, timedelta(hours=24)).apply(conn, events)  # type: ignore[arg-type]

    executed: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for kind, rows in conn.statements:
        keys = [(r["interview_id"], r["what"]) for r in rows]
        assert len(keys) == len(set(keys)), "a statement touches a row once"
        for r in rows:
            executed.setdefault((r["interview_id"], r["what"]), []).append((kind, r["version"]))
    n = str(negotiated.id)
    assert executed[(n, "invitation")] == [("open", 1), ("close", 2)]
    assert executed[(n, "offer")] == [("open", 3), ("close", 4), ("open", 5)]
    assert executed[(str(other.id), "invitation")] == [("close", 1)]
    assert [k for k, _ in conn.statements] == ["close", "open", "close", "open"], "3 rounds"
