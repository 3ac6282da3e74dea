"""Schema evolution: ``Cancelled`` v2 added ``cancelled_by``, v3 ``job_closed``.
Events stored in the v1 or v2 shape are upcast on read, and their hash (made
over the fields as recorded) still verifies, live and offline."""

from __future__ import annotations

import io
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic
from fastapi.testclient import TestClient

from services.interviews.audit import InterviewAudit
from services.interviews.audit_export import replay
from services.interviews.bootstrap import InterviewsContainer
from services.interviews.domain import Interview
from services.interviews.domain.hashing import chain_hash
from tests.conftest import FakeClock
from tests.integration.audit_support import CLIENT, FREELANCER, Token, post

pytestmark = pytest.mark.integration


def store_v1_cancelled(app: object, interview_id: UUID, at: object) -> bytes:
    """Writes a ``Cancelled`` as the v1 code did: no ``cancelled_by``, no
    ``class_version``, hashed over the v1 fields."""
    previous = app.interview_events(interview_id)[-1]  # type: ignore[attr-defined]
    version = previous.originator_version + 1
    v1 = {
        "timestamp": at,
        "actor_id": CLIENT,
        "actor_role": "client",
        "correlation_id": "legacy-req",
        "causation_id": "legacy-req",
        "prev_hash": previous.hash,
        "reason": "position filled",
    }
    v1["hash"] = chain_hash(
        previous.hash,
        {**v1, "originator_id": interview_id, "originator_version": version, "type": "Cancelled"},
    )
    state = app.mapper.transcoder.encode(v1)  # type: ignore[attr-defined]
    app.recorder.insert_events(  # type: ignore[attr-defined]
        [StoredEvent(interview_id, version, get_topic(Interview.Cancelled), state)]
    )
    return state  # type: ignore[no-any-return]


def test_a_cancelled_event_stored_in_the_v1_shape_is_upcast_and_still_verifies(
    api: TestClient, clock: FakeClock, token: Token, interviews_container: InterviewsContainer
) -> None:
    client, auditor = token(CLIENT, "client"), token("a1", "auditor")
    iid = post(api, "/interviews", client, {"job_id": "job-1", "freelancer_id": FREELANCER})["id"]
    clock.advance(hours=1)
    post(api, f"/interviews/{iid}/accept", token(FREELANCER, "freelancer"))
    app = interviews_container.interviews()

    stored = store_v1_cancelled(app, UUID(iid), clock.advance(hours=1))

    assert b"cancelled_by" not in stored and b"class_version" not in stored
    interview = app.get_interview(UUID(iid))
    assert (interview.status, interview.cancelled_by) == ("cancelled", "client")
    current = api.get(f"/interviews/{iid}", headers=client).json()
    assert (current["status"], current["cancelled_by"]) == ("cancelled", "client")
    past = api.get(f"/audit/interviews/{iid}/state?version=3", headers=auditor).json()
    assert past["cancelled_by"] == "client"

    history = api.get(f"/audit/interviews/{iid}/events", headers=auditor).json()
    assert history[-1]["type"] == "interview.cancelled"
    assert history[-1]["class_version"] == 1
    assert history[-1]["data"] == {"reason": "position filled"}  # as recorded
    verdict = api.get(f"/audit/interviews/{iid}/verify", headers=auditor).json()
    assert verdict == {"ok": True, "checked": 3, "broken": None}

    export = io.StringIO()
    assert InterviewAudit(app).export(export).ok
    offline = replay(export.getvalue().splitlines())
    assert offline.ok
    assert offline.states[UUID(iid)]["cancelled_by"] == "client"


def test_a_cancelled_event_records_who_cancelled_and_whether_the_job_closed(
    api: TestClient, clock: FakeClock, token: Token
) -> None:
    iid = post(
        api, "/interviews", token(CLIENT, "client"), {"job_id": "j", "freelancer_id": FREELANCER}
    )["id"]
    post(api, f"/interviews/{iid}/cancel", token(FREELANCER, "freelancer"), {"reason": "busy"})

    last = api.get(f"/audit/interviews/{iid}/events", headers=token("a", "auditor")).json()[-1]

    assert last["class_version"] == 3
    assert last["data"] == {"reason": "busy", "cancelled_by": "freelancer", "job_closed": False}


def test_a_cancelled_event_stored_in_the_v2_shape_reads_as_not_a_job_closing(
    api: TestClient, clock: FakeClock, token: Token, interviews_container: InterviewsContainer
) -> None:
    client, auditor = token(CLIENT, "client"), token("a1", "auditor")
    iid = post(api, "/interviews", client, {"job_id": "job-1", "freelancer_id": FREELANCER})["id"]
    app = interviews_container.interviews()
    previous = app.interview_events(UUID(iid))[-1]
    v2 = {
        "timestamp": clock.advance(hours=1),
        "actor_id": CLIENT,
        "actor_role": "client",
        "correlation_id": "legacy-req",
        "causation_id": "legacy-req",
        "prev_hash": previous.hash,
        "reason": "budget cut",
        "cancelled_by": "client",
    }
    v2["hash"] = chain_hash(
        previous.hash,
        {**v2, "originator_id": UUID(iid), "originator_version": 2, "type": "Cancelled"},
    )
    app.recorder.insert_events(
        [
            StoredEvent(
                UUID(iid),
                2,
                get_topic(Interview.Cancelled),
                app.mapper.transcoder.encode({**v2, "class_version": 2}),
            )
        ]
    )

    [*_, event] = app.interview_events(UUID(iid))
    assert isinstance(event, Interview.Cancelled) and event.job_closed is False
    assert api.get(f"/interviews/{iid}", headers=client).json()["status"] == "cancelled"
    history = api.get(f"/audit/interviews/{iid}/events", headers=auditor).json()
    assert (history[-1]["class_version"], history[-1]["data"]) == (
        2,
        {"reason": "budget cut", "cancelled_by": "client"},
    )
    verdict = api.get(f"/audit/interviews/{iid}/verify", headers=auditor).json()
    assert verdict == {"ok": True, "checked": 2, "broken": None}
