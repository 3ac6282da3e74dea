"""Jobs over HTTP (DESIGN, "Jobs"): a job exists before anyone is invited to it,
nobody owns one by touching its id first, and closing it cancels its open
interviews and takes no more invitations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

import httpx
import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic
from fastapi.testclient import TestClient

from services.interviews.bootstrap import InterviewsContainer
from services.interviews.domain import Job
from tests.conftest import FakeClock
from tests.jobs import invite, register_job, service_headers

pytestmark = pytest.mark.integration

Token = Callable[[str, str], dict[str, str]]
CLIENT, OTHER_CLIENT = "client-1", "client-2"
OFFER = {"amount": "1500.00", "currency": "EUR", "rate_type": "fixed"}


def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]
    return body  # type: ignore[no-any-return]


def events(container: InterviewsContainer) -> int:
    return container.interviews().max_position()


def post(api: TestClient, path: str, headers: dict[str, str], body: Any = None) -> Any:
    response = api.post(path, json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


# ------------------------------------------------------------ creating jobs


def test_a_client_creates_a_job_and_invites_to_it(api: TestClient, token: Token) -> None:
    client = token(CLIENT, "client")

    created = api.post(
        "/jobs", json={"title": "  Backend engineer ", "exclusive_hours": 24}, headers=client
    )

    assert created.status_code == 201, created.text
    job = created.json()
    assert set(job) == {"job_id", "client_id", "title", "status", "exclusive_hours"}
    assert (job["client_id"], job["title"], job["status"], job["exclusive_hours"]) == (
        CLIENT,
        "Backend engineer",
        "open",
        24,
    )
    assert api.get(f"/jobs/{job['job_id']}", headers=client).json() == job
    invite(api, client, "freelancer-1", job["job_id"], register=False)["id"]
    another = api.post("/jobs", json={"title": "Backend engineer"}, headers=client).json()
    assert another["job_id"] != job["job_id"]


def test_a_retried_job_creation_with_its_key_creates_one_job(
    api: TestClient, token: Token, interviews_container: InterviewsContainer
) -> None:
    headers = {**token(CLIENT, "client"), "Idempotency-Key": "job-create-1"}
    first = api.post("/jobs", json={"title": "Designer"}, headers=headers)
    before = events(interviews_container)

    again = api.post("/jobs", json={"title": "Designer"}, headers=headers)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert events(interviews_container) == before
    refused(
        api.post("/jobs", json={"title": "Another"}, headers=headers),
        422,
        "idempotency_key_reused",
    )


@pytest.mark.parametrize("role", ["freelancer", "auditor", "admin", "service"])
def test_only_a_client_creates_a_job(
    api: TestClient, token: Token, role: str, interviews_container: InterviewsContainer
) -> None:
    before = events(interviews_container)

    refused(api.post("/jobs", json={"title": "Mine"}, headers=token("x-1", role)), 403, "forbidden")

    assert events(interviews_container) == before


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"title": "   "},
        {"title": "x" * 201},
        {"title": "a\x00b"},
        {"title": "t", "owner": "me"},
    ],
    ids=["no-title", "blank", "long", "control", "unknown-field"],
)
def test_a_bad_job_is_422(api: TestClient, token: Token, body: dict[str, Any]) -> None:
    response = api.post("/jobs", json=body, headers=token(CLIENT, "client"))

    assert response.status_code == 422, response.text


# -------------------------------------------------------- registering jobs


def test_the_job_service_registers_an_external_job_once(
    api: TestClient, token: Token, interviews_container: InterviewsContainer
) -> None:
    service = service_headers()

    first = api.put("/jobs/ext-42", json={"client_id": CLIENT, "title": "Data"}, headers=service)
    after_first = events(interviews_container)
    again = api.put("/jobs/ext-42", json={"client_id": CLIENT}, headers=service)
    by_admin = api.put("/jobs/ext-42", json={"client_id": CLIENT}, headers=token("a-1", "admin"))

    assert first.status_code == 201, first.text
    assert first.json() == {
        "job_id": "ext-42",
        "client_id": CLIENT,
        "title": "Data",
        "status": "open",
        "exclusive_hours": None,
    }
    assert (again.status_code, by_admin.status_code) == (200, 200)
    assert again.json() == by_admin.json() == first.json()
    assert events(interviews_container) == after_first
    body = refused(
        api.put("/jobs/ext-42", json={"client_id": OTHER_CLIENT}, headers=service),
        409,
        "job_owner_conflict",
    )
    assert "another client" in body["detail"]
    assert events(interviews_container) == after_first
    invite(api, token(CLIENT, "client"), "freelancer-1", "ext-42", register=False)["id"]


def test_an_admin_registers_a_job_too(api: TestClient, token: Token) -> None:
    response = api.put("/jobs/ext-7", json={"client_id": CLIENT}, headers=token("a-1", "admin"))

    assert response.status_code == 201, response.text
    assert response.json()["title"] is None


@pytest.mark.parametrize("role", ["client", "freelancer", "auditor"])
def test_nobody_else_registers_a_job(
    api: TestClient, token: Token, role: str, interviews_container: InterviewsContainer
) -> None:
    before = events(interviews_container)

    refused(
        api.put("/jobs/ext-1", json={"client_id": "x-1"}, headers=token("x-1", role)),
        403,
        "forbidden",
    )

    assert events(interviews_container) == before
    refused(
        api.post(
            "/interviews",
            json={"job_id": "ext-1", "freelancer_id": "f-1"},
            headers=token("x-1", "client"),
        ),
        404,
        "job_not_found",
    )


# -------------------------------------------------------- unknown jobs, squatting


def test_an_invitation_or_policy_for_an_unknown_job_is_404_and_takes_nothing(
    api: TestClient, token: Token, interviews_container: InterviewsContainer
) -> None:
    squatter = token(OTHER_CLIENT, "client")

    refused(
        api.post("/interviews", json={"job_id": "job-9", "freelancer_id": "f-1"}, headers=squatter),
        404,
        "job_not_found",
    )
    refused(
        api.put("/jobs/job-9/policy", json={"exclusive_hours": 1}, headers=squatter),
        404,
        "job_not_found",
    )

    assert events(interviews_container) == 0
    # The real owner registers it later and nothing stands in their way.
    register_job(api, "job-9", CLIENT)
    owner = token(CLIENT, "client")
    assert (
        api.put("/jobs/job-9/policy", json={"exclusive_hours": 2}, headers=owner).status_code == 200
    )
    invite(api, owner, "f-1", "job-9", register=False)["id"]


@pytest.mark.parametrize(
    ("sub", "role", "status"),
    [
        (CLIENT, "client", 200),
        ("job-service", "service", 200),
        ("a-1", "auditor", 200),
        ("a-1", "admin", 200),
        (OTHER_CLIENT, "client", 404),
        ("f-1", "freelancer", 404),
        (CLIENT, "freelancer", 404),
    ],
    ids=[
        "owner",
        "service",
        "auditor",
        "admin",
        "other-client",
        "freelancer",
        "owner-as-freelancer",
    ],
)
def test_a_job_shows_to_its_client_and_the_platform_only(
    api: TestClient, token: Token, sub: str, role: str, status: int
) -> None:
    register_job(api, "job-1", CLIENT, title="Secret project")

    response = api.get("/jobs/job-1", headers=token(sub, role))
    unknown = api.get("/jobs/job-404", headers=token(sub, role))

    assert response.status_code == status, response.text
    if status == 404:
        assert response.json() == unknown.json() | {"detail": response.json()["detail"]}
        assert "Secret" not in response.text and CLIENT not in response.text
    refused(unknown, 404, "job_not_found")


# ------------------------------------------------------------- closing jobs


def test_closing_a_job_cancels_its_open_interviews_for_both_parties(
    api: TestClient, token: Token, interviews_container: InterviewsContainer
) -> None:
    client = token(CLIENT, "client")
    register_job(api, "job-1", CLIENT)
    fl = {n: token(f"f-{n}", "freelancer") for n in range(4)}
    invited = invite(api, client, "f-0", "job-1", register=False)["id"]
    accepted = invite(api, client, "f-1", "job-1", register=False)["id"]
    post(api, f"/interviews/{accepted}/accept", fl[1])
    offered = invite(api, client, "f-2", "job-1", register=False)["id"]
    post(api, f"/interviews/{offered}/accept", fl[2])
    post(api, f"/interviews/{offered}/offer", client, OFFER)
    declined = invite(api, client, "f-3", "job-1", register=False)["id"]
    post(api, f"/interviews/{declined}/decline", fl[3], {"reason": "busy"})

    closed = post(api, "/jobs/job-1/close", client, {"reason": "position filled"})

    assert closed["status"] == "closed"
    assert sorted(closed["cancelled"]) == sorted([invited, accepted, offered])
    assert closed["position"] == events(interviews_container)
    for n, iid in enumerate([invited, accepted, offered]):
        for viewer in (client, fl[n]):
            seen = api.get(f"/interviews/{iid}", headers=viewer).json()
            assert (seen["status"], seen["closed_reason"], seen["cancelled_by"]) == (
                "cancelled",
                "job closed",
                "client",
            )
        [*_, last] = interviews_container.interviews().interview_events(UUID(iid))
        assert last.job_closed is True  # type: ignore[attr-defined]
    assert api.get(f"/interviews/{declined}", headers=fl[3]).json()["status"] == "declined"
    assert api.get("/jobs/job-1", headers=client).json()["status"] == "closed"


def test_a_closed_job_takes_no_invitations_and_closing_again_changes_nothing(
    api: TestClient, token: Token, interviews_container: InterviewsContainer
) -> None:
    client = token(CLIENT, "client")
    register_job(api, "job-1", CLIENT)
    post(api, "/jobs/job-1/close", client)
    before = events(interviews_container)

    again = post(api, "/jobs/job-1/close", client, {"reason": "twice"})
    body = refused(
        api.post("/interviews", json={"job_id": "job-1", "freelancer_id": "f-1"}, headers=client),
        409,
        "job_closed",
    )

    assert (again["status"], again["cancelled"], again["position"]) == ("closed", [], None)
    assert "closed" in body["detail"]
    assert events(interviews_container) == before


@pytest.mark.parametrize(
    ("sub", "role", "status", "code"),
    [
        (OTHER_CLIENT, "client", 404, "job_not_found"),
        ("f-1", "freelancer", 403, "forbidden"),
        ("job-service", "service", 403, "forbidden"),
        ("a-1", "admin", 403, "forbidden"),
        ("a-1", "auditor", 403, "forbidden"),
    ],
    ids=["other-client", "freelancer", "service", "admin", "auditor"],
)
def test_only_the_jobs_client_closes_it(
    api: TestClient,
    token: Token,
    interviews_container: InterviewsContainer,
    sub: str,
    role: str,
    status: int,
    code: str,
) -> None:
    register_job(api, "job-1", CLIENT)
    iid = invite(api, token(CLIENT, "client"), "f-1", "job-1", register=False)["id"]
    before = events(interviews_container)

    refused(api.post("/jobs/job-1/close", json={}, headers=token(sub, role)), status, code)

    assert events(interviews_container) == before
    seen = api.get(f"/interviews/{iid}", headers=token("f-1", "freelancer")).json()
    assert seen["status"] == "invited"
    refused(
        api.post("/jobs/job-404/close", json={}, headers=token(CLIENT, "client")),
        404,
        "job_not_found",
    )


def test_a_freelancer_hired_for_a_job_is_not_invited_to_it_again(
    api: TestClient, token: Token, interviews_container: InterviewsContainer
) -> None:
    client, fl = token(CLIENT, "client"), token("f-1", "freelancer")
    register_job(api, "job-1", CLIENT)
    iid = invite(api, client, "f-1", "job-1", register=False)["id"]
    post(api, f"/interviews/{iid}/accept", fl)
    post(api, f"/interviews/{iid}/offer", client, OFFER)
    post(api, f"/interviews/{iid}/offer/accept", fl)
    before = events(interviews_container)

    body = refused(
        api.post("/interviews", json={"job_id": "job-1", "freelancer_id": "f-1"}, headers=client),
        409,
        "already_hired",
    )

    assert iid in body["detail"]
    assert events(interviews_container) == before
    invite(api, client, "f-2", "job-1", register=False)["id"]  # another freelancer still can be


def test_the_job_routes_declare_the_bearer_scheme(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]

    for path, method in [
        ("/jobs", "post"),
        ("/jobs/{job_id}", "put"),
        ("/jobs/{job_id}", "get"),
        ("/jobs/{job_id}/close", "post"),
    ]:
        [requirement] = spec["paths"][path][method]["security"]
        [name] = requirement
        assert (schemes[name]["type"], schemes[name]["scheme"]) == ("http", "bearer")


def test_a_job_the_first_invitation_registered_before_this_rule_keeps_its_owner(
    api: TestClient, token: Token, interviews_container: InterviewsContainer, clock: FakeClock
) -> None:
    """Jobs stored by the old invite path (``Registered`` v1: no title, no
    class_version) still belong to the client who owned them."""
    app = interviews_container.interviews()
    v1 = {"timestamp": clock.now, "job_id": "old-job", "client_id": CLIENT, "exclusive_hours": None}
    app.recorder.insert_events(
        [
            StoredEvent(
                Job.id_for("old-job"),
                1,
                get_topic(Job.Registered),
                app.mapper.transcoder.encode({**v1, "originator_topic": get_topic(Job)}),
            )
        ]
    )

    seen = api.get("/jobs/old-job", headers=token(CLIENT, "client"))
    invite(api, token(CLIENT, "client"), "f-1", "old-job", register=False)["id"]

    assert seen.json() == {
        "job_id": "old-job",
        "client_id": CLIENT,
        "title": None,
        "status": "open",
        "exclusive_hours": None,
    }
    refused(
        api.post(
            "/interviews",
            json={"job_id": "old-job", "freelancer_id": "f-2"},
            headers=token(OTHER_CLIENT, "client"),
        ),
        404,
        "job_not_found",
    )
    again = api.put("/jobs/old-job", json={"client_id": CLIENT}, headers=service_headers())
    assert again.status_code == 200, again.text
