"""Crypto-shredding on the interview side (#17), over HTTP, on SQLite and PostgreSQL:
free text is sealed before it is recorded, revealed by the APIs, and an admin's
erasure destroys its author's keys so that it reads null everywhere while the
history still verifies."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from services.common.privacy import is_sealed
from services.interviews.audit import InterviewAudit
from services.interviews.audit_export import replay
from services.interviews.bootstrap import InterviewsContainer, create_app
from services.interviews.settings import InterviewsSettings
from tests.conftest import TEST_SECRET, FakeClock
from tests.jobs import owner_of, register_job

pytestmark = pytest.mark.integration

Token = Callable[[str, str], dict[str, str]]
CLIENT, FREELANCER = "client-pd", "freelancer-pd"
INVITATION = "Dear Ada, our team would love to hear about your compiler work"
DECLINE = "I have just signed with another studio in Lyon"


@pytest.fixture
def interviews_settings(database_url: str | None, tmp_path: Path) -> InterviewsSettings:
    """conftest's ``interviews_container`` and ``api`` with no consumer service to
    wait for: an erasure is done once the keys are gone."""
    return InterviewsSettings(
        database_url=database_url,
        data_dir=tmp_path,
        auth_secret=TEST_SECRET,
        erasure_services="",
    )


@pytest.fixture
def container(interviews_container: InterviewsContainer) -> InterviewsContainer:
    """conftest's ``interviews_container``, under the name this module's tests use."""
    return interviews_container


def invited_and_declined(api: TestClient, token: Token, job_id: str = "job-pd") -> str:
    client, freelancer = token(CLIENT, "client"), token(FREELANCER, "freelancer")
    register_job(api, job_id, owner_of(client))
    response = api.post(
        "/interviews",
        json={"job_id": job_id, "freelancer_id": FREELANCER, "message": INVITATION},
        headers={**client, "Idempotency-Key": f"invite-{job_id}"},
    )
    assert response.status_code == 201, response.text
    iid: str = response.json()["id"]
    response = api.post(f"/interviews/{iid}/decline", json={"reason": DECLINE}, headers=freelancer)
    assert response.status_code == 200, response.text
    return iid


def stored_states(container: InterviewsContainer) -> list[str]:
    """Every stored event's state as text, straight from the event store's table."""
    engine = sa.create_engine(
        (container.settings.database_url or f"sqlite:///{container.sqlite_path}").replace(
            "postgresql://", "postgresql+psycopg://", 1
        )
    )
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(f"SELECT state FROM {container.events_table}")).all()
    finally:
        engine.dispose()
    return [bytes(r[0]).decode("utf-8", "replace") for r in rows]


def erase(
    api: TestClient, token: Token, subject_id: str, reason: str = "GDPR art. 17 request"
) -> dict[str, Any]:
    response = api.post(
        "/admin/erasures",
        json={"subject_id": subject_id, "reason": reason},
        headers=token("admin-1", "admin"),
    )
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


def test_free_text_is_stored_sealed_and_shown_in_clear(
    api: TestClient, token: Token, container: InterviewsContainer
) -> None:
    iid = invited_and_declined(api, token)

    states = stored_states(container)
    assert not any(INVITATION in s or DECLINE in s for s in states)
    events = container.interviews().interview_events(__import__("uuid").UUID(iid))
    assert is_sealed(events[0].message) and is_sealed(events[1].reason)
    # Each sealed with its author's key: two authors, two keys.
    assert events[0].message["key_id"] != events[1].reason["key_id"]  # type: ignore[index]

    shown = api.get(f"/interviews/{iid}", headers=token(CLIENT, "client")).json()
    assert (shown["message"], shown["closed_reason"], shown["erased_fields"]) == (
        INVITATION,
        DECLINE,
        [],
    )
    history = api.get(f"/audit/interviews/{iid}/events", headers=token("aud", "auditor")).json()
    assert history[0]["data"]["message"] == INVITATION
    assert history[1]["data"]["reason"] == DECLINE
    assert [e["erased_fields"] for e in history] == [[], []]


def test_bounds_are_checked_on_the_words_not_the_ciphertext(api: TestClient, token: Token) -> None:
    client = token(CLIENT, "client")
    register_job(api, "job-bounds", owner_of(client))
    long_enough = "x" * 2000  # sealed, it is far longer than 2000 characters
    response = api.post(
        "/interviews",
        json={"job_id": "job-bounds", "freelancer_id": FREELANCER, "message": long_enough},
        headers=client,
    )
    assert response.status_code == 201, response.text
    too_long = api.post(
        "/interviews/" + response.json()["id"] + "/cancel",
        json={"reason": "y" * 501},
        headers=client,
    )
    assert too_long.status_code == 422


def test_an_erasure_makes_the_authors_words_null_and_the_history_still_verifies(
    api: TestClient, token: Token, container: InterviewsContainer
) -> None:
    iid = invited_and_declined(api, token)

    accepted = erase(api, token, FREELANCER)
    assert accepted["subject_id"] == FREELANCER and accepted["status"] in ("pending", "done")

    shown = api.get(f"/interviews/{iid}", headers=token(CLIENT, "client")).json()
    assert shown["closed_reason"] is None
    assert shown["erased_fields"] == ["closed_reason"]
    assert shown["message"] == INVITATION  # the client's words are untouched
    auditor = token("aud", "auditor")
    history = api.get(f"/audit/interviews/{iid}/events", headers=auditor).json()
    assert history[1]["data"]["reason"] is None and history[1]["erased_fields"] == ["reason"]
    assert history[0]["data"]["message"] == INVITATION
    state = api.get(f"/audit/interviews/{iid}/state?version=2", headers=auditor).json()
    assert state["erased_fields"] == ["closed_reason"]
    page = api.get("/audit/events?after=0", headers=auditor).json()
    assert [e["erased_fields"] for e in page["events"]] == [[], ["reason"]]
    verdict = api.get(f"/audit/interviews/{iid}/verify", headers=auditor).json()
    assert verdict == {"ok": True, "checked": 2, "broken": None}

    status = api.get(f"/admin/erasures/{accepted['id']}", headers=token("admin-1", "admin"))
    body = status.json()
    assert body["status"] == "done" and body["done_at"] is not None
    assert body["services"] == {"interviews": "done"}
    assert (body["requested_by"], body["reason"]) == ("admin-1", "GDPR art. 17 request")


def test_the_erasure_is_in_the_event_store_without_the_subjects_words(
    api: TestClient, token: Token, container: InterviewsContainer
) -> None:
    invited_and_declined(api, token)
    erase(api, token, FREELANCER, reason="asked by e-mail on 2026-11-20")
    states = stored_states(container)
    erasures = [s for s in states if "asked by e-mail" in s]
    assert len(erasures) == 1
    assert FREELANCER in erasures[0] and DECLINE not in erasures[0]


def test_export_carries_ciphertext_and_an_offline_replay_shows_it_erased(
    api: TestClient, token: Token, container: InterviewsContainer
) -> None:
    iid = invited_and_declined(api, token)
    erase(api, token, FREELANCER)
    out = io.StringIO()
    report = InterviewAudit(container.interviews()).export(out)
    assert report.ok
    text = out.getvalue()
    assert INVITATION not in text and DECLINE not in text
    assert '"ciphertext"' in text

    replayed = replay(text.splitlines())
    assert replayed.ok
    state = next(iter(replayed.states.values()))
    assert state["id"] == iid
    assert state["message"] is None and state["closed_reason"] is None
    assert state["erased_fields"] == ["message", "closed_reason"]


def test_erasing_twice_or_someone_who_wrote_nothing_is_accepted(
    api: TestClient, token: Token
) -> None:
    invited_and_declined(api, token)
    first, again = erase(api, token, FREELANCER), erase(api, token, FREELANCER)
    nobody = erase(api, token, "never-wrote-anything")
    assert len({first["id"], again["id"], nobody["id"]}) == 3
    admin = token("admin-1", "admin")
    for erasure in (again, nobody):
        assert api.get(f"/admin/erasures/{erasure['id']}", headers=admin).json()["status"] == "done"


def test_words_written_after_an_erasure_are_readable_and_erasable_again(
    api: TestClient, token: Token
) -> None:
    invited_and_declined(api, token, "job-before")
    erase(api, token, FREELANCER)
    iid = invited_and_declined(api, token, "job-after")
    shown = api.get(f"/interviews/{iid}", headers=token(CLIENT, "client")).json()
    assert shown["closed_reason"] == DECLINE
    erase(api, token, FREELANCER)
    shown = api.get(f"/interviews/{iid}", headers=token(CLIENT, "client")).json()
    assert shown["closed_reason"] is None


@pytest.mark.parametrize("role", ["client", "freelancer", "auditor", "service"])
def test_only_an_admin_erases(api: TestClient, token: Token, role: str) -> None:
    response = api.post(
        "/admin/erasures", json={"subject_id": "x", "reason": "because"}, headers=token("u", role)
    )
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


@pytest.mark.parametrize(
    "body",
    [
        {"subject_id": "", "reason": "why"},
        {"subject_id": " padded", "reason": "why"},
        {"subject_id": "x" * 129, "reason": "why"},
        {"subject_id": "someone"},
        {"subject_id": "someone", "reason": "   "},
        {"subject_id": "someone", "reason": "a\u202eb"},
        {"subject_id": "someone", "reason": "why", "extra": 1},
        {"subject_id": 12, "reason": "why"},
    ],
)
def test_a_bad_erasure_request_is_refused_and_destroys_nothing(
    api: TestClient, token: Token, body: dict[str, Any], container: InterviewsContainer
) -> None:
    iid = invited_and_declined(api, token)
    before = container.interviews().max_position()
    response = api.post("/admin/erasures", json=body, headers=token("admin-1", "admin"))
    assert response.status_code == 422, response.text
    assert {"code", "detail"} <= set(response.json())
    assert container.interviews().max_position() == before
    shown = api.get(f"/interviews/{iid}", headers=token(CLIENT, "client")).json()
    assert shown["closed_reason"] == DECLINE


def test_an_unknown_erasure_is_404(api: TestClient, token: Token) -> None:
    response = api.get("/admin/erasures/nope", headers=token("admin-1", "admin"))
    assert response.status_code == 404 and response.json()["code"] == "erasure_not_found"


# ---------------------------------------------------------- internal key service


def test_the_internal_key_service_answers_keys_erased_and_unknown(
    api: TestClient, token: Token, container: InterviewsContainer
) -> None:
    import base64
    import uuid

    iid = invited_and_declined(api, token)
    event = container.interviews().interview_events(uuid.UUID(iid))[1]
    key_id = event.reason["key_id"]  # type: ignore[index]
    service = token("projections", "service")

    found = api.get(f"/internal/keys/{key_id}", headers=service)
    assert found.status_code == 200 and found.headers["cache-control"] == "no-store"
    assert found.json()["key_id"] == key_id
    assert len(base64.urlsafe_b64decode(found.json()["key"])) == 32

    for role in ("client", "admin", "auditor"):
        assert api.get(f"/internal/keys/{key_id}", headers=token("x", role)).status_code == 403
    assert api.get(f"/internal/keys/{key_id}").status_code == 401
    unknown = api.get("/internal/keys/no-such-key", headers=service)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "key_not_found")

    erase(api, token, FREELANCER)
    gone = api.get(f"/internal/keys/{key_id}", headers=service)
    assert (gone.status_code, gone.json()["code"]) == (410, "key_erased")
    assert gone.headers["cache-control"] == "no-store"


def test_consumers_list_their_pending_erasures_and_report_them_done(
    interviews_settings: InterviewsSettings, clock: FakeClock, token: Token
) -> None:
    settings = interviews_settings.model_copy(
        update={"erasure_services": "projections,notifications"}
    )
    container = InterviewsContainer(settings, clock=clock)
    try:
        with TestClient(create_app(container)) as api:
            invited_and_declined(api, token)
            erasure = erase(api, token, FREELANCER)
            assert erasure["status"] == "pending"
            admin, service = token("admin-1", "admin"), token("projections", "service")

            pending = api.get("/internal/erasures?service=projections", headers=service)
            assert pending.status_code == 200
            items = pending.json()["items"]
            assert [i["id"] for i in items] == [erasure["id"]]
            assert items[0]["subject_id"] == FREELANCER and len(items[0]["key_ids"]) == 1
            assert items[0]["keys_destroyed_at"].endswith(("Z", "+00:00"))

            done = api.post(
                f"/internal/erasures/{erasure['id']}/done",
                json={"service": "projections"},
                headers=service,
            )
            assert done.status_code == 204
            again = api.post(
                f"/internal/erasures/{erasure['id']}/done",
                json={"service": "projections"},
                headers=service,
            )
            assert again.status_code == 204
            assert api.get("/internal/erasures?service=projections", headers=service).json() == {
                "items": []
            }
            status = api.get(f"/admin/erasures/{erasure['id']}", headers=admin).json()
            assert status["status"] == "pending"
            assert status["services"] == {
                "interviews": "done",
                "projections": "done",
                "notifications": "pending",
            }
            api.post(
                f"/internal/erasures/{erasure['id']}/done",
                json={"service": "notifications"},
                headers=token("notifications", "service"),
            )
            status = api.get(f"/admin/erasures/{erasure['id']}", headers=admin).json()
            assert status["status"] == "done" and status["done_at"] is not None

            unknown = api.post(
                "/internal/erasures/nope/done", json={"service": "projections"}, headers=service
            )
            assert (unknown.status_code, unknown.json()["code"]) == (404, "erasure_not_found")
            bad = api.post(
                f"/internal/erasures/{erasure['id']}/done", json={"service": ""}, headers=service
            )
            assert bad.status_code == 422
            assert api.get("/internal/erasures", headers=service).status_code == 422
            assert (
                api.get("/internal/erasures?service=projections", headers=admin).status_code == 403
            )
    finally:
        container.close()


# ------------------------------------------------------------ no trace on disk


def test_no_file_under_data_dir_holds_the_words_or_the_destroyed_key(
    interviews_settings: InterviewsSettings, clock: FakeClock, token: Token
) -> None:
    if interviews_settings.database_url:
        pytest.skip("the embedded default's files")
    container = InterviewsContainer(interviews_settings, clock=clock)
    try:
        with TestClient(create_app(container)) as api:
            iid = invited_and_declined(api, token)
            store = container.key_store()
            import uuid

            key_id = container.interviews().interview_events(uuid.UUID(iid))[1].reason["key_id"]  # type: ignore[index]
            key = store.data_key(key_id)
            with store.engine.connect() as conn:
                wrapped = bytes(
                    conn.execute(
                        sa.text("SELECT wrapped_key FROM interview_data_keys WHERE key_id = :k"),
                        {"k": key_id},
                    ).scalar_one()
                )
            erase(api, token, FREELANCER)
            # While the service runs (its WAL open), and after it stopped.
            assert_no_file_holds(interviews_settings.data_dir, [key, wrapped])
    finally:
        container.close()
    assert_no_file_holds(interviews_settings.data_dir, [key, wrapped])


def assert_no_file_holds(data_dir: Path, secrets: list[bytes]) -> None:
    secrets = [*secrets, DECLINE.encode(), INVITATION.encode()]
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    assert any(p.name == "interviews.sqlite" for p in files)
    for path in files:
        content = path.read_bytes()
        for secret in secrets:
            assert secret not in content, f"{path.name} holds {secret[:12]!r}"


def test_no_log_line_holds_the_words(
    api: TestClient, token: Token, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    iid = invited_and_declined(api, token)
    too_long = api.post(
        f"/interviews/{iid}/cancel",
        json={"reason": DECLINE + "!" * 500},
        headers=token(CLIENT, "client"),
    )
    assert too_long.status_code == 422 and DECLINE not in too_long.text
    erase(api, token, FREELANCER)
    assert caplog.records, "the service logs its commands"
    logged = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    assert INVITATION not in logged and DECLINE not in logged


def test_another_process_stops_sealing_with_an_erased_key_within_the_cache_ttl(
    api: TestClient, token: Token, container: InterviewsContainer
) -> None:
    from services.interviews.adapters.key_encryption import load_kek
    from services.interviews.adapters.key_store import SqlKeyStore

    settings = container.settings
    ticks = [0.0]
    other = SqlKeyStore(
        container.key_store().engine,
        load_kek(settings.key_encryption_key, settings.data_dir, postgres=False),
        issue_ttl_seconds=5.0,
        monotonic=lambda: ticks[0],
    )
    before, _ = other.key_for(FREELANCER)
    assert other.key_for(FREELANCER)[0] == before  # kept: no query per command
    erase(api, token, FREELANCER)  # in this service's process, not ``other``'s
    ticks[0] += 1.0
    assert other.key_for(FREELANCER)[0] == before  # within the TTL
    ticks[0] += 5.0
    after, _ = other.key_for(FREELANCER)
    assert after != before
    assert other.data_key(after) and other.key_for(CLIENT)[0] != after


def test_a_key_store_outage_answers_503_records_nothing_and_recovers(
    api: TestClient, token: Token, container: InterviewsContainer
) -> None:
    """Sealing a reason or revealing a message needs the key store's database: while
    it is down those requests answer a JSON 503 (retry), never a 500, and record
    nothing; once it is back they succeed."""
    client, freelancer = token(CLIENT, "client"), token(FREELANCER, "freelancer")
    register_job(api, "job-keys-down", owner_of(client))
    invited = api.post(
        "/interviews",
        json={"job_id": "job-keys-down", "freelancer_id": FREELANCER, "message": INVITATION},
        headers=client,
    )
    assert invited.status_code == 201, invited.text
    iid = invited.json()["id"]
    keys = container.key_store()
    working = keys.engine
    keys.engine = sa.create_engine(
        "postgresql+psycopg://nobody@127.0.0.1:9/none", connect_args={"connect_timeout": 2}
    )
    try:
        for answer in (
            api.post(f"/interviews/{iid}/decline", json={"reason": DECLINE}, headers=freelancer),
            api.get(f"/interviews/{iid}", headers=client),
        ):
            assert answer.status_code == 503, answer.text
            assert answer.json()["code"] == "unavailable" and answer.headers["Retry-After"]
    finally:
        keys.engine.dispose()
        keys.engine = working
    shown = api.get(f"/interviews/{iid}", headers=client)
    assert (shown.json()["status"], shown.json()["message"]) == ("invited", INVITATION)
    declined = api.post(f"/interviews/{iid}/decline", json={"reason": DECLINE}, headers=freelancer)
    assert declined.status_code == 200, declined.text
    assert api.get(f"/interviews/{iid}", headers=client).json()["closed_reason"] == DECLINE
