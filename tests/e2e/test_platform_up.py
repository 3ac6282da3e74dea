"""``interviewctl up`` as a newcomer runs it: one process, SQLite, no broker.

Drives the documented flow over real HTTP (tokens minted with the CLI) and
checks that the views, the inboxes and the audit trail follow the commands.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.servers import cli, embedded_env, running_cli
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    env = embedded_env(tmp_path / "data", "AUTH_SECRET")
    with running_cli(["up"], env) as (_, client):
        yield client, env


def test_the_documented_flow_works_end_to_end_on_the_embedded_default(
    platform: tuple[httpx.Client, dict[str, str]],
) -> None:
    http, env = platform
    auth = {
        name: {"Authorization": "Bearer " + cli("token", "--sub", sub, "--role", role, env=env)}
        for name, sub, role in (
            ("client", "client-1", "client"),
            ("freelancer", "freelancer-1", "freelancer"),
            ("other", "freelancer-2", "freelancer"),
            ("third", "freelancer-3", "freelancer"),
            ("auditor", "auditor-1", "auditor"),
        )
    }

    # The freelancer reads times in Berlin's zone (the notifications service, mounted).
    zone = http.put(
        "/me/preferences", json={"time_zone": "Europe/Berlin"}, headers=auth["freelancer"]
    )
    assert zone.status_code == 200, zone.text

    job = http.post("/jobs", json={"title": "Backend engineer"}, headers=auth["client"])
    assert job.status_code == 201, job.text
    job_id = job.json()["job_id"]
    invited = http.post(
        "/interviews",
        json={"job_id": job_id, "freelancer_id": "freelancer-1", "message": "Hi!"},
        headers=auth["client"],
    )
    assert invited.status_code == 201, invited.text
    interview = invited.json()["id"]
    steps = [
        ("accept", None, "freelancer", "accepted"),
        ("start", {"scheduled_at": "2026-12-01T10:00:00Z"}, "client", "in_progress"),
        (
            "offer",
            {"amount": "95.00", "currency": "USD", "rate_type": "hourly"},
            "client",
            "offer_extended",
        ),
        ("offer/accept", None, "freelancer", "hired"),
    ]
    last = invited.json()
    for path, body, who, status in steps:
        response = http.post(f"/interviews/{interview}/{path}", json=body, headers=auth[who])
        assert response.status_code == 200, response.text
        assert response.json()["status"] == status
        assert response.json()["position"] > last["position"]
        last = response.json()

    refused = http.post(
        f"/interviews/{interview}/cancel", json={"reason": "late"}, headers=auth["client"]
    )
    assert refused.status_code == 409
    assert refused.json()["code"] == "transition_not_allowed"
    assert "hired" in refused.json()["detail"]

    second = http.post(
        "/interviews",
        json={"job_id": job_id, "freelancer_id": "freelancer-2"},
        headers=auth["client"],
    ).json()
    cancelled = http.post(
        f"/interviews/{second['id']}/cancel",
        json={"reason": "Position filled"},
        headers=auth["client"],
    )
    assert cancelled.json()["status"] == "cancelled"

    # The views catch up with the writes (read-your-writes).
    view = http.get(
        f"/views/interviews/{interview}",
        params={"min_position": last["position"]},
        headers=auth["client"],
    )
    assert view.status_code == 200, view.text
    assert view.json()["status"] == "hired"
    board = http.get(
        f"/views/jobs/{job_id}/candidates",
        params={"min_position": cancelled.json()["position"]},
        headers=auth["client"],
    )
    assert board.status_code == 200, board.text
    assert "cancelled" in board.text and "hired" in board.text

    # Both parties were told; the cancelled freelancer too.
    def told(who: str, *types: str) -> list[dict]:
        """``who``'s notifications, once they include one of each of ``types``."""
        return wait_until(
            lambda: http.get("/notifications", headers=auth[who]).json()["items"],
            15,
            0.2,
            what=f"notifications {types} for {who}",
            until=lambda items: {f"interview.{t}" for t in types} <= {n["type"] for n in items},
        )

    freelancer_inbox = told("freelancer", "invited", "started", "offer_extended")
    (started,) = [n for n in freelancer_inbox if n["type"] == "interview.started"]
    assert "Tuesday 1 December 2026 at 11:00 CET" in started["message"]
    told("client", "accepted", "started", "offer_accepted")
    other_inbox = told("other", "invited", "cancelled")
    assert {n["type"] for n in other_inbox} == {"interview.invited", "interview.cancelled"}

    # Auditors see the whole chain, and it verifies.
    verify = http.get(f"/audit/interviews/{interview}/verify", headers=auth["auditor"]).json()
    assert verify == {"ok": True, "checked": 5, "broken": None}
    assert http.get("/openapi.json").status_code == 200

    # Closing the job cancels the interview still open; the freelancer sees it.
    third = http.post(
        "/interviews",
        json={"job_id": job_id, "freelancer_id": "freelancer-3"},
        headers=auth["client"],
    ).json()
    closed = http.post(f"/jobs/{job_id}/close", json={"reason": "filled"}, headers=auth["client"])
    assert closed.status_code == 200, closed.text
    assert (closed.json()["status"], closed.json()["cancelled"]) == ("closed", [third["id"]])
    seen = http.get(
        f"/views/interviews/{third['id']}",
        params={"min_position": closed.json()["position"]},
        headers=auth["third"],
    )
    assert seen.json()["status"] == "cancelled", seen.text

    def told_of_closing(who: str) -> list[str]:
        return wait_until(
            lambda: [
                n["message"]
                for n in http.get("/notifications", headers=auth[who]).json()["items"]
                if n["title"] == "Job closed"
            ],
            15,
            0.2,
            what=f"a 'Job closed' notification for {who}",
        )

    assert told_of_closing("third") == [
        f"Client client-1 closed job {job_id}; your interview is cancelled."
    ]
    assert told_of_closing("client") == [
        f"You closed job {job_id}; your interview with freelancer freelancer-3 is cancelled."
    ]
    late = http.post(
        "/interviews",
        json={"job_id": job_id, "freelancer_id": "freelancer-2"},
        headers=auth["client"],
    )
    assert (late.status_code, late.json()["code"]) == (409, "job_closed")
