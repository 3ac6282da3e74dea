"""The audit API on SQLite and PostgreSQL: history, time travel, verification,
the global log, and who may read what."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from services.interviews.domain.hashing import GENESIS
from tests.conftest import FakeClock
from tests.integration.audit_support import CLIENT, FREELANCER, Token, cancelled, hiring
from tests.jobs import register_job

pytestmark = pytest.mark.integration


def test_history_lists_every_event_with_actor_time_and_hash_link(
    api: TestClient, clock: FakeClock, token: Token
) -> None:
    iid, times = hiring(api, clock, token)

    response = api.get(f"/audit/interviews/{iid}/events", headers=token("a1", "auditor"))

    assert response.status_code == 200, response.text
    events = response.json()
    assert [e["type"] for e in events] == [
        "interview.invited",
        "interview.accepted",
        "interview.started",
        "interview.offer_extended",
        "interview.offer_accepted",
    ]
    assert [e["version"] for e in events] == [1, 2, 3, 4, 5]
    positions = [e["position"] for e in events]
    assert positions == sorted(positions) and len(set(positions)) == 5
    assert [e["occurred_at"] for e in events] == [t.isoformat() for t in times]
    assert [e["actor"] for e in events] == [
        {"id": CLIENT, "role": "client"},
        {"id": FREELANCER, "role": "freelancer"},
        {"id": CLIENT, "role": "client"},
        {"id": CLIENT, "role": "client"},
        {"id": FREELANCER, "role": "freelancer"},
    ]
    assert events[0]["data"]["job_id"] == "job-1"
    assert events[3]["data"]["amount"] == "1500.00"
    assert events[3]["data"]["start_date"] == "2027-01-04"
    assert events[0]["prev_hash"] == GENESIS
    for before, after in zip(events, events[1:], strict=False):
        assert after["prev_hash"] == before["hash"]
    assert all(e["correlation_id"] and e["causation_id"] and not e["error"] for e in events)


def test_state_at_several_instants_and_versions(
    api: TestClient, clock: FakeClock, token: Token
) -> None:
    iid, times = hiring(api, clock, token)
    auditor = token("a1", "auditor")

    def status_at(query: str) -> str:
        response = api.get(f"/audit/interviews/{iid}/state?{query}", headers=auditor)
        assert response.status_code == 200, response.text
        return str(response.json()["status"])

    def iso(t: object) -> str:
        return t.isoformat().replace("+00:00", "Z")  # type: ignore[attr-defined]

    assert status_at(f"at={iso(times[0])}") == "invited"
    assert status_at(f"at={iso(times[0] + timedelta(minutes=59))}") == "invited"
    assert status_at(f"at={iso(times[1])}") == "accepted"
    assert status_at(f"at={iso(times[2] + timedelta(minutes=30))}") == "in_progress"
    assert status_at(f"at={iso(times[3])}") == "offer_extended"
    assert status_at(f"at={iso(times[4] + timedelta(days=30))}") == "hired"
    # "+" arrives as a space when not percent-encoded; a naive time means UTC.
    assert status_at(f"at={times[1].isoformat()}") == "accepted"
    assert status_at(f"at={times[3].replace(tzinfo=None).isoformat()}") == "offer_extended"
    assert [status_at(f"version={v}") for v in (1, 2, 3, 4, 5)] == [
        "invited",
        "accepted",
        "in_progress",
        "offer_extended",
        "hired",
    ]
    past = api.get(f"/audit/interviews/{iid}/state?version=4", headers=auditor).json()
    assert past["version"] == 4 and past["offer"]["amount"] == "1500.00"
    assert past["hired_at"] is None
    current = api.get(f"/interviews/{iid}", headers=auditor).json()
    rebuilt = api.get(f"/audit/interviews/{iid}/state", headers=auditor).json()
    assert {k: v for k, v in rebuilt.items() if k != "as_of"} == current

    before = api.get(
        f"/audit/interviews/{iid}/state?at={iso(times[0] - timedelta(seconds=1))}", headers=auditor
    )
    assert before.status_code == 404
    assert api.get(f"/audit/interviews/{iid}/state?version=6", headers=auditor).status_code == 404


def test_verify_is_ok_on_an_untouched_store(
    api: TestClient, clock: FakeClock, token: Token
) -> None:
    iid, _ = hiring(api, clock, token)
    other = cancelled(api, clock, token, job="job-2")

    for interview_id, events in ((iid, 5), (other, 3)):
        response = api.get(f"/audit/interviews/{interview_id}/verify", headers=token("a", "admin"))
        assert response.status_code == 200
        assert response.json() == {"ok": True, "checked": events, "broken": None}


def test_the_global_log_pages_in_order_with_a_cursor(
    api: TestClient, clock: FakeClock, token: Token
) -> None:
    first, _ = hiring(api, clock, token, job="job-1")
    second = cancelled(api, clock, token, job="job-2")
    auditor = token("a1", "auditor")

    seen, after = [], 0
    while True:
        response = api.get(f"/audit/events?after={after}&limit=3", headers=auditor)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += page["events"]
        after = page["next"]
        if not page["has_more"]:
            break

    assert len(seen) == 8  # interview events only: no job or idempotency records
    assert [e["position"] for e in seen] == sorted(e["position"] for e in seen)
    assert [e["interview_id"] for e in seen] == [first] * 5 + [second] * 3
    assert seen[-1]["type"] == "interview.cancelled"
    end = api.get(f"/audit/events?after={after}", headers=auditor).json()
    assert end == {"events": [], "next": after, "has_more": False}


def test_parties_read_only_their_own_interviews_and_auditors_read_all(
    api: TestClient, clock: FakeClock, token: Token
) -> None:
    iid, _ = hiring(api, clock, token)
    paths = [f"/audit/interviews/{iid}/{p}" for p in ("events", "state?version=1", "verify")]

    for headers in (
        token("a1", "auditor"),
        token("root", "admin"),
        token(CLIENT, "client"),
        token(FREELANCER, "freelancer"),
    ):
        assert all(api.get(p, headers=headers).status_code == 200 for p in paths)
    for headers in (
        token("client-2", "client"),
        token("freelancer-2", "freelancer"),
        token(FREELANCER, "client"),  # the right id in the wrong role
    ):
        for path in paths:
            response = api.get(path, headers=headers)
            assert response.status_code == 404, path
            assert response.json()["code"] == "not_found"
    for path in paths:
        assert api.get(path).status_code == 401

    assert api.get("/audit/events", headers=token(CLIENT, "client")).status_code == 403
    assert api.get("/audit/events", headers=token(FREELANCER, "freelancer")).status_code == 403
    assert api.get("/audit/events", headers=token("root", "admin")).status_code == 200


def test_nothing_in_the_api_changes_or_deletes_history(
    api: TestClient, clock: FakeClock, token: Token
) -> None:
    iid, _ = hiring(api, clock, token)
    auditor = token("a1", "auditor")
    before = api.get(f"/audit/interviews/{iid}/events", headers=auditor).json()

    for method in ("post", "put", "patch", "delete"):
        for path in (
            f"/audit/interviews/{iid}/events",
            f"/audit/interviews/{iid}",
            "/audit/events",
        ):
            response = api.request(method, path, headers=auditor)
            assert response.status_code in (404, 405), (method, path)
    cancel = api.post(f"/interviews/{iid}/cancel", json={"reason": "x"}, headers=auditor)
    assert cancel.status_code == 403

    assert api.get(f"/audit/interviews/{iid}/events", headers=auditor).json() == before


BAD_QUERIES = [
    "/audit/interviews/not-a-uuid/events",
    "/audit/interviews/{iid}/state?at=yesterday",
    "/audit/interviews/{iid}/state?at=2026-13-45T99:00:00Z",
    "/audit/interviews/{iid}/state?at=" + "9" * 70,
    "/audit/interviews/{iid}/state?version=0",
    "/audit/interviews/{iid}/state?version=-3",
    "/audit/interviews/{iid}/state?version=abc",
    "/audit/interviews/{iid}/state?version=99999999999999999999",
    "/audit/interviews/{iid}/state?version=1&at=2026-11-25T12:00:00Z",
    "/audit/events?after=-1",
    "/audit/events?after=x",
    "/audit/events?after=99999999999999999999",
    "/audit/events?limit=0",
    "/audit/events?limit=100000",
]


def test_bad_query_parameters_are_422_never_500(api: TestClient, token: Token) -> None:
    client = token(CLIENT, "client")
    register_job(api, "j", CLIENT)
    iid = api.post("/interviews", json={"job_id": "j", "freelancer_id": FREELANCER}, headers=client)

    for path in BAD_QUERIES:
        response = api.get(path.format(iid=iid.json()["id"]), headers=token("a1", "auditor"))
        assert response.status_code == 422, (path, response.text)
        assert response.json()["code"] == "invalid_input"


def test_an_unknown_interview_is_404(api: TestClient, token: Token) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    for path in ("events", "state", "verify"):
        response = api.get(f"/audit/interviews/{unknown}/{path}", headers=token("a", "auditor"))
        assert response.status_code == 404
