"""Tampering done directly in the event store's table (SQLite and PostgreSQL) is
detected: a changed field or byte, a deleted event, two swapped events, a
deleted last event and a deleted whole interview."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from services.interviews.audit import InterviewAudit
from services.interviews.bootstrap import InterviewsContainer
from services.interviews.domain.hashing import chain_hash
from tests.conftest import FakeClock
from tests.integration.audit_support import Tamperer, Token, cancelled, hiring

pytestmark = pytest.mark.integration


@pytest.fixture
def audit(interviews_container: InterviewsContainer) -> InterviewAudit:
    return InterviewAudit(interviews_container.interviews())


@pytest.fixture
def tamper(interviews_container: InterviewsContainer) -> Tamperer:
    return Tamperer(interviews_container)


def verify(api: TestClient, token: Token, iid: str) -> dict[str, Any]:
    response = api.get(f"/audit/interviews/{iid}/verify", headers=token("a1", "auditor"))
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def broken_in_log(audit: InterviewAudit) -> dict[str, tuple[int, str]]:
    report = audit.verify_all()
    return {str(b.interview_id): (b.version, b.reason) for b in report.broken}


def test_a_changed_field_breaks_the_chain_at_that_event(
    api: TestClient, clock: FakeClock, token: Token, tamper: Tamperer, audit: InterviewAudit
) -> None:
    iid, _ = hiring(api, clock, token)
    other = cancelled(api, clock, token, job="job-2")
    assert audit.verify_all().ok

    tamper.replace(iid, 4, b'"1500.00"', b'"9500.00"')  # a bigger offer

    assert verify(api, token, iid) == {
        "ok": False,
        "checked": 4,
        "broken": {"version": 4, "reason": "hash does not match the event's content"},
    }
    assert verify(api, token, other)["ok"] is True
    assert broken_in_log(audit) == {iid: (4, "hash does not match the event's content")}


def test_an_event_rewritten_with_a_fresh_hash_breaks_the_next_link(
    api: TestClient,
    clock: FakeClock,
    token: Token,
    tamper: Tamperer,
    interviews_container: InterviewsContainer,
) -> None:
    iid, _ = hiring(api, clock, token)
    app = interviews_container.interviews()
    accepted = app.interview_events(UUID(iid))[1]
    forged = object.__new__(type(accepted))
    object.__setattr__(forged, "__dict__", {**accepted.__dict__, "actor_id": "someone-else"})
    forged.__dict__["hash"] = chain_hash(forged.prev_hash, forged.chained_fields())
    assert forged.verify_link(accepted.prev_hash) is None  # a perfect forgery on its own ...
    tamper.set_state(iid, 2, app.mapper.to_stored_event(forged).state)

    body = verify(api, token, iid)

    assert body["broken"] == {  # ... which the next event's prev_hash gives away
        "version": 3,
        "reason": "prev_hash does not match the previous event's hash",
    }


def test_a_changed_byte_that_no_longer_decodes_is_broken_not_an_error(
    api: TestClient, clock: FakeClock, token: Token, tamper: Tamperer, audit: InterviewAudit
) -> None:
    iid, _ = hiring(api, clock, token)
    state = tamper.state(iid, 3)
    tamper.set_state(iid, 3, state[:10] + b"\xff" + state[11:])
    auditor = token("a1", "auditor")

    body = verify(api, token, iid)
    history = api.get(f"/audit/interviews/{iid}/events", headers=auditor)
    past = api.get(f"/audit/interviews/{iid}/state?version=4", headers=auditor)

    assert body["ok"] is False and body["broken"]["version"] == 3
    assert body["broken"]["reason"].startswith("stored event no longer decodes")
    assert history.status_code == 200
    assert [bool(e["error"]) for e in history.json()] == [False, False, True, False, False]
    assert past.status_code == 409 and past.json()["code"] == "broken_history"
    assert api.get(f"/audit/interviews/{iid}/state?version=2", headers=auditor).status_code == 200
    assert set(broken_in_log(audit)) == {iid}


def test_a_field_of_the_wrong_type_is_broken_not_an_error(
    api: TestClient, clock: FakeClock, token: Token, tamper: Tamperer
) -> None:
    iid, times = hiring(api, clock, token)
    tamper.replace(iid, 4, b'"currency":"EUR"', b'"currency":978')
    stamp = times[1].isoformat().encode()
    tamper.replace(iid, 2, stamp, stamp.removesuffix(b"+00:00"))  # a naive time
    auditor = token("a1", "auditor")

    body = verify(api, token, iid)
    later = api.get(f"/audit/interviews/{iid}/state?at=2030-01-01T00:00:00Z", headers=auditor)

    assert body["broken"] == {
        "version": 2,
        "reason": "stored event does not fit Accepted: timestamp has no time zone",
    }
    assert later.status_code == 409
    history = api.get(f"/audit/interviews/{iid}/events", headers=auditor).json()
    assert history[3]["error"] == "stored event does not fit OfferExtended: currency is a int"
    assert history[3]["data"]["currency"] == 978  # shown as stored


def test_a_deleted_event_is_detected(
    api: TestClient, clock: FakeClock, token: Token, tamper: Tamperer, audit: InterviewAudit
) -> None:
    iid, _ = hiring(api, clock, token)
    tamper.delete(iid, version=3)

    body = verify(api, token, iid)

    assert body["ok"] is False
    assert body["broken"] == {
        "version": 3,
        "reason": "v4 follows v2: event v3 is missing, or events were swapped",
    }
    assert broken_in_log(audit) == {
        iid: (3, "v4 follows v2: event v3 is missing, or events were swapped")
    }


def test_two_swapped_events_are_detected(
    api: TestClient, clock: FakeClock, token: Token, tamper: Tamperer, audit: InterviewAudit
) -> None:
    iid, _ = hiring(api, clock, token)
    tamper.swap_versions(iid, 2, 3)

    body = verify(api, token, iid)

    assert body["ok"] is False and body["broken"]["version"] == 2
    assert body["broken"]["reason"] == "v3 follows v1: event v2 is missing, or events were swapped"
    assert set(broken_in_log(audit)) == {iid}


def test_a_deleted_whole_interview_is_detected_by_the_log_checkpoints(
    api: TestClient, clock: FakeClock, token: Token, tamper: Tamperer, audit: InterviewAudit
) -> None:
    kept, _ = hiring(api, clock, token, job="job-1")
    gone = cancelled(api, clock, token, job="job-2")
    last, _ = hiring(api, clock, token, job="job-3")
    checkpointed = audit.verify_all()
    assert checkpointed.ok and checkpointed.checked == 13

    tamper.delete(gone)

    report = audit.verify_all()
    assert report.broken == []  # every remaining chain is intact ...
    assert report.log_problem is not None  # ... but the log is not
    assert "deleted or inserted" in report.log_problem.reason
    assert report.checked == 10
    assert verify(api, token, kept)["ok"] and verify(api, token, last)["ok"]


def test_a_deleted_last_event_is_detected_by_the_log_checkpoints(
    api: TestClient, clock: FakeClock, token: Token, tamper: Tamperer, audit: InterviewAudit
) -> None:
    iid, _ = hiring(api, clock, token, job="job-1")
    cancelled(api, clock, token, job="job-2")
    assert audit.verify_all().ok

    tamper.delete(iid, version=5)  # "never hired"

    assert verify(api, token, iid)["ok"] is True  # the shortened chain is still a chain
    assert audit.verify_all().log_problem is not None


def test_checkpoints_are_only_added_while_the_log_verifies(
    api: TestClient, clock: FakeClock, token: Token, tamper: Tamperer, audit: InterviewAudit
) -> None:
    hiring(api, clock, token, job="job-1")
    gone = cancelled(api, clock, token, job="job-2")
    audit.verify_all()
    tamper.delete(gone)
    hiring(api, clock, token, job="job-3")

    audit.verify_all()
    audit.verify_all()

    assert audit.verify_all().log_problem is not None  # the tampering is never "blessed"
    assert [c.events for c in audit.store.checkpoints()] == [8]
