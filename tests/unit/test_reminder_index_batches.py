"""The reminder index writes a consumer batch in few statements: a row changed
several times in the batch is written once, in the state its changes leave in
turn; a row whose changes' versions do not rise gets them in rounds, in event
order. No statement touches a row twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from services.contracts import EventEnvelope
from services.notifications import reminders
from services.notifications.reminders import ReminderIndex
from tests.support.notifications import OFFER, Interview

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DEADLINE = {"expires_at": (NOW + timedelta(hours=72)).isoformat()}


class RecordingConnection:
    dialect = SimpleNamespace(name="postgresql")

    def __init__(self, stored: dict[tuple[str, str], int] | None = None) -> None:
        self.statements: list[tuple[str, list[dict[str, Any]]]] = []
        self.stored = stored or {}

    def execute(
        self, statement: Any, rows: list[dict[str, Any]] | dict[str, Any] | None = None
    ) -> Any:
        if not isinstance(rows, list):  # the read of the stored rows' versions (ids bound)
            found = [
                SimpleNamespace(
                    interview_id=interview_id,
                    what=what,
                    version=version,
                    calendar_sequence=None,
                    expires_at=None,
                    duration_minutes=None,
                )
                for (interview_id, what), version in self.stored.items()
            ]
            return SimpleNamespace(all=lambda: found)
        self.statements.append((statement, rows))
        return None


@pytest.fixture
def conn(monkeypatch: pytest.MonkeyPatch) -> RecordingConnection:
    monkeypatch.setattr(reminders, "_upsert_statement", lambda _d, kind, _c: kind)
    # The rows of each statement as the bulk write receives them (COPY on PostgreSQL).
    monkeypatch.setattr(
        reminders, "write_rows", lambda conn, statement, rows: conn.execute(statement, rows)
    )
    return RecordingConnection()


def written(
    conn: RecordingConnection, events: list[EventEnvelope]
) -> dict[tuple[str, str], list[tuple[str, dict[str, Any]]]]:
    ReminderIndex(lambda: NOW, timedelta(hours=24)).apply(conn, events)  # type: ignore[arg-type]
    executed: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
    for kind, rows in conn.statements:
        keys = [(r["interview_id"], r["what"]) for r in rows]
        assert len(keys) == len(set(keys)), "a statement touches a row once"
        for r in rows:
            executed.setdefault((r["interview_id"], r["what"]), []).append((kind, r))
    return executed


def test_a_row_changed_several_times_in_a_batch_is_written_once_in_its_final_state(
    conn: RecordingConnection,
) -> None:
    other, negotiated = Interview("job-1"), Interview("job-2")
    events = [
        other.event("interview.cancelled", "client", {"reason": "x", "cancelled_by": "client"}),
        negotiated.event("interview.invited", "client", DEADLINE),
        negotiated.event("interview.accepted", "freelancer"),
        negotiated.event("interview.offer_extended", "client", OFFER | DEADLINE),
        negotiated.event("interview.offer_declined", "freelancer", {"reason": "low"}),
        negotiated.event("interview.offer_extended", "client", OFFER | DEADLINE),
    ]
    executed = written(conn, events)

    n = str(negotiated.id)
    [(kind, invitation)] = executed[(n, "invitation")]
    # Opened pending, then closed by the answer: one row, at the answer's version.
    assert (kind, invitation["version"], invitation["status"]) == ("open", 2, "closed")
    assert invitation["reason"] == "interview.accepted"
    assert invitation["expires_at"] is not None, "the opening's deadline stays, as it would"
    [(kind, offer)] = executed[(n, "offer")]
    assert (kind, offer["version"], offer["status"]) == ("open", 5, "pending")
    [(kind, cancelled)] = executed[(str(other.id), "invitation")]
    assert (kind, cancelled["version"]) == ("close", 1)
    assert [k for k, _ in conn.statements] == ["close", "open"], "one round"


def test_closes_in_a_row_keep_the_first_reason_and_the_last_version(
    conn: RecordingConnection,
) -> None:
    invited = Interview("job-1")
    invited.version = 1  # opened in an earlier batch
    events = [
        invited.event("interview.declined", "freelancer", {"reason": "busy"}),
        invited.event("interview.cancelled", "client", {"reason": "x", "cancelled_by": "client"}),
    ]
    [(kind, row)] = written(conn, events)[(str(invited.id), "invitation")]
    # The stored row's status decides in the statement (the worker may have sent it).
    assert (kind, row["version"], row["reason"]) == ("close", 3, "interview.declined")


def test_changes_not_newer_than_the_stored_row_are_left_out(
    conn: RecordingConnection,
) -> None:
    redelivered = Interview("job-1")
    invited = redelivered.event("interview.invited", "client", DEADLINE)
    accepted = redelivered.event("interview.accepted", "freelancer")
    conn.stored = {(str(redelivered.id), "invitation"): 1}
    [(kind, row)] = written(conn, [invited, accepted])[(str(redelivered.id), "invitation")]
    # The opening would not pass the guard: the answer alone closes the stored row.
    assert (kind, row["version"]) == ("close", 2)


def test_a_rows_changes_out_of_version_order_run_in_rounds_in_event_order(
    conn: RecordingConnection,
) -> None:
    out_of_order = Interview("job-1")
    invited = out_of_order.event("interview.invited", "client", DEADLINE)
    cancelled = out_of_order.event(
        "interview.cancelled", "client", {"reason": "x", "cancelled_by": "client"}
    )
    executed = written(conn, [cancelled, invited])
    assert [(k, r["version"]) for k, r in executed[(str(out_of_order.id), "invitation")]] == [
        ("close", 2),
        ("open", 1),
    ]
