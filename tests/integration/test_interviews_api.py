"""The interview command API over HTTP, on SQLite and on PostgreSQL: the
scripted hiring flow, the answers to every kind of refusal, idempotency keys,
optimistic concurrency and the operations endpoints."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient

from services.common.auth import mint_token
from services.interviews.bootstrap import InterviewsContainer, create_app
from services.interviews.settings import InterviewsSettings
from tests.conftest import (
    TEST_SECRET,
    FakeClock,
    create_database,
    drop_database,
    require_postgres,
)
from tests.jobs import invite, register_job

pytestmark = pytest.mark.integration

Token = Callable[[str, str], dict[str, str]]
CLIENT, FREELANCER = "client-1", "freelancer-1"
OFFER = {"amount": "1500.00", "currency": "EUR", "rate_type": "fixed"}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def shared_api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """One app and database per module for the checks that change nothing (or
    only what they alone use): a fresh PostgreSQL database per case would cost
    most of this file's time."""
    admin, name, url = None, "", None
    if request.param == "postgres":
        admin = require_postgres()
        name = f"t_{uuid4().hex[:12]}"
        url = create_database(admin, name)
    settings = InterviewsSettings(
        database_url=url, data_dir=tmp_path_factory.mktemp("shared"), auth_secret=TEST_SECRET
    )
    container = InterviewsContainer(settings, clock=FakeClock())
    try:
        with TestClient(create_app(container)) as client:
            yield client
    finally:
        container.close()
        if admin:
            drop_database(admin, name)


def container_of(api: TestClient) -> InterviewsContainer:
    return api.app.state.container  # type: ignore[attr-defined,no-any-return]


def new_job() -> str:
    return f"job-{uuid4().hex[:12]}"


def ok(response: httpx.Response, status: str) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == status
    assert response.headers["etag"] == f'"{body["version"]}"'
    return body  # type: ignore[no-any-return]


def refused(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["code"], str) and body["code"]
    assert isinstance(body["detail"], str) and body["detail"]
    if code is not None:
        assert body["code"] == code, body
    return body  # type: ignore[no-any-return]


def event_count(container: InterviewsContainer) -> int:
    return container.interviews().max_position()


# ------------------------------------------------------------------ the flow


def test_the_scripted_hiring_flow(
    api: TestClient,
    client: dict[str, str],
    freelancer: dict[str, str],
    token: Token,
    interviews_container: InterviewsContainer,
) -> None:
    first = invite(api, client, message="Would you like to talk about the job?")
    iid = first["id"]
    assert (first["status"], first["version"]) == ("invited", 1)

    steps = [
        ok(api.post(f"/interviews/{iid}/accept", headers=freelancer), "accepted"),
        ok(
            api.post(
                f"/interviews/{iid}/start",
                json={"scheduled_at": "2026-12-01T10:00:00+01:00"},
                headers=client,
            ),
            "in_progress",
        ),
        ok(api.post(f"/interviews/{iid}/offer", json=OFFER, headers=client), "offer_extended"),
        ok(
            api.post(
                f"/interviews/{iid}/offer/decline", json={"reason": "too low"}, headers=freelancer
            ),
            "in_progress",
        ),
        ok(
            api.post(
                f"/interviews/{iid}/offer",
                json={**OFFER, "amount": "1800", "start_date": "2027-01-04", "message": "better?"},
                headers=client,
            ),
            "offer_extended",
        ),
        ok(api.post(f"/interviews/{iid}/offer/accept", headers=freelancer), "hired"),
    ]

    answers = [first, *steps]
    assert {a["id"] for a in answers} == {iid}
    assert [a["version"] for a in answers] == [1, 2, 3, 4, 5, 6, 7]
    positions = [a["position"] for a in answers]
    assert positions == sorted(set(positions)), "positions strictly increase"

    state = api.get(f"/interviews/{iid}", headers=client)
    assert state.status_code == 200
    assert state.headers["etag"] == '"7"'
    view = state.json()
    assert view["status"] == "hired"
    assert (view["version"], view["position"]) == (7, positions[-1])
    assert (view["job_id"], view["client_id"], view["freelancer_id"]) == (
        "job-1",
        CLIENT,
        FREELANCER,
    )
    assert datetime.fromisoformat(view["scheduled_at"]) == datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert view["offer"]["amount"] in ("1800", "1800.00", 1800)
    assert view["offer"]["start_date"] == "2027-01-04"
    assert view["offers_extended"] == 2
    assert view["hired_at"] is not None

    # The freelancer and an auditor see the same authoritative state.
    assert api.get(f"/interviews/{iid}", headers=freelancer).json() == view
    assert api.get(f"/interviews/{iid}", headers=token("auditor-1", "auditor")).json() == view

    # The store holds exactly the seven events, with actor and request ids.
    events = interviews_container.interviews().interview_events(UUID(iid))
    assert [type(e).__name__ for e in events] == [
        "Invited",
        "Accepted",
        "InterviewStarted",
        "OfferExtended",
        "OfferDeclined",
        "OfferExtended",
        "OfferAccepted",
    ]
    assert [e.actor_id for e in events] == [
        CLIENT,
        FREELANCER,
        CLIENT,
        CLIENT,
        FREELANCER,
        CLIENT,
        FREELANCER,
    ]
    assert all(e.correlation_id and e.causation_id for e in events)

    # A second interview for the same job, cancelled by the client.
    second = invite(api, client, freelancer_id="freelancer-2")
    assert second["position"] > positions[-1]
    cancelled = ok(
        api.post(
            f"/interviews/{second['id']}/cancel", json={"reason": "position filled"}, headers=client
        ),
        "cancelled",
    )
    assert cancelled["version"] == 2
    view2 = api.get(f"/interviews/{second['id']}", headers=token("freelancer-2", "freelancer"))
    assert view2.json()["closed_reason"] == "position filled"
    assert view2.json()["cancelled_by"] == "client"


def test_a_freelancer_declines_and_may_be_invited_again(
    api: TestClient, client: dict[str, str], freelancer: dict[str, str]
) -> None:
    first = invite(api, client)
    ok(
        api.post(f"/interviews/{first['id']}/decline", json={"reason": "busy"}, headers=freelancer),
        "declined",
    )
    refused(api.post(f"/interviews/{first['id']}/decline", headers=freelancer), 409)

    again = invite(api, client)

    assert again["id"] != first["id"]


def test_correlation_id_header_is_recorded(
    api: TestClient, client: dict[str, str], interviews_container: InterviewsContainer
) -> None:
    register_job(api, "job-1", CLIENT)
    response = api.post(
        "/interviews",
        json={"job_id": "job-1", "freelancer_id": FREELANCER},
        headers={**client, "X-Correlation-Id": "checkout-42", "X-Request-Id": "req-7"},
    )

    [event] = interviews_container.interviews().interview_events(UUID(response.json()["id"]))
    assert (event.correlation_id, event.causation_id) == ("checkout-42", "req-7")
    assert response.headers["x-request-id"] == "req-7"


# ---------------------------------------------------------------------- 401


def test_no_token_is_401(api: TestClient) -> None:
    body = refused(
        api.post("/interviews", json={"job_id": "job-1", "freelancer_id": FREELANCER}),
        401,
        "unauthorized",
    )
    assert "token" in body["detail"]
    refused(api.get("/interviews/00000000-0000-0000-0000-000000000000"), 401)


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer not-a-jwt",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer " + mint_token("some-other-secret-" + "y" * 32, CLIENT, "client"),
        "Bearer " + jwt.encode({"sub": CLIENT, "role": "client"}, TEST_SECRET, "HS256"),  # no exp
        "Bearer " + jwt.encode({"sub": CLIENT, "role": "root", "exp": 4102444800}, TEST_SECRET),
        "Bearer " + jwt.encode({"sub": CLIENT, "role": "client", "exp": 4102444800}, None, "none"),
    ],
    ids=["garbage", "empty", "basic", "wrong-secret", "no-exp", "bad-role", "alg-none"],
)
def test_a_bad_token_is_401(shared_api: TestClient, authorization: str) -> None:
    response = shared_api.post(
        "/interviews",
        json={"job_id": "job-1", "freelancer_id": FREELANCER},
        headers={"Authorization": authorization},
    )

    refused(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


def test_an_expired_token_is_401(api: TestClient) -> None:
    expired = mint_token(TEST_SECRET, CLIENT, "client", ttl_seconds=-60)

    body = refused(
        api.post(
            "/interviews",
            json={"job_id": "job-1", "freelancer_id": FREELANCER},
            headers={"Authorization": f"Bearer {expired}"},
        ),
        401,
        "unauthorized",
    )
    assert "expired" in body["detail"]


# ---------------------------------------------------------------------- 403


@pytest.mark.parametrize(
    ("path", "body", "who"),
    [
        ("accept", None, "client"),
        ("decline", {}, "client"),
        ("offer/accept", None, "client"),
        ("offer", OFFER, "freelancer"),
    ],
)
def test_the_wrong_party_is_403(
    api: TestClient,
    client: dict[str, str],
    freelancer: dict[str, str],
    path: str,
    body: dict[str, Any] | None,
    who: str,
) -> None:
    iid = invite(api, client)["id"]
    if path.startswith("offer"):
        ok(api.post(f"/interviews/{iid}/accept", headers=freelancer), "accepted")
    if path == "offer/accept":
        ok(api.post(f"/interviews/{iid}/offer", json=OFFER, headers=client), "offer_extended")
    headers = client if who == "client" else freelancer

    refused(api.post(f"/interviews/{iid}/{path}", json=body, headers=headers), 403, "forbidden")


@pytest.mark.parametrize("role", ["auditor", "admin"])
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("", {"job_id": "job-9", "freelancer_id": FREELANCER}),
        ("/{id}/accept", None),
        ("/{id}/cancel", {"reason": "I am in charge"}),
    ],
)
def test_readers_never_change_interviews(
    shared_api: TestClient,
    client: dict[str, str],
    token: Token,
    role: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    iid = invite(shared_api, client, job_id=new_job())["id"]
    before = event_count(container_of(shared_api))

    refused(
        shared_api.post(
            "/interviews" + path.format(id=iid), json=body, headers=token("boss", role)
        ),
        403,
        "forbidden",
    )

    assert event_count(container_of(shared_api)) == before


def test_to_another_client_someone_elses_job_does_not_exist(
    api: TestClient, client: dict[str, str], token: Token
) -> None:
    invite(api, client)
    before = event_count(container_of(api))

    body = refused(
        api.post(
            "/interviews",
            json={"job_id": "job-1", "freelancer_id": "freelancer-2"},
            headers=token("client-2", "client"),
        ),
        404,
        "job_not_found",
    )
    assert "job-1" in body["detail"]
    assert event_count(container_of(api)) == before


def test_another_client_cannot_set_someone_elses_job_policy(
    api: TestClient, client: dict[str, str], token: Token
) -> None:
    invite(api, client)

    refused(
        api.put(
            "/jobs/job-1/policy", json={"exclusive_hours": 24}, headers=token("client-2", "client")
        ),
        404,
        "job_not_found",
    )
    mine = api.put("/jobs/job-1/policy", json={"exclusive_hours": 24}, headers=client)
    assert mine.status_code == 200, mine.text
    assert mine.json()["exclusive_hours"] == 24


def test_only_a_client_invites(api: TestClient, freelancer: dict[str, str]) -> None:
    register_job(api, "job-1", CLIENT)
    refused(
        api.post(
            "/interviews", json={"job_id": "job-1", "freelancer_id": "f-9"}, headers=freelancer
        ),
        403,
    )


# ---------------------------------------------------------------------- 404

UNKNOWN = "0b5b1f0e-7a57-4b8e-9d3c-2f1e4b7a9c11"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "", None),
        ("POST", "/accept", None),
        ("POST", "/cancel", {"reason": "x"}),
        ("POST", "/offer", OFFER),
    ],
)
def test_an_unknown_interview_is_404(
    shared_api: TestClient, client: dict[str, str], method: str, path: str, body: Any
) -> None:
    refused(
        shared_api.request(method, f"/interviews/{UNKNOWN}{path}", json=body, headers=client),
        404,
        "not_found",
    )


def test_strangers_cannot_tell_an_interview_exists(
    api: TestClient, client: dict[str, str], token: Token
) -> None:
    iid = invite(api, client)["id"]

    for stranger in (token("client-2", "client"), token("freelancer-2", "freelancer")):
        read = refused(api.get(f"/interviews/{iid}", headers=stranger), 404, "not_found")
        unknown = refused(api.get(f"/interviews/{UNKNOWN}", headers=stranger), 404, "not_found")
        assert read["detail"].replace(iid, "ID") == unknown["detail"].replace(UNKNOWN, "ID")
        refused(api.post(f"/interviews/{iid}/cancel", json={"reason": "x"}, headers=stranger), 404)


def test_an_unknown_path_is_404_json(api: TestClient) -> None:
    refused(api.get("/nowhere"), 404, "not_found")


# ---------------------------------------------------------------------- 409


def test_a_transition_not_in_the_table_is_409(
    api: TestClient,
    client: dict[str, str],
    freelancer: dict[str, str],
    interviews_container: InterviewsContainer,
) -> None:
    iid = invite(api, client)["id"]
    ok(
        api.post(f"/interviews/{iid}/cancel", json={"reason": "budget"}, headers=freelancer),
        "cancelled",
    )
    before = event_count(interviews_container)

    body = refused(
        api.post(f"/interviews/{iid}/accept", headers=freelancer), 409, "transition_not_allowed"
    )
    assert "cancelled" in body["detail"]
    assert "accept" in body["detail"]
    body = refused(
        api.post(f"/interviews/{iid}/offer", json=OFFER, headers=client),
        409,
        "transition_not_allowed",
    )
    assert "cancelled" in body["detail"]
    refused(api.post(f"/interviews/{iid}/cancel", json={"reason": "again"}, headers=client), 409)
    assert event_count(interviews_container) == before


def test_starting_an_invited_interview_is_409(api: TestClient, client: dict[str, str]) -> None:
    iid = invite(api, client)["id"]

    body = refused(
        api.post(f"/interviews/{iid}/start", headers=client), 409, "transition_not_allowed"
    )
    assert "invited" in body["detail"]


def test_a_second_open_interview_for_the_same_job_and_freelancer_is_409(
    api: TestClient, client: dict[str, str], freelancer: dict[str, str]
) -> None:
    first = invite(api, client)
    ok(api.post(f"/interviews/{first['id']}/accept", headers=freelancer), "accepted")

    body = refused(
        api.post(
            "/interviews", json={"job_id": "job-1", "freelancer_id": FREELANCER}, headers=client
        ),
        409,
        "duplicate_open_interview",
    )
    assert first["id"] in body["detail"]
    # Another job is another matter.
    register_job(api, "job-2", CLIENT)
    other = api.post(
        "/interviews", json={"job_id": "job-2", "freelancer_id": FREELANCER}, headers=client
    )
    assert other.status_code == 201


def test_answering_after_the_deadline_is_409_expired(
    api: TestClient, client: dict[str, str], freelancer: dict[str, str], clock: FakeClock
) -> None:
    iid = invite(api, client, expires_at="2026-11-26T12:00:00Z")["id"]
    clock.advance(days=2)

    body = refused(api.post(f"/interviews/{iid}/accept", headers=freelancer), 409, "expired")
    assert "expired" in body["detail"]


# ---------------------------------------------------------------------- 412


def test_if_match_guards_against_lost_updates(
    api: TestClient, client: dict[str, str], freelancer: dict[str, str]
) -> None:
    iid = invite(api, client)["id"]

    response = api.post(f"/interviews/{iid}/accept", headers={**freelancer, "If-Match": '"7"'})
    refused(response, 412, "version_mismatch")
    assert response.headers["etag"] == '"1"'

    ok(api.post(f"/interviews/{iid}/accept", headers={**freelancer, "If-Match": '"1"'}), "accepted")
    ok(api.post(f"/interviews/{iid}/start", headers={**client, "If-Match": "2"}), "in_progress")
    refused(
        api.post(
            f"/interviews/{iid}/cancel", json={"reason": "x"}, headers={**client, "If-Match": "2"}
        ),
        412,
    )


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", '"x"', "9" * 30])
def test_a_malformed_if_match_is_422(
    shared_api: TestClient, client: dict[str, str], freelancer: dict[str, str], value: str
) -> None:
    iid = invite(shared_api, client, job_id=new_job())["id"]

    refused(
        shared_api.post(f"/interviews/{iid}/accept", headers={**freelancer, "If-Match": value}), 422
    )


# ---------------------------------------------------------------------- 422


def post_raw(api: TestClient, path: str, raw: bytes, headers: dict[str, str]) -> httpx.Response:
    return api.post(path, content=raw, headers={**headers, "Content-Type": "application/json"})


@pytest.mark.parametrize(
    "raw",
    [
        b"{bad json",
        b"",
        b"[1, 2]",
        b'"a string"',
        b"null",
        b"\xff\xfe",
        b'{"job_id": "j"',
        b"\xff{",
    ],
    ids=["broken", "empty", "array", "string", "null", "not-utf8", "truncated", "undecodable"],
)
def test_malformed_json_is_422(shared_api: TestClient, client: dict[str, str], raw: bytes) -> None:
    refused(post_raw(shared_api, "/interviews", raw, client), 422, "invalid_input")


@pytest.mark.parametrize(
    "body",
    [
        {"job_id": "job-1", "freelancer_id": FREELANCER, "admin": True},
        {"job_id": "job-1"},
        {"job_id": 7, "freelancer_id": FREELANCER},
        {"job_id": "job-1", "freelancer_id": ["f"]},
        {"job_id": "job-1", "freelancer_id": FREELANCER, "message": "x" * 2001},
        {"job_id": "job-1", "freelancer_id": FREELANCER, "message": 12},
        {"job_id": "j" * 65, "freelancer_id": FREELANCER},
        {"job_id": "job 1", "freelancer_id": FREELANCER},
        {"job_id": "job-1", "freelancer_id": "../etc/passwd"},
        {"job_id": "", "freelancer_id": FREELANCER},
        {"job_id": "job-1", "freelancer_id": FREELANCER, "expires_at": "tomorrow"},
        {"job_id": "job-1", "freelancer_id": FREELANCER, "expires_at": "2027-01-01T00:00:00"},
        {"job_id": "job-1", "freelancer_id": FREELANCER, "expires_at": "2020-01-01T00:00:00Z"},
        {"job_id": "job-1", "freelancer_id": CLIENT},
    ],
    ids=[
        "unknown-field",
        "missing-field",
        "int-id",
        "list-id",
        "long-message",
        "int-message",
        "long-id",
        "space-in-id",
        "path-in-id",
        "empty-id",
        "bad-date",
        "naive-date",
        "past-deadline",
        "self-invite",
    ],
)
def test_invalid_invitations_are_422(
    shared_api: TestClient,
    client: dict[str, str],
    body: dict[str, Any],
) -> None:
    register_job(shared_api, "job-1", CLIENT)
    before = event_count(container_of(shared_api))

    refused(shared_api.post("/interviews", json=body, headers=client), 422)

    assert event_count(container_of(shared_api)) == before


@pytest.mark.parametrize("amount", ["1200.50", 1200, 1200.5], ids=["string", "int", "float"])
def test_an_offer_amount_may_be_a_decimal_string_or_a_json_number(
    shared_api: TestClient,
    client: dict[str, str],
    freelancer: dict[str, str],
    amount: Any,
) -> None:
    iid = invite(shared_api, client, job_id=new_job())["id"]
    ok(shared_api.post(f"/interviews/{iid}/accept", headers=freelancer), "accepted")

    ok(
        shared_api.post(
            f"/interviews/{iid}/offer", json={**OFFER, "amount": amount}, headers=client
        ),
        "offer_extended",
    )

    offer = shared_api.get(f"/interviews/{iid}", headers=client).json()["offer"]
    assert Decimal(str(offer["amount"])) == Decimal(str(amount))


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 0},
        {"amount": "-5"},
        {"amount": "abc"},
        {"amount": "NaN"},
        {"amount": "Infinity"},
        {"amount": "1e400"},
        {"amount": "10.001"},
        {"amount": 10.001},
        {"amount": -1},
        {"amount": True},
        {"currency": "eur"},
        {"currency": "EURO"},
        {"currency": "€"},
        {"currency": None},
        {"rate_type": "monthly"},
        {"start_date": "2027-02-30"},
        {"message": "m" * 2001},
        {"expires_at": "2020-01-01T00:00:00Z"},
        {"surprise": 1},
    ],
    ids=lambda c: "-".join(f"{k}={str(v)[:12]}" for k, v in c.items()),
)
def test_invalid_offers_are_422(
    shared_api: TestClient,
    client: dict[str, str],
    freelancer: dict[str, str],
    change: dict[str, Any],
) -> None:
    iid = invite(shared_api, client, job_id=new_job())["id"]
    ok(shared_api.post(f"/interviews/{iid}/accept", headers=freelancer), "accepted")

    refused(
        shared_api.post(f"/interviews/{iid}/offer", json={**OFFER, **change}, headers=client), 422
    )


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("decline", {"reason": "r" * 501}),
        ("decline", {"reason": 3}),
        ("decline", {"why": "no"}),
        ("start", {"scheduled_at": "soon"}),
        ("start", {"scheduled_at": "2026-12-01T10:00:00"}),
        ("cancel", {}),
        ("cancel", {"reason": ""}),
        ("cancel", {"reason": "   "}),
        ("cancel", {"reason": "r" * 501}),
        ("cancel", None),
    ],
)
def test_invalid_command_bodies_are_422(
    shared_api: TestClient,
    client: dict[str, str],
    freelancer: dict[str, str],
    path: str,
    body: dict[str, Any] | None,
) -> None:
    iid = invite(shared_api, client, job_id=new_job())["id"]

    refused(shared_api.post(f"/interviews/{iid}/{path}", json=body, headers=freelancer), 422)


@pytest.mark.parametrize(
    "bad_id", ["not-a-uuid", "123", "0b5b1f0e-7a57-4b8e-9d3c-2f1e4b7a9c1", "%00", "x" * 300]
)
def test_bad_ids_in_the_path_are_422(
    shared_api: TestClient, freelancer: dict[str, str], token: Token, bad_id: str
) -> None:
    refused(
        shared_api.post(f"/interviews/{bad_id}/accept", headers=freelancer), 422, "invalid_input"
    )
    refused(shared_api.get(f"/interviews/{bad_id}", headers=freelancer), 422, "invalid_input")


@pytest.mark.parametrize("bad_job", ["job%20one", "-job", "j" * 65])
def test_bad_job_ids_in_the_path_are_422(
    shared_api: TestClient, client: dict[str, str], bad_job: str
) -> None:
    refused(
        shared_api.put(f"/jobs/{bad_job}/policy", json={"exclusive_hours": 1}, headers=client), 422
    )


@pytest.mark.parametrize("key", ["", "has space", "k" * 129, "naïve"])
def test_a_malformed_idempotency_key_is_422(
    shared_api: TestClient, client: dict[str, str], key: str
) -> None:
    response = shared_api.post(
        "/interviews",
        json={"job_id": "job-1", "freelancer_id": FREELANCER},
        headers={**client, "Idempotency-Key": key.encode()},  # type: ignore[dict-item]
    )
    refused(response, 422)


# -------------------------------------------------------------- idempotency


def test_a_retried_invitation_returns_the_first_answer_and_records_nothing(
    api: TestClient, client: dict[str, str], interviews_container: InterviewsContainer
) -> None:
    register_job(api, "job-1", CLIENT)
    body = {"job_id": "job-1", "freelancer_id": FREELANCER, "message": "hello"}
    headers = {**client, "Idempotency-Key": "invite-abc-1"}
    first = api.post("/interviews", json=body, headers=headers)
    assert first.status_code == 201
    after_first = event_count(interviews_container)

    retries = [api.post("/interviews", json=body, headers=headers) for _ in range(3)]

    for retry in retries:
        assert retry.status_code == 201
        assert retry.json() == first.json()
        assert retry.headers["idempotent-replayed"] == "true"
    assert event_count(interviews_container) == after_first


def test_a_retried_transition_returns_the_first_answer_even_after_later_changes(
    api: TestClient,
    client: dict[str, str],
    freelancer: dict[str, str],
    interviews_container: InterviewsContainer,
) -> None:
    iid = invite(api, client)["id"]
    headers = {**freelancer, "Idempotency-Key": "accept-1"}
    first = ok(api.post(f"/interviews/{iid}/accept", headers=headers), "accepted")
    ok(api.post(f"/interviews/{iid}/start", headers=client), "in_progress")
    before = event_count(interviews_container)

    again = api.post(f"/interviews/{iid}/accept", headers=headers)

    assert again.status_code == 200
    assert again.json() == first
    assert event_count(interviews_container) == before
    events = interviews_container.interviews().interview_events(UUID(iid))
    assert [type(e).__name__ for e in events] == ["Invited", "Accepted", "InterviewStarted"]


def test_the_same_key_with_a_different_body_is_422(
    api: TestClient, client: dict[str, str], interviews_container: InterviewsContainer
) -> None:
    register_job(api, "job-1", CLIENT)
    headers = {**client, "Idempotency-Key": "k-1"}
    api.post("/interviews", json={"job_id": "job-1", "freelancer_id": FREELANCER}, headers=headers)
    before = event_count(interviews_container)

    body = refused(
        api.post(
            "/interviews",
            json={"job_id": "job-1", "freelancer_id": "freelancer-2"},
            headers=headers,
        ),
        422,
        "idempotency_key_reused",
    )

    assert "Idempotency-Key" in body["detail"]
    assert event_count(interviews_container) == before


def test_idempotency_keys_belong_to_their_caller(
    api: TestClient, client: dict[str, str], token: Token
) -> None:
    register_job(api, "job-1", CLIENT)
    register_job(api, "job-2", "client-2")
    first = api.post(
        "/interviews",
        json={"job_id": "job-1", "freelancer_id": FREELANCER},
        headers={**client, "Idempotency-Key": "shared"},
    )
    second = api.post(
        "/interviews",
        json={"job_id": "job-2", "freelancer_id": FREELANCER},
        headers={**token("client-2", "client"), "Idempotency-Key": "shared"},
    )

    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]


def test_a_refused_command_does_not_burn_its_key(
    api: TestClient, client: dict[str, str], freelancer: dict[str, str]
) -> None:
    iid = invite(api, client)["id"]
    headers = {**client, "Idempotency-Key": "offer-1"}
    refused(api.post(f"/interviews/{iid}/offer", json=OFFER, headers=headers), 409)
    ok(api.post(f"/interviews/{iid}/accept", headers=freelancer), "accepted")

    ok(api.post(f"/interviews/{iid}/offer", json=OFFER, headers=headers), "offer_extended")


# --------------------------------------------------------------- operations


def test_health_readiness_and_metrics(
    api: TestClient, client: dict[str, str], freelancer: dict[str, str]
) -> None:
    iid = invite(api, client)["id"]
    api.post(f"/interviews/{iid}/accept", headers=freelancer)
    api.post(f"/interviews/{iid}/accept", headers=freelancer)  # a 409

    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json() == {"status": "ready"}
    metrics = api.get("/metrics")

    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'http_requests_total{method="POST",route="/interviews",status="201"} 1.0' in text
    accept_409 = 'route="/interviews/{interview_id}/accept",status="409"} 1.0'
    assert f'http_requests_total{{method="POST",{accept_409}' in text
    assert (
        'http_request_duration_seconds_bucket{le="0.005",method="POST",route="/interviews"}' in text
    )
    appended = [
        line for line in text.splitlines() if line.startswith("interview_events_appended_total")
    ]
    assert appended and float(appended[0].split()[-1]) >= 4  # job (2) + invited + accepted


def test_openapi_documents_the_contract(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]

    for path in (
        "/interviews",
        "/interviews/{interview_id}/accept",
        "/interviews/{interview_id}/decline",
        "/interviews/{interview_id}/start",
        "/interviews/{interview_id}/offer",
        "/interviews/{interview_id}/offer/accept",
        "/interviews/{interview_id}/offer/decline",
        "/interviews/{interview_id}/cancel",
        "/interviews/{interview_id}",
        "/jobs/{job_id}/policy",
    ):
        assert path in paths, path
