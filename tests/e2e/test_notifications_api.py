"""The notifications API over HTTP: own inbox, read marks, webhooks, isolation, errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.notifications.bootstrap import NotificationsContainer, create_app
from tests.support.notifications import Interview, WebhookReceiver, apply

pytestmark = pytest.mark.e2e

Token = Callable[[str, str], dict[str, str]]
SECRET = "whsec-" + "k" * 24


@pytest.fixture
def container(make_container: Callable[..., NotificationsContainer]) -> NotificationsContainer:
    return make_container()


@pytest.fixture
def api(container: NotificationsContainer) -> Iterator[TestClient]:
    with TestClient(create_app(container)) as client:
        yield client


def a_few_interviews(container: NotificationsContainer, n: int = 3) -> None:
    for i in range(n):
        interview = Interview(f"job-{i}")
        apply(container, interview.event("interview.invited", "client"))
        apply(container, interview.event("interview.accepted", "freelancer"))


def test_a_user_sees_only_their_own_notifications_newest_first(
    api: TestClient, container: NotificationsContainer, token: Token
) -> None:
    a_few_interviews(container)
    apply(container, Interview("job-x", "c-2", "f-2").event("interview.invited", "client"))
    mine = api.get("/notifications", headers=token("f-1", "freelancer")).json()
    assert [n["job_id"] for n in mine["items"]] == ["job-2", "job-1", "job-0"]
    assert {n["type"] for n in mine["items"]} == {"interview.invited"}
    assert mine["next_cursor"] is None
    client_view = api.get("/notifications", headers=token("c-1", "client")).json()
    assert [n["type"] for n in client_view["items"]] == ["interview.accepted"] * 3
    assert api.get("/notifications", headers=token("auditor", "auditor")).json()["items"] == []


def test_cursor_pagination_walks_every_notification_once(
    api: TestClient, container: NotificationsContainer, token: Token
) -> None:
    a_few_interviews(container, 7)
    seen, cursor = [], None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = api.get("/notifications", params=params, headers=token("f-1", "freelancer")).json()
        seen += [n["id"] for n in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 7


def test_reading_a_notification_marks_it_and_the_unread_filter_follows(
    api: TestClient, container: NotificationsContainer, token: Token
) -> None:
    a_few_interviews(container, 2)
    me = token("f-1", "freelancer")
    first = api.get("/notifications", headers=me).json()["items"][0]
    assert first["read"] is False
    marked = api.post(f"/notifications/{first['id']}/read", headers=me)
    assert marked.status_code == 200 and marked.json()["read"] is True
    again = api.post(f"/notifications/{first['id']}/read", headers=me).json()
    assert again["read_at"] == marked.json()["read_at"]
    unread = api.get("/notifications", params={"unread": "true"}, headers=me).json()["items"]
    read = api.get("/notifications", params={"unread": "false"}, headers=me).json()["items"]
    assert [n["id"] for n in read] == [first["id"]]
    assert first["id"] not in [n["id"] for n in unread] and len(unread) == 1


def test_nobody_reads_or_marks_another_users_notification(
    api: TestClient, container: NotificationsContainer, token: Token
) -> None:
    a_few_interviews(container, 1)
    theirs = api.get("/notifications", headers=token("f-1", "freelancer")).json()["items"][0]
    for intruder in (token("c-1", "client"), token("f-9", "freelancer"), token("a", "admin")):
        answer = api.post(f"/notifications/{theirs['id']}/read", headers=intruder)
        assert answer.status_code == 404 and answer.json()["code"] == "not_found"
        assert theirs["id"] not in str(api.get("/notifications", headers=intruder).json())
    owner_view = api.get("/notifications", headers=token("f-1", "freelancer")).json()["items"][0]
    assert owner_view["read"] is False


def test_webhooks_are_private_to_their_owner_with_their_attempts(
    api: TestClient,
    container: NotificationsContainer,
    receiver: WebhookReceiver,
    token: Token,
) -> None:
    me, other = token("f-1", "freelancer"), token("f-2", "freelancer")
    created = api.post(
        "/webhooks",
        json={"url": receiver.url, "secret": SECRET, "event_types": ["interview.invited"]},
        headers=me,
    )
    assert created.status_code == 201
    body = created.json()
    assert "secret" not in body and body["url"] == receiver.url
    duplicate = api.post(
        "/webhooks",
        json={"url": receiver.url, "secret": SECRET, "event_types": ["interview.expired"]},
        headers=me,
    )
    assert duplicate.status_code == 409
    apply(container, Interview().event("interview.invited", "client"))
    container.delivery_worker().run_until_idle()

    (hook,) = api.get("/webhooks", headers=me).json()
    assert hook["id"] == body["id"] and hook["delivery_counts"] == {"delivered": 1}
    (delivery,) = hook["deliveries"]
    assert delivery["type"] == "interview.invited" and delivery["status"] == "delivered"
    assert [a["status_code"] for a in delivery["attempt_log"]] == [200]
    assert api.get("/webhooks", headers=other).json() == []
    assert api.get("/webhooks", headers=token("c-1", "client")).json() == []


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://127.0.0.1/x", "secret": SECRET, "event_types": ["interview.invited"]},
        {"url": "http:///nohost", "secret": SECRET, "event_types": ["interview.invited"]},
        {"url": "http://127.0.0.1:99999/", "secret": SECRET, "event_types": ["interview.invited"]},
        {"url": "http://127.0.0.1/a b", "secret": SECRET, "event_types": ["interview.invited"]},
        {"url": "http://127.0.0.1/", "secret": "short", "event_types": ["interview.invited"]},
        {"url": "http://127.0.0.1/", "secret": SECRET, "event_types": []},
        {"url": "http://127.0.0.1/", "secret": SECRET, "event_types": ["interview.nope"]},
        {"url": "http://127.0.0.1/", "secret": SECRET, "event_types": "interview.invited"},
        {"url": "http://127.0.0.1/", "secret": SECRET, "event_types": ["x"], "extra": 1},
        {"url": 5, "secret": None, "event_types": [None]},
        [],
    ],
)
def test_a_bad_webhook_is_refused_with_422(api: TestClient, token: Token, body: object) -> None:
    answer = api.post("/webhooks", json=body, headers=token("f-1", "freelancer"))
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "invalid_input"


def test_errors_are_json_with_the_design_status_codes(api: TestClient, token: Token) -> None:
    assert api.get("/notifications").status_code == 401
    assert api.get("/webhooks", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert api.post("/notifications/00000000-0000-0000-0000-000000000001/read").status_code == 401
    auditor = api.post(
        "/webhooks",
        json={"url": "http://127.0.0.1/", "secret": SECRET, "event_types": ["interview.invited"]},
        headers=token("a-1", "auditor"),
    )
    assert auditor.status_code == 403 and auditor.json()["code"] == "forbidden"
    me = token("f-1", "freelancer")
    for path, params in [
        ("/notifications", {"cursor": "garbage!"}),
        ("/notifications", {"cursor": "bjotMQ"}),  # "n:-1"
        ("/notifications", {"limit": "0"}),
        ("/notifications", {"limit": "abc"}),
        ("/notifications", {"unread": "maybe"}),
        ("/webhooks", {"deliveries": "-1"}),
    ]:
        answer = api.get(path, params=params, headers=me)
        assert answer.status_code == 422, (path, params, answer.text)
        assert answer.json()["code"] in ("invalid_input", "invalid_cursor")
    assert api.post("/notifications/not-a-uuid/read", headers=me).status_code == 422
    unknown = api.post("/notifications/00000000-0000-0000-0000-000000000001/read", headers=me)
    assert unknown.status_code == 404
    garbage = api.post(
        "/webhooks", content=b"\xff{", headers=me | {"Content-Type": "application/json"}
    )
    assert garbage.status_code == 422, garbage.text
    assert garbage.json()["code"] == "invalid_input" and garbage.json()["detail"]


def test_health_readiness_metrics_and_openapi(api: TestClient) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json() == {"status": "ready"}
    assert "notifications_recorded_total" in api.get("/metrics").text
    paths = set(api.get("/openapi.json").json()["paths"])
    assert {"/notifications", "/notifications/{notification_id}/read", "/webhooks"} <= paths


def test_a_database_that_is_down_gives_503_not_500(tmp_path: Path, token: Token) -> None:
    from tests.support.notifications import free_port, settings_for

    down = f"postgresql://nobody:secret@127.0.0.1:{free_port()}/nothing"
    container = NotificationsContainer(settings_for(down, tmp_path, kafka_bootstrap_servers=None))
    with TestClient(create_app(container, workers=True)) as api:
        assert api.get("/healthz").status_code == 200
        assert api.get("/readyz").status_code == 503
        answer = api.get("/notifications", headers=token("f-1", "freelancer"))
        assert answer.status_code == 503 and answer.json()["code"] == "unavailable"
        assert answer.headers["Retry-After"]
