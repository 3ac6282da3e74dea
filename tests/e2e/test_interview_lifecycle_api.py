"""The second-round interview lifecycle over HTTP, on SQLite and on PostgreSQL:
reschedules by either party, offers withdrawn and returning to the state they
were made from, durations, interviews stuck in progress by an old decline,
events stored in their old shapes, the audit trail of it all, and the
calendar feed parsed back with the icalendar library."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic
from fastapi.testclient import TestClient
from icalendar import Calendar

from services.interviews.audit import InterviewAudit
from services.interviews.audit_export import replay
from services.interviews.bootstrap import InterviewsContainer
from services.interviews.domain import Interview
from services.interviews.domain.hashing import chain_hash
from services.interviews.entrypoints.schemas import InterviewPublic
from tests.conftest import FakeClock

pytestmark = pytest.mark.e2e

Token = Callable[[str, str], dict[str, str]]
CLIENT, FREELANCER = "client-1", "freelancer-1"
OFFER = {"amount": "1500.00", "currency": "EUR", "rate_type": "fixed"}
MEETING = "2026-12-02T09:00:00+00:00"
MOVED = "2026-12-03T15:30:00+01:00"  # 14:30 UTC


@pytest.fixture
def container(interviews_container: InterviewsContainer) -> InterviewsContainer:
    """conftest's ``interviews_container`` (``api`` serves it), under the name this
    module's tests use."""
    return interviews_container


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    return response.json()  # type: ignore[no-any-return]


def refused(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    assert body["detail"]
    return body  # type: ignore[no-any-return]


def invite(api: TestClient, client: dict[str, str]) -> str:
    """A new interview for a new job of CLIENT with FREELANCER."""
    # Where jobs must be created first (POST /jobs), create one; else any id is a job.
    made = api.post("/jobs", json={"title": "Backend engineer"}, headers=client)
    job_id = made.json()["job_id"] if made.status_code == 201 else f"job-{uuid4().hex[:10]}"
    body = {"job_id": job_id, "freelancer_id": FREELANCER}
    return str(ok(api.post("/interviews", json=body, headers=client))["id"])


def accepted(api: TestClient, client: dict[str, str], freelancer: dict[str, str]) -> str:
    iid = invite(api, client)
    ok(api.post(f"/interviews/{iid}/accept", headers=freelancer))
    return iid


def started(
    api: TestClient,
    client: dict[str, str],
    freelancer: dict[str, str],
    body: dict[str, Any] | None = None,
) -> str:
    iid = accepted(api, client, freelancer)
    start = body if body is not None else {"scheduled_at": MEETING, "duration_minutes": 45}
    ok(api.post(f"/interviews/{iid}/start", json=start, headers=client))
    return iid


def current(api: TestClient, iid: str, headers: dict[str, str]) -> dict[str, Any]:
    return ok(api.get(f"/interviews/{iid}", headers=headers))


def history(api: TestClient, iid: str, token: Token) -> list[dict[str, Any]]:
    return ok(api.get(f"/audit/interviews/{iid}/events", headers=token("aud-1", "auditor")))  # type: ignore[return-value]


def calendar(api: TestClient, iid: str, headers: dict[str, str]) -> tuple[Calendar, Any]:
    response = api.get(f"/interviews/{iid}/calendar.ics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    parsed = Calendar.from_ical(response.content)
    [event] = parsed.walk("VEVENT")
    return parsed, event


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# ---------------------------------------------------------------- reschedule


def test_either_party_reschedules_and_the_previous_time_is_kept(
    api: TestClient,
    client: dict[str, str],
    freelancer: dict[str, str],
    token: Token,
    clock: FakeClock,
) -> None:
    iid = started(api, client, freelancer)
    clock.advance(minutes=10)

    by_client = ok(
        api.post(
            f"/interviews/{iid}/reschedule",
            json={"scheduled_at": MOVED, "duration_minutes": 60, "reason": "a clash"},
            headers=client,
        )
    )
    clock.advance(minutes=10)
    later = "2026-12-04T08:00:00Z"
    by_freelancer = ok(
        api.post(f"/interviews/{iid}/reschedule", json={"scheduled_at": later}, headers=freelancer)
    )

    assert (by_client["status"], by_client["version"]) == ("in_progress", 4)
    assert (by_freelancer["status"], by_freelancer["version"]) == ("in_progress", 5)
    assert by_freelancer["position"] > by_client["position"]
    view = current(api, iid, freelancer)
    assert at(view["scheduled_at"]) == at(later)
    assert (view["duration_minutes"], view["reschedules"]) == (60, 2), "length kept"
    events = history(api, iid, token)
    assert [e["type"] for e in events[-2:]] == ["interview.rescheduled"] * 2
    first, second = events[-2], events[-1]
    assert first["actor"] == {"id": CLIENT, "role": "client"}
    assert at(first["data"]["scheduled_at"]) == at(MOVED)
    assert at(first["data"]["previous_scheduled_at"]) == at(MEETING)
    assert (first["data"]["duration_minutes"], first["data"]["reason"]) == (60, "a clash")
    assert second["actor"] == {"id": FREELANCER, "role": "freelancer"}
    assert at(second["data"]["previous_scheduled_at"]) == at(MOVED)
    assert second["data"]["reason"] is None
    # Time travel: before the freelancer's move, the client's time stood.
    past = ok(
        api.get(f"/audit/interviews/{iid}/state?version=4", headers=token("aud-1", "auditor"))
    )
    assert at(past["scheduled_at"]) == at(MOVED)
    assert (past["duration_minutes"], past["reschedules"]) == (60, 1)
    verdict = ok(api.get(f"/audit/interviews/{iid}/verify", headers=token("aud-1", "auditor")))
    assert verdict == {"ok": True, "checked": 5, "broken": None}


def test_a_reschedule_while_an_offer_is_open_keeps_the_offer(
    api: TestClient, client: dict[str, str], freelancer: dict[str, str]
) -> None:
    iid = started(api, client, freelancer)
    ok(api.post(f"/interviews/{iid}/offer", json=OFFER, headers=client))

    moved = ok(
        api.post(f"/interviews/{iid}/reschedule", json={"scheduled_at": MOVED}, headers=freelancer)
    )

    assert moved["status"] == "offer_extended"
    view = current(api, iid, client)
    assert view["offer"]["amount"] in ("1500.00", 1500)
    assert at(view["scheduled_at"]) == at(MOVED)
    assert ok(api.post(f"/interviews/{iid}/offer/accept", headers=freelancer))["status"] == "hired"


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({}, "scheduled_at is required"),
        ({"scheduled_at": "2026-12-03T10:00:00"}, "no time zone"),
        ({"scheduled_at": "tomorrow"}, "not a time"),
        ({"scheduled_at": MOVED, "duration_minutes": 14}, "too short"),
        ({"scheduled_at": MOVED, "duration_minutes": 241}, "too long"),
        ({"scheduled_at": MOVED, "duration_minutes": "60"}, "a string"),
        ({"scheduled_at": MOVED, "duration_minutes": 60.5}, "not whole"),
        ({"scheduled_at": MOVED, "duration_minutes": True}, "a boolean"),
        ({"scheduled_at": MOVED, "reason": "x\x00y"}, "a control character"),
        ({"scheduled_at": MOVED, "reason": "r" * 501}, "too long a reason"),
        ({"scheduled_at": MOVED, "where": "zoom"}, "an unknown field"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_bad_reschedule_is_422_and_changes_nothing(
    api: TestClient,
    client: dict[str, str],
    freelancer: dict[str, str],
    body: dict[str, Any],
    why: str,
) -> None:
    iid = started(api, client, freelancer)
    before = current(api, iid, client)

    response = api.post(f"/interviews/{iid}/reschedule", json=body, headers=client)

    assert response.status_code == 422, (why, response.text)
    assert response.json()["code"]
    assert current(api, iid, client) == before


def test_a_reschedule_is_refused_where_the_table_refuses_it(
    api: TestClient, client: dict[str, str], freelancer: dict[str, str], token: Token
) -> None:
    body = {"scheduled_at": MOVED}
    not_started = accepted(api, client, freelancer)
    answer = refused(
        api.post(f"/interviews/{not_started}/reschedule", json=body, headers=client),
        409,
        "transition_not_allowed",
    )
    assert "accepted" in answer["detail"]

    iid = started(api, client, freelancer)
    stranger = token("client-2", "client")
    refused(
        api.post(f"/interviews/{iid}/reschedule", json=body, headers=stranger), 404, "not_found"
    )
    refused(
        api.post(f"/interviews/{iid}/reschedule", json=body, headers=token("aud-1", "auditor")),
        403,
        "forbidden",
    )
    same = {"scheduled_at": MEETING, "duration_minutes": 45}
    refused(api.post(f"/interviews/{iid}/reschedule", json=same, headers=client), 409,
            "already_scheduled")  # fmt: skip
    ok(api.post(f"/interviews/{iid}/cancel", json={"reason": "filled"}, headers=client))
    answer = refused(
        api.post(f"/interviews/{iid}/reschedule", json=body, headers=freelancer),
        409,
        "transition_not_allowed",
    )
    assert "cancelled" in answer["detail"]
    assert current(api, iid, client)["reschedules"] == 0


def test_a_repeated_reschedule_with_its_idempotency_key_records_one_event(
    api: TestClient, client: dict[str, str], freelancer: dict[str, str]
) -> None:
    iid = started(api, client, freelancer)
    headers = client | {"Idempotency-Key": "move-1"}
    body = {"scheduled_at": MOVED}

    first = api.post(f"/interviews/{iid}/reschedule", json=body, headers=headers)
    again = api.post(f"/interviews/{iid}/reschedule", json=body, headers=headers)

    assert first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert current(api, iid, client)["reschedules"] == 1


# --------------------------------------------------------------- start + duration


def test_start_takes_a_duration_and_defaults_to_30_minutes(
    api: TestClient, client: dict[str, str], freelancer: dict[str, str], token: Token
) -> None:
    plain = accepted(api, client, freelancer)
    assert current(api, plain, client)["duration_minutes"] is None
    ok(api.post(f"/interviews/{plain}/start", headers=freelancer))
    timed = started(api, client, freelancer, {"scheduled_at": MEETING, "duration_minutes": 240})

    assert current(api, plain, client)["duration_minutes"] == 30
    assert current(api, timed, client)["duration_minutes"] == 240
    started_event = history(api, timed, token)[-1]
    assert (started_event["type"], started_event["class_version"]) == ("interview.started", 2)
    assert started_event["data"]["duration_minutes"] == 240


@pytest.mark.parametrize("minutes", [14, 241, 0, "30", 30.5, None])
def test_a_start_with_a_bad_duration_is_422_and_changes_nothing(
    api: TestClient, client: dict[str, str], freelancer: dict[str, str], minutes: Any
) -> None:
    iid = accepted(api, client, freelancer)

    response = api.post(
        f"/interviews/{iid}/start", json={"duration_minutes": minutes}, headers=client
    )

    assert response.status_code == 422, response.text
    assert current(api, iid, client)["status"] == "accepted"


# ---------------------------------------------------------------------- offers


def test_an_offer_made_from_accepted_and_declined_returns_to_accepted_and_can_start(
    api: TestClient, client: dict[str, str], freelancer: dict[str, str], token: Token
) -> None:
    iid = accepted(api, client, freelancer)
    ok(api.post(f"/interviews/{iid}/offer", json=OFFER, headers=client))

    declined = ok(
        api.post(f"/interviews/{iid}/offer/decline", json={"reason": "later"}, headers=freelancer)
    )

    assert declined["status"] == "accepted"
    assert current(api, iid, client)["offer"] is None
    last = history(api, iid, token)[-1]
    assert (last["type"], last["class_version"]) == ("interview.offer_declined", 2)
    assert last["data"] == {"reason": "later", "status": "accepted"}
    assert ok(api.post(f"/interviews/{iid}/start", json={}, headers=client))["status"] == (
        "in_progress"
    )


def test_the_client_withdraws_an_offer_and_answering_it_is_409_naming_the_state(
    api: TestClient, client: dict[str, str], freelancer: dict[str, str], token: Token
) -> None:
    iid = started(api, client, freelancer)
    ok(api.post(f"/interviews/{iid}/offer", json=OFFER, headers=client))
    refused(api.post(f"/interviews/{iid}/offer/withdraw", headers=freelancer), 403, "forbidden")

    withdrawn = ok(
        api.post(f"/interviews/{iid}/offer/withdraw", json={"reason": "re-scoped"}, headers=client)
    )

    assert (withdrawn["status"], withdrawn["version"]) == ("in_progress", 5)
    view = current(api, iid, freelancer)
    assert (view["status"], view["offer"]) == ("in_progress", None)
    for answer in ("accept", "decline"):
        body = refused(
            api.post(f"/interviews/{iid}/offer/{answer}", headers=freelancer),
            409,
            "transition_not_allowed",
        )
        assert "in progress" in body["detail"] and "withdrew" in body["detail"]
    refused(
        api.post(f"/interviews/{iid}/offer/withdraw", headers=client), 409, "transition_not_allowed"
    )
    events = history(api, iid, token)
    assert [e["type"] for e in events[-2:]] == [
        "interview.offer_extended",
        "interview.offer_withdrawn",
    ]
    assert events[-1]["data"] == {"reason": "re-scoped", "status": "in_progress"}
    assert events[-1]["actor"] == {"id": CLIENT, "role": "client"}
    past = ok(api.get(f"/audit/interviews/{iid}/state?version=4", headers=token("a", "auditor")))
    assert past["status"] == "offer_extended"
    # A new offer after the withdrawal is answered as usual.
    ok(api.post(f"/interviews/{iid}/offer", json=OFFER, headers=client))
    assert ok(api.post(f"/interviews/{iid}/offer/accept", headers=freelancer))["status"] == "hired"


def test_an_offer_withdrawn_before_the_start_returns_to_accepted(
    api: TestClient, client: dict[str, str], freelancer: dict[str, str]
) -> None:
    iid = accepted(api, client, freelancer)
    ok(api.post(f"/interviews/{iid}/offer", json=OFFER, headers=client))

    withdrawn = ok(api.post(f"/interviews/{iid}/offer/withdraw", json={}, headers=client))

    assert withdrawn["status"] == "accepted"


@pytest.mark.parametrize(
    "body", [{"reason": "a\x07b"}, {"reason": "r" * 501}, {"why": "x"}, {"reason": 5}]
)
def test_a_bad_withdrawal_is_422_and_changes_nothing(
    api: TestClient, client: dict[str, str], freelancer: dict[str, str], body: dict[str, Any]
) -> None:
    iid = started(api, client, freelancer)
    ok(api.post(f"/interviews/{iid}/offer", json=OFFER, headers=client))

    response = api.post(f"/interviews/{iid}/offer/withdraw", json=body, headers=client)

    assert response.status_code == 422, response.text
    assert current(api, iid, client)["status"] == "offer_extended"


# --------------------------------------------------- old shapes in the event store


def store_old_event(
    container: InterviewsContainer,
    interview_id: str,
    event_class: type[Interview.Event],
    actor: tuple[str, str],
    when: datetime,
    **data: Any,
) -> bytes:
    """Writes an event as the first-round code did: no ``class_version``, hashed
    over the fields it had then."""
    app = container.interviews()
    iid = UUID(interview_id)
    previous = app.interview_events(iid)[-1]
    version = previous.originator_version + 1
    fields: dict[str, Any] = {
        "timestamp": when,
        "actor_id": actor[0],
        "actor_role": actor[1],
        "correlation_id": "legacy-req",
        "causation_id": "legacy-req",
        "prev_hash": previous.hash,
        **data,
    }
    fields["hash"] = chain_hash(
        previous.hash,
        {
            **fields,
            "originator_id": iid,
            "originator_version": version,
            "type": event_class.__name__,
        },
    )
    state = app.mapper.transcoder.encode(fields)
    app.recorder.insert_events([StoredEvent(iid, version, get_topic(event_class), state)])
    return state  # type: ignore[no-any-return]


def test_an_interview_stuck_in_progress_by_an_old_decline_can_be_started(
    api: TestClient,
    client: dict[str, str],
    freelancer: dict[str, str],
    token: Token,
    clock: FakeClock,
    container: InterviewsContainer,
) -> None:
    iid = accepted(api, client, freelancer)
    ok(api.post(f"/interviews/{iid}/offer", json=OFFER, headers=client))
    stored = store_old_event(
        container,
        iid,
        Interview.OfferDeclined,
        (FREELANCER, "freelancer"),
        clock.advance(minutes=5),
        reason="not now",
    )
    assert b"status" not in stored and b"class_version" not in stored
    stuck = current(api, iid, client)
    assert (stuck["status"], stuck["started_at"]) == ("in_progress", None)
    clock.advance(minutes=5)

    started_now = ok(
        api.post(f"/interviews/{iid}/start", json={"scheduled_at": MEETING}, headers=freelancer)
    )

    assert (started_now["status"], started_now["version"]) == ("in_progress", 5)
    view = current(api, iid, client)
    assert view["started_at"] is not None and at(view["scheduled_at"]) == at(MEETING)
    refused(api.post(f"/interviews/{iid}/start", headers=client), 409, "transition_not_allowed")
    events = history(api, iid, token)
    assert (events[3]["class_version"], events[3]["data"]) == (1, {"reason": "not now"})
    auditor = token("aud-1", "auditor")
    past = ok(api.get(f"/audit/interviews/{iid}/state?version=4", headers=auditor))
    assert past["status"] == "in_progress"
    verdict = ok(api.get(f"/audit/interviews/{iid}/verify", headers=auditor))
    assert verdict == {"ok": True, "checked": 5, "broken": None}


def test_an_old_started_event_without_a_duration_reads_as_30_minutes_everywhere(
    api: TestClient,
    client: dict[str, str],
    freelancer: dict[str, str],
    token: Token,
    clock: FakeClock,
    container: InterviewsContainer,
) -> None:
    iid = accepted(api, client, freelancer)
    stored = store_old_event(
        container,
        iid,
        Interview.InterviewStarted,
        (CLIENT, "client"),
        clock.advance(minutes=5),
        scheduled_at=at(MEETING),
    )
    assert b"duration_minutes" not in stored

    view = current(api, iid, freelancer)
    assert (view["status"], view["duration_minutes"]) == ("in_progress", 30)
    _, event = calendar(api, iid, freelancer)
    assert event.decoded("DTEND") - event.decoded("DTSTART") == timedelta(minutes=30)
    last = history(api, iid, token)[-1]
    assert (last["class_version"], last["data"]) == (1, {"scheduled_at": MEETING})
    auditor = token("aud-1", "auditor")
    assert ok(api.get(f"/audit/interviews/{iid}/verify", headers=auditor))["ok"] is True
    # The reschedule that follows records its previous time and a 30-minute length.
    ok(api.post(f"/interviews/{iid}/reschedule", json={"scheduled_at": MOVED}, headers=client))
    moved = history(api, iid, token)[-1]["data"]
    assert (at(moved["previous_scheduled_at"]), moved["duration_minutes"]) == (at(MEETING), 30)
    # Offline, from an export, the same state comes back.
    export = io.StringIO()
    assert InterviewAudit(container.interviews()).export(export).ok
    offline = replay(export.getvalue().splitlines())
    assert offline.ok
    live = InterviewPublic.model_validate(current(api, iid, client))
    state = offline.states[UUID(iid)]
    assert InterviewPublic.model_validate({**state, "position": live.position}) == live


# -------------------------------------------------------------------- calendar


def test_the_calendar_feed_is_the_meeting_field_by_field(
    api: TestClient, client: dict[str, str], freelancer: dict[str, str], clock: FakeClock
) -> None:
    iid = accepted(api, client, freelancer)
    clock.advance(minutes=7)
    started_at = clock.now
    ok(
        api.post(
            f"/interviews/{iid}/start",
            json={"scheduled_at": MEETING, "duration_minutes": 45},
            headers=client,
        )
    )

    for who in (client, freelancer):
        response = api.get(f"/interviews/{iid}/calendar.ics", headers=who)
        assert response.headers["content-disposition"] == (
            f'inline; filename="interview-{iid}.ics"'
        )
        parsed, event = calendar(api, iid, who)
        assert str(parsed["METHOD"]) == "REQUEST"
        assert str(parsed["VERSION"]) == "2.0"
        assert str(event["UID"]) == f"{iid}@interviews"
        assert int(event["SEQUENCE"]) == 0
        assert str(event["STATUS"]) == "CONFIRMED"
        assert event.decoded("DTSTART") == datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
        assert event.decoded("DTEND") == datetime(2026, 12, 2, 9, 45, tzinfo=UTC)
        assert event.decoded("DTSTAMP") == started_at
        assert str(event["ORGANIZER"]).endswith(CLIENT)
        assert str(event["ATTENDEE"]).endswith(FREELANCER)
        assert iid in str(event["DESCRIPTION"])


def test_a_reschedule_gives_the_same_uid_with_a_higher_sequence_and_cancel_cancels(
    api: TestClient, client: dict[str, str], freelancer: dict[str, str], clock: FakeClock
) -> None:
    iid = started(api, client, freelancer)
    _, before = calendar(api, iid, client)
    clock.advance(hours=1)

    ok(
        api.post(
            f"/interviews/{iid}/reschedule",
            json={"scheduled_at": MOVED, "duration_minutes": 90},
            headers=freelancer,
        )
    )
    _, moved = calendar(api, iid, freelancer)

    assert str(moved["UID"]) == str(before["UID"])
    assert int(moved["SEQUENCE"]) == int(before["SEQUENCE"]) + 1 == 1
    assert moved.decoded("DTSTART") == datetime(2026, 12, 3, 14, 30, tzinfo=UTC)
    assert moved.decoded("DTEND") == datetime(2026, 12, 3, 16, 0, tzinfo=UTC)
    assert moved.decoded("DTSTAMP") > before.decoded("DTSTAMP")
    clock.advance(hours=1)

    ok(api.post(f"/interviews/{iid}/cancel", json={"reason": "filled"}, headers=client))
    parsed, cancelled = calendar(api, iid, client)

    assert str(parsed["METHOD"]) == "CANCEL"
    assert str(cancelled["STATUS"]) == "CANCELLED"
    assert str(cancelled["UID"]) == str(before["UID"])
    assert int(cancelled["SEQUENCE"]) == 2
    assert cancelled.decoded("DTSTART") == moved.decoded("DTSTART")
    assert cancelled.decoded("DTSTAMP") == clock.now


def test_the_calendar_is_for_the_two_parties_only(
    api: TestClient, client: dict[str, str], freelancer: dict[str, str], token: Token
) -> None:
    iid = started(api, client, freelancer)
    path = f"/interviews/{iid}/calendar.ics"

    for outsider in (
        token("client-2", "client"),
        token("freelancer-2", "freelancer"),
        token(CLIENT, "freelancer"),  # a party's id in the other role
        token("aud-1", "auditor"),
        token("adm-1", "admin"),
    ):
        refused(api.get(path, headers=outsider), 404, "not_found")
    assert api.get(path).status_code == 401
    refused(api.get(f"/interviews/{uuid4()}/calendar.ics", headers=client), 404, "not_found")


def test_an_interview_without_a_scheduled_time_has_no_calendar(
    api: TestClient, client: dict[str, str], freelancer: dict[str, str]
) -> None:
    not_started = accepted(api, client, freelancer)
    no_time = started(api, client, freelancer, {})

    for iid in (not_started, no_time):
        body = refused(
            api.get(f"/interviews/{iid}/calendar.ics", headers=client), 404, "not_scheduled"
        )
        assert "scheduled" in body["detail"]

    ok(api.post(f"/interviews/{no_time}/reschedule", json={"scheduled_at": MOVED}, headers=client))
    _, event = calendar(api, no_time, freelancer)
    assert int(event["SEQUENCE"]) == 1
