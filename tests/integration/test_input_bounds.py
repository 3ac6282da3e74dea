"""DESIGN's input bounds over HTTP: every bound at and just past its edge,
timezone offsets at the edges of the calendar, ISO 4217 currencies, amounts,
free text and unknown fields on every command. A refusal is 422
``{code: "invalid_input", detail}`` naming the field and the bound, and records
nothing. "Now" is the service's injected clock, never the wall clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
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
from tests.jobs import owner_of, register_job

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # the service's clock, fixed for the module
TODAY = NOW.date()
SECOND = timedelta(seconds=1)
PLUS_14 = timezone(timedelta(hours=14))
CLIENT, FREELANCER = "bounds-client", "bounds-freelancer"
OFFER = {"amount": "1500.00", "currency": "EUR", "rate_type": "fixed"}
BIDI = ["\u061c", "\u200e", "\u200f", *map(chr, [*range(0x202A, 0x202F), *range(0x2066, 0x206A)])]
CALENDAR_EDGES = [
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-01:00",
    "9999-12-31T23:59:59+14:00",
    "0001-01-01T00:00:00Z",
]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """One app per store for the module: every check here either is refused (and
    must record nothing) or acts on its own job, so they cannot disturb each other."""
    admin, name, url = None, "", None
    if request.param == "postgres":
        admin = require_postgres()
        name = f"t_{uuid4().hex[:12]}"
        url = create_database(admin, name)
    settings = InterviewsSettings(
        database_url=url, data_dir=Path(tmp_path_factory.mktemp("bounds")), auth_secret=TEST_SECRET
    )
    container = InterviewsContainer(settings, clock=FakeClock(NOW))
    try:
        with TestClient(create_app(container)) as client:
            yield client
    finally:
        container.close()
        if admin:
            drop_database(admin, name)


def auth(sub: str, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(TEST_SECRET, sub, role)}"}


CLIENT_H, FREELANCER_H = auth(CLIENT, "client"), auth(FREELANCER, "freelancer")


def iso(moment: datetime) -> str:
    return moment.isoformat()


def events_recorded(api: TestClient) -> int:
    """How many interview events the store holds (a job registered for an
    invitation is not one: the refusal under test must record no interview event)."""
    container: InterviewsContainer = api.app.state.container  # type: ignore[attr-defined]
    return len(list(container.interviews().iter_interview_notifications(after=0, limit=100_000)))


def post_invite(api: TestClient, **body: Any) -> httpx.Response:
    """The one place these tests invite: a fresh job each time, unless given (the
    job is registered for the client first)."""
    payload = {"job_id": f"job-{uuid4().hex[:12]}", "freelancer_id": FREELANCER, **body}
    if isinstance(payload["job_id"], str) and payload["job_id"].startswith("job-"):
        register_job(api, payload["job_id"], owner_of(CLIENT_H))
    return api.post("/interviews", json=payload, headers=CLIENT_H)


def invited(api: TestClient, **body: Any) -> str:
    response = post_invite(api, **body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def accepted(api: TestClient) -> str:
    iid = invited(api)
    answered(api.post(f"/interviews/{iid}/accept", headers=FREELANCER_H))
    return iid


def offered(api: TestClient) -> str:
    iid = accepted(api)
    answered(api.post(f"/interviews/{iid}/offer", json=OFFER, headers=CLIENT_H))
    return iid


def answered(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    return response.json()  # type: ignore[no-any-return]


def refused(response: httpx.Response, field: str, *bound: str) -> str:
    """A 422 ``invalid_input`` whose detail names ``field`` and the ``bound``."""
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "invalid_input", body
    detail = str(body["detail"])
    assert field in detail, detail
    for words in bound:
        assert words in detail, detail
    return detail


# ------------------------------------------------------------------ deadlines

EXPIRY_EDGES = [
    pytest.param(NOW, False, id="now"),
    pytest.param(NOW + SECOND, True, id="a-second-ahead"),
    pytest.param(NOW + timedelta(days=90), True, id="90-days-ahead"),
    pytest.param(NOW + timedelta(days=90, seconds=1), False, id="90-days-and-a-second"),
    pytest.param(
        (NOW + timedelta(days=90)).astimezone(PLUS_14), True, id="90-days-written-at-plus-14"
    ),
    pytest.param(NOW + timedelta(days=365), False, id="a-year-ahead"),
]


@pytest.mark.parametrize(("value", "ok"), EXPIRY_EDGES)
def test_an_invitation_expires_in_the_future_and_at_most_90_days_ahead(
    api: TestClient, value: datetime, ok: bool
) -> None:
    before = events_recorded(api)

    response = post_invite(api, expires_at=iso(value))

    if ok:
        iid = answered(response)["id"]
        state = api.get(f"/interviews/{iid}", headers=CLIENT_H).json()
        assert datetime.fromisoformat(state["invitation_expires_at"]) == value
    else:
        refused(response, "expires_at", "in the future", "90 days")
        assert events_recorded(api) == before


@pytest.mark.parametrize(("value", "ok"), EXPIRY_EDGES)
def test_an_offer_expires_in_the_future_and_at_most_90_days_ahead(
    api: TestClient, value: datetime, ok: bool
) -> None:
    iid = accepted(api)
    before = events_recorded(api)

    response = api.post(
        f"/interviews/{iid}/offer", json={**OFFER, "expires_at": iso(value)}, headers=CLIENT_H
    )

    if ok:
        assert answered(response)["status"] == "offer_extended"
        offer = api.get(f"/interviews/{iid}", headers=CLIENT_H).json()["offer"]
        assert datetime.fromisoformat(offer["expires_at"]) == value
    else:
        refused(response, "expires_at", "90 days")
        assert events_recorded(api) == before


SCHEDULE_EDGES = [
    pytest.param(NOW - timedelta(days=7), True, id="7-days-ago"),
    pytest.param(NOW - timedelta(days=7, seconds=1), False, id="7-days-and-a-second-ago"),
    pytest.param(NOW + timedelta(days=365), True, id="a-year-ahead"),
    pytest.param(NOW + timedelta(days=365, seconds=1), False, id="a-year-and-a-second-ahead"),
    pytest.param(datetime(2019, 3, 1, tzinfo=UTC), False, id="years-ago"),
]


@pytest.mark.parametrize(("value", "ok"), SCHEDULE_EDGES)
def test_an_interview_is_scheduled_between_7_days_ago_and_a_year_ahead(
    api: TestClient, value: datetime, ok: bool
) -> None:
    iid = accepted(api)
    before = events_recorded(api)

    response = api.post(
        f"/interviews/{iid}/start", json={"scheduled_at": iso(value)}, headers=CLIENT_H
    )

    if ok:
        assert answered(response)["status"] == "in_progress"
    else:
        refused(response, "scheduled_at", "7 days ago and one year ahead")
        assert events_recorded(api) == before
        assert api.get(f"/interviews/{iid}", headers=CLIENT_H).json()["status"] == "accepted"


START_DATE_EDGES = [
    pytest.param(TODAY - timedelta(days=1), True, id="yesterday"),
    pytest.param(TODAY - timedelta(days=2), False, id="two-days-ago"),
    pytest.param(TODAY + timedelta(days=365), True, id="a-year-ahead"),
    pytest.param(TODAY + timedelta(days=366), False, id="a-year-and-a-day-ahead"),
    pytest.param(date(1, 1, 1), False, id="year-1"),
    pytest.param(date(9999, 12, 31), False, id="year-9999"),
]


@pytest.mark.parametrize(("value", "ok"), START_DATE_EDGES)
def test_an_offer_starts_between_yesterday_and_a_year_ahead(
    api: TestClient, value: date, ok: bool
) -> None:
    iid = accepted(api)
    before = events_recorded(api)

    response = api.post(
        f"/interviews/{iid}/offer",
        json={**OFFER, "start_date": value.isoformat()},
        headers=CLIENT_H,
    )

    if ok:
        answered(response)
        offer = api.get(f"/interviews/{iid}", headers=CLIENT_H).json()["offer"]
        assert offer["start_date"] == value.isoformat()
    else:
        refused(response, "start_date", "yesterday and one year ahead")
        assert events_recorded(api) == before


@pytest.mark.parametrize("value", CALENDAR_EDGES)
@pytest.mark.parametrize(
    ("command", "field"),
    [("invite", "expires_at"), ("start", "scheduled_at"), ("offer", "expires_at")],
)
def test_instants_at_the_edges_of_the_calendar_are_422_never_500(
    api: TestClient, command: str, field: str, value: str
) -> None:
    """The values that once stopped the scheduler and parked events for good."""
    iid = accepted(api) if command != "invite" else ""
    before = events_recorded(api)

    if command == "invite":
        response = post_invite(api, expires_at=value)
    elif command == "start":
        response = api.post(f"/interviews/{iid}/start", json={field: value}, headers=CLIENT_H)
    else:
        response = api.post(
            f"/interviews/{iid}/offer", json={**OFFER, field: value}, headers=CLIENT_H
        )

    refused(response, field)
    assert events_recorded(api) == before


def test_an_instant_with_an_offset_is_kept_as_the_same_moment_in_utc(api: TestClient) -> None:
    iid = invited(api, expires_at="2026-11-27T09:00:00+14:00")
    answered(api.post(f"/interviews/{iid}/accept", headers=FREELANCER_H))
    answered(
        api.post(
            f"/interviews/{iid}/start",
            json={"scheduled_at": "2026-11-30T01:00:00-14:00"},
            headers=CLIENT_H,
        )
    )

    state = api.get(f"/interviews/{iid}", headers=FREELANCER_H).json()

    assert state["invitation_expires_at"] == "2026-11-26T19:00:00Z"
    assert state["scheduled_at"] == "2026-11-30T15:00:00Z"


@pytest.mark.parametrize("value", ["2026-12-01T10:00:00", "2026-12-01"])
def test_a_time_without_a_zone_is_refused(api: TestClient, value: str) -> None:
    iid = accepted(api)

    refused(
        api.post(f"/interviews/{iid}/start", json={"scheduled_at": value}, headers=CLIENT_H),
        "scheduled_at",
    )


# ---------------------------------------------------------------------- money


@pytest.mark.parametrize("currency", ["EUR", "USD", "JPY", "CHF", "BHD"])
def test_iso_4217_currencies_are_accepted(api: TestClient, currency: str) -> None:
    iid = accepted(api)

    answered(
        api.post(f"/interviews/{iid}/offer", json={**OFFER, "currency": currency}, headers=CLIENT_H)
    )

    assert api.get(f"/interviews/{iid}", headers=CLIENT_H).json()["offer"]["currency"] == currency


@pytest.mark.parametrize("currency", ["ZZZ", "XXX", "XTS", "XAU", "ABC", "eur", "EURO", ""])
def test_codes_that_are_not_currencies_are_refused(api: TestClient, currency: str) -> None:
    iid = accepted(api)
    before = events_recorded(api)

    refused(
        api.post(
            f"/interviews/{iid}/offer", json={**OFFER, "currency": currency}, headers=CLIENT_H
        ),
        "currency",
        "ISO 4217",
    )
    assert events_recorded(api) == before


@pytest.mark.parametrize(
    "amount",
    ["10000000", 10000000, "10000000.00", 10000000.0, "0.01", 0.01, "9999999.99"],
    ids=lambda a: f"{type(a).__name__}-{a}",
)
def test_amounts_up_to_ten_million_with_two_decimals_are_accepted(
    api: TestClient, amount: Any
) -> None:
    iid = accepted(api)

    answered(
        api.post(f"/interviews/{iid}/offer", json={**OFFER, "amount": amount}, headers=CLIENT_H)
    )


@pytest.mark.parametrize(
    ("amount", "bound"),
    [
        ("10000000.01", "at most 10000000"),
        (10000000.01, "at most 10000000"),
        (1e20, "at most 10000000"),
        ("0.001", "at most 2 decimals"),
        (0.001, "at most 2 decimals"),
        ("0", "greater than 0"),
        (0, "greater than 0"),
        ("0.00", "greater than 0"),
        ("1e3", "decimal number"),
        (" 12", "decimal number"),
    ],
    ids=lambda a: f"{type(a).__name__}-{a}",
)
def test_amounts_out_of_bounds_are_refused(api: TestClient, amount: Any, bound: str) -> None:
    iid = accepted(api)
    before = events_recorded(api)

    refused(
        api.post(f"/interviews/{iid}/offer", json={**OFFER, "amount": amount}, headers=CLIENT_H),
        "amount",
        bound,
    )
    assert events_recorded(api) == before


# ------------------------------------------------------------------ free text

TEXT_FIELDS = [
    ("invite", "message"),
    ("offer", "message"),
    ("decline", "reason"),
    ("offer/decline", "reason"),
    ("cancel", "reason"),
]


def text_command(api: TestClient, command: str, field: str) -> Callable[[Any], httpx.Response]:
    """Prepares an interview in the state ``command`` needs; the returned call
    sends ``command`` with ``field`` set to a value."""
    if command == "invite":
        return lambda value: post_invite(api, **{field: value})
    if command == "offer":
        iid = accepted(api)
        return lambda value: api.post(
            f"/interviews/{iid}/offer", json={**OFFER, field: value}, headers=CLIENT_H
        )
    iid = offered(api) if command == "offer/decline" else invited(api)
    headers = CLIENT_H if command == "cancel" else FREELANCER_H
    path = f"/interviews/{iid}/{command}"
    return lambda value: api.post(path, json={field: value}, headers=headers)


def send_text(api: TestClient, command: str, field: str, value: Any) -> httpx.Response:
    return text_command(api, command, field)(value)


@pytest.mark.parametrize("char", BIDI, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize(("command", "field"), TEXT_FIELDS, ids=[c for c, _ in TEXT_FIELDS])
def test_bidirectional_controls_are_refused_in_free_text(
    api: TestClient, command: str, field: str, char: str
) -> None:
    send = text_command(api, command, field)
    before = events_recorded(api)

    response = send(f"Invoice {char}gpj.exe{char} attached")

    refused(response, field, "bidirectional", f"U+{ord(char):04X}")
    assert events_recorded(api) == before


@pytest.mark.parametrize(
    ("text", "bound"),
    [
        ("", "blank"),
        ("   ", "blank"),
        ("\n\t", "blank"),
        ("\u200b\u2060", "blank"),
        ("red \x1b[31m alert", "control characters"),
        ("nul \x00 byte", "control characters"),
        ("c1 \x9b control", "control characters"),
    ],
    ids=["empty", "spaces", "whitespace", "zero-width", "escape", "nul", "c1"],
)
@pytest.mark.parametrize(("command", "field"), TEXT_FIELDS, ids=[c for c, _ in TEXT_FIELDS])
def test_blank_text_and_control_characters_are_refused(
    api: TestClient, command: str, field: str, text: str, bound: str
) -> None:
    refused(send_text(api, command, field, text), field, bound)


@pytest.mark.parametrize(
    ("command", "field", "limit"),
    [("invite", "message", 2000), ("offer", "message", 2000), ("cancel", "reason", 500)],
)
def test_free_text_keeps_its_length_bound(
    api: TestClient, command: str, field: str, limit: int
) -> None:
    answered(send_text(api, command, field, "x" * limit))

    refused(send_text(api, command, field, "x" * (limit + 1)), field, f"at most {limit}")


@pytest.mark.parametrize(("command", "field"), TEXT_FIELDS[:4], ids=[c for c, _ in TEXT_FIELDS[:4]])
def test_optional_free_text_may_be_null_and_keeps_tabs_and_line_breaks(
    api: TestClient, command: str, field: str
) -> None:
    answered(send_text(api, command, field, None))
    answered(send_text(api, command, field, "Dear team,\r\n\tthanks!\n"))


def test_cancel_still_needs_its_reason(api: TestClient) -> None:
    iid = invited(api)

    refused(
        api.post(f"/interviews/{iid}/cancel", json={"reason": None}, headers=CLIENT_H), "reason"
    )
    refused(api.post(f"/interviews/{iid}/cancel", json={}, headers=CLIENT_H), "reason")


# ------------------------------------------------------------- unknown fields


def prepared(api: TestClient, command: str) -> tuple[str, str, dict[str, Any], dict[str, str]]:
    """(method, path, a valid body, headers) for ``command`` on a fresh interview."""
    if command == "invite":
        job = f"job-{uuid4().hex[:12]}"
        register_job(api, job, owner_of(CLIENT_H))
        return "POST", "/interviews", {"job_id": job, "freelancer_id": FREELANCER}, CLIENT_H
    if command == "policy":
        job = f"job-{uuid4().hex[:12]}"
        register_job(api, job, owner_of(CLIENT_H))
        return "PUT", f"/jobs/{job}/policy", {"exclusive_hours": 24}, CLIENT_H
    iid = {
        "accept": invited,
        "decline": invited,
        "cancel": invited,
        "start": accepted,
        "offer": accepted,
        "offer/accept": offered,
        "offer/decline": offered,
    }[command](api)
    body: dict[str, Any] = {
        "decline": {"reason": "busy"},
        "cancel": {"reason": "filled"},
        "start": {"scheduled_at": iso(NOW + timedelta(days=2))},
        "offer": dict(OFFER),
        "offer/decline": {"reason": "too low"},
    }.get(command, {})
    client_side = command in ("cancel", "start", "offer")
    return "POST", f"/interviews/{iid}/{command}", body, CLIENT_H if client_side else FREELANCER_H


COMMANDS = [
    "invite",
    "accept",
    "decline",
    "start",
    "offer",
    "offer/accept",
    "offer/decline",
    "cancel",
    "policy",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unknown_field_is_refused_on_every_command(api: TestClient, command: str) -> None:
    method, path, body, headers = prepared(api, command)
    before = events_recorded(api)

    response = api.request(method, path, json={**body, "is_admin": True}, headers=headers)

    refused(response, "is_admin", "not permitted")
    assert events_recorded(api) == before
    # The same command without the stranger is accepted: the field alone was refused.
    answered(api.request(method, path, json=body, headers=headers))


@pytest.mark.parametrize("command", ["accept", "offer/accept"])
@pytest.mark.parametrize(
    "send",
    [
        {},
        {"json": {}},
        {"content": b"", "headers": {"Content-Type": "application/json"}},
    ],
    ids=["no-body-no-content-type", "empty-object", "empty-json-body"],
)
def test_a_bodiless_command_takes_no_body_or_an_empty_object(
    api: TestClient, command: str, send: dict[str, Any]
) -> None:
    _, path, _, headers = prepared(api, command)

    response = api.post(path, **{**send, "headers": {**headers, **send.get("headers", {})}})

    answered(response)


@pytest.mark.parametrize("command", ["accept", "offer/accept"])
@pytest.mark.parametrize("body", [[], "yes", 1], ids=["array", "string", "number"])
def test_a_bodiless_command_refuses_a_body_that_is_not_an_object(
    api: TestClient, command: str, body: Any
) -> None:
    _, path, _, headers = prepared(api, command)
    before = events_recorded(api)

    refused(api.post(path, json=body, headers=headers), "body")
    assert events_recorded(api) == before


# ------------------------------------------------------------------- OpenAPI


def test_the_openapi_document_states_the_bounds(api: TestClient) -> None:
    document = api.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    offer = schemas["OfferRequest"]["properties"]

    assert offer["amount"]["anyOf"][1]["maximum"] == 10_000_000
    assert "EUR" in offer["currency"]["enum"]
    assert not {"XXX", "XTS", "XAU", "ZZZ"} & set(offer["currency"]["enum"])
    message = offer["message"]["anyOf"][0]
    assert (message["minLength"], message["maxLength"]) == (1, 2000)
    assert "\\u202a" in message["pattern"]
    assert schemas["NoBody"]["additionalProperties"] is False
    accept = document["paths"]["/interviews/{interview_id}/accept"]["post"]
    assert accept["requestBody"].get("required") is not True
