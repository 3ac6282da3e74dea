"""The webhooks API cannot be turned against the platform: public destinations
only, no read-back of what a receiver answers, delete, pause, a cap per user,
duplicates on the normalised URL, secret rotation and redelivery."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.notifications.bootstrap import NotificationsContainer, create_app
from tests.conftest import FakeClock
from tests.support.notifications import FakeDns, Interview, WebhookReceiver, apply

pytestmark = pytest.mark.e2e

Token = Callable[[str, str], dict[str, str]]
SECRET = "whsec-" + "k" * 24
PUBLIC = "https://hooks.example.com/in"


@pytest.fixture
def dns() -> FakeDns:
    return FakeDns(
        {
            "hooks.example.com": ["93.184.216.34"],
            "other.example.com": ["93.184.216.35"],
            "inside.example.com": ["93.184.216.34", "10.1.2.3"],
        }
    )


@pytest.fixture
def container(
    make_container: Callable[..., NotificationsContainer], dns: FakeDns
) -> NotificationsContainer:
    # No allow-list: only public destinations (the receiver on loopback is refused).
    return make_container(resolver=dns, webhook_allowed_hosts="")


@pytest.fixture
def api(container: NotificationsContainer) -> Iterator[TestClient]:
    with TestClient(create_app(container)) as client:
        yield client


def hook(url: str = PUBLIC, types: list[str] | None = None) -> dict[str, Any]:
    return {"url": url, "secret": SECRET, "event_types": types or ["interview.invited"]}


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://2130706433/hook",
        "http://0x7f.1/hook",
        "http://0177.0.0.1/hook",
        "http://127.1/hook",
        "http://0/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://localhost/hook",
        "http://localhost./hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.8/hook",
        "http://100.64.1.1/hook",
        "http://224.0.0.1/hook",
        "http://hooks.example.com@127.0.0.1/hook",
        "http://inside.example.com/hook",
    ],
)
def test_an_internal_destination_is_refused_with_url_not_allowed(
    api: TestClient, token: Token, url: str
) -> None:
    me = token("f-1", "freelancer")
    answer = api.post("/webhooks", json=hook(url), headers=me)
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "url_not_allowed" and answer.json()["detail"]
    assert api.get("/webhooks", headers=me).json() == []


def test_a_public_destination_is_registered(api: TestClient, token: Token) -> None:
    answer = api.post("/webhooks", json=hook(), headers=token("f-1", "freelancer"))
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["url"] == PUBLIC and body["active"] is True and body["disabled_reason"] is None
    assert "secret" not in body and "previous_secret" not in body


def test_a_private_host_listed_in_webhook_allowed_hosts_is_accepted(
    make_container: Callable[..., NotificationsContainer], dns: FakeDns, token: Token
) -> None:
    container = make_container(resolver=dns, webhook_allowed_hosts="10.0.0.8, receiver.lan")
    with TestClient(create_app(container)) as api:
        me = token("f-1", "freelancer")
        for url in ("http://10.0.0.8:9000/hook", "http://receiver.lan/hook"):
            assert api.post("/webhooks", json=hook(url), headers=me).status_code == 201
        refused = api.post("/webhooks", json=hook("http://10.0.0.9/hook"), headers=me)
        assert refused.json()["code"] == "url_not_allowed"


def test_a_deleted_webhook_is_gone_and_only_its_owner_can_delete_it(
    api: TestClient, token: Token
) -> None:
    me, other = token("f-1", "freelancer"), token("f-2", "freelancer")
    created = api.post("/webhooks", json=hook(), headers=me).json()
    assert api.delete(f"/webhooks/{created['id']}", headers=other).status_code == 404
    assert len(api.get("/webhooks", headers=me).json()) == 1

    deleted = api.delete(f"/webhooks/{created['id']}", headers=me)
    assert deleted.status_code == 204 and deleted.content == b""
    assert api.get("/webhooks", headers=me).json() == []
    again = api.delete(f"/webhooks/{created['id']}", headers=me)
    assert again.status_code == 404 and again.json()["code"] == "not_found"
    # The same URL may be registered again once deleted.
    assert api.post("/webhooks", json=hook(), headers=me).status_code == 201


def test_patch_pauses_resumes_and_changes_the_event_types(api: TestClient, token: Token) -> None:
    me = token("f-1", "freelancer")
    created = api.post("/webhooks", json=hook(), headers=me).json()
    path = f"/webhooks/{created['id']}"

    paused = api.patch(path, json={"active": False}, headers=me)
    assert paused.status_code == 200, paused.text
    assert paused.json()["active"] is False and paused.json()["disabled_reason"]
    resumed = api.patch(
        path,
        json={"active": True, "event_types": ["interview.expired", "interview.expired"]},
        headers=me,
    ).json()
    assert resumed["active"] is True and resumed["disabled_reason"] is None
    assert resumed["event_types"] == ["interview.expired"]
    assert api.get("/webhooks", headers=me).json()[0]["event_types"] == ["interview.expired"]

    for bad in (
        {},
        {"event_types": []},
        {"event_types": ["interview.nope"]},
        {"active": "perhaps"},
        {"active": True, "url": "http://127.0.0.1/"},
    ):
        answer = api.patch(path, json=bad, headers=me)
        assert answer.status_code == 422, (bad, answer.text)
        assert answer.json()["code"] == "invalid_input"
    assert api.get("/webhooks", headers=me).json()[0]["event_types"] == ["interview.expired"]
    assert (
        api.patch(path, json={"active": False}, headers=token("f-2", "freelancer")).status_code
        == 404
    )


def test_a_user_has_at_most_ten_webhooks(api: TestClient, token: Token) -> None:
    me = token("f-1", "freelancer")
    ids = [
        api.post("/webhooks", json=hook(f"{PUBLIC}/{n}"), headers=me).json()["id"]
        for n in range(10)
    ]
    eleventh = api.post("/webhooks", json=hook(f"{PUBLIC}/10"), headers=me)
    assert eleventh.status_code == 409 and eleventh.json()["code"] == "webhook_limit"
    assert len(api.get("/webhooks", headers=me).json()) == 10
    # Another user has their own ten; deleting one frees a place.
    assert api.post("/webhooks", json=hook(), headers=token("f-2", "freelancer")).status_code == 201
    assert api.delete(f"/webhooks/{ids[0]}", headers=me).status_code == 204
    assert api.post("/webhooks", json=hook(f"{PUBLIC}/10"), headers=me).status_code == 201


@pytest.mark.parametrize(
    "same",
    [
        "https://HOOKS.Example.com/in",
        "https://hooks.example.com/in?source=marketplace",
        "https://hooks.example.com/in/",
        "https://hooks.example.com:443/in",
        "HTTPS://hooks.example.com./in#x",
    ],
)
def test_a_duplicate_is_detected_on_the_normalised_url(
    api: TestClient, token: Token, same: str
) -> None:
    me = token("f-1", "freelancer")
    assert api.post("/webhooks", json=hook(), headers=me).status_code == 201
    duplicate = api.post("/webhooks", json=hook(same, ["interview.expired"]), headers=me)
    assert duplicate.status_code == 409 and duplicate.json()["code"] == "duplicate_webhook"
    assert len(api.get("/webhooks", headers=me).json()) == 1
    # A different path or host is another webhook; another user may use the same URL.
    assert api.post("/webhooks", json=hook(PUBLIC + "2"), headers=me).status_code == 201
    assert (
        api.post("/webhooks", json=hook(same), headers=token("f-2", "freelancer")).status_code
        == 201
    )


def test_the_owner_sees_status_codes_and_timings_never_the_receivers_answer(
    make_container: Callable[..., NotificationsContainer],
    receiver: WebhookReceiver,
    token: Token,
) -> None:
    receiver.statuses, receiver.answer = [500], b"root:x:0:0 internal-db-password=hunter2"
    container = make_container(delivery_max_attempts=2)  # 127.0.0.1 allow-listed
    with TestClient(create_app(container)) as api:
        me = token("f-1", "freelancer")
        assert api.post("/webhooks", json=hook(receiver.url), headers=me).status_code == 201
        apply(container, Interview().event("interview.invited", "client"))
        worker = container.delivery_worker()
        worker.run_once()
        container.clock.advance(hours=1)  # type: ignore[attr-defined]
        worker.run_once()

        hooks = api.get("/webhooks", headers=me)
        inbox = api.get("/notifications", headers=me)
    (delivery,) = hooks.json()[0]["deliveries"]
    assert delivery["status"] == "dead"
    assert [a["status_code"] for a in delivery["attempt_log"]] == [500, 500]
    assert all(a["duration_ms"] is not None for a in delivery["attempt_log"])
    assert delivery["last_error"] == "HTTP 500"
    for text in (hooks.text, inbox.text):
        assert "hunter2" not in text and "root:x" not in text


def test_rotate_secret_keeps_the_previous_one_for_the_grace_period(
    api: TestClient, token: Token, container: NotificationsContainer, clock: FakeClock
) -> None:
    me = token("f-1", "freelancer")
    created = api.post("/webhooks", json=hook(), headers=me).json()
    path = f"/webhooks/{created['id']}/rotate-secret"
    rotated = api.post(path, json={"secret": "whsec-" + "n" * 24}, headers=me)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["previous_secret_valid_until"] is not None
    assert "secret" not in rotated.json()
    same = api.post(path, json={"secret": "whsec-" + "n" * 24}, headers=me)
    assert same.status_code == 422 and same.json()["code"] == "same_secret"
    short = api.post(path, json={"secret": "short"}, headers=me)
    assert short.status_code == 422 and short.json()["code"] == "invalid_input"
    other = api.post(path, json={"secret": "whsec-" + "o" * 24}, headers=token("f-2", "freelancer"))
    assert other.status_code == 404
    clock.advance(hours=25)
    assert api.get("/webhooks", headers=me).json()[0]["previous_secret_valid_until"] is None


def test_redeliver_queues_one_of_the_callers_notifications_again(
    api: TestClient, token: Token, container: NotificationsContainer
) -> None:
    me = token("f-1", "freelancer")
    created = api.post("/webhooks", json=hook(), headers=me).json()
    apply(container, Interview().event("interview.invited", "client"))
    interview = Interview("job-2", "c-1", "f-2")
    apply(container, interview.event("interview.invited", "client"))
    (mine,) = api.get("/notifications", headers=me).json()["items"]
    (theirs,) = api.get("/notifications", headers=token("f-2", "freelancer")).json()["items"]
    path = f"/webhooks/{created['id']}/redeliver"

    queued = api.post(path, json={"notification_id": mine["id"]}, headers=me)
    assert queued.status_code == 202, queued.text
    assert queued.json()["status"] == "pending" and queued.json()["notification_id"] == mine["id"]
    # The first delivery is still waiting: it is the one returned, nothing is doubled.
    deliveries = api.get("/webhooks", headers=me).json()[0]["deliveries"]
    assert [d["id"] for d in deliveries] == [queued.json()["id"]]

    foreign = api.post(path, json={"notification_id": theirs["id"]}, headers=me)
    assert foreign.status_code == 404
    assert api.post(path, json={}, headers=me).status_code == 422
    api.patch(f"/webhooks/{created['id']}", json={"event_types": ["interview.expired"]}, headers=me)
    unsubscribed = api.post(path, json={"notification_id": mine["id"]}, headers=me)
    assert unsubscribed.status_code == 422 and unsubscribed.json()["code"] == "type_not_subscribed"
    api.patch(f"/webhooks/{created['id']}", json={"active": False}, headers=me)
    inactive = api.post(path, json={"notification_id": mine["id"]}, headers=me)
    assert inactive.status_code == 409 and inactive.json()["code"] == "webhook_inactive"


def test_the_new_routes_are_in_the_openapi_document(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert {"delete", "patch"} <= set(paths["/webhooks/{webhook_id}"])
    assert "/webhooks/{webhook_id}/rotate-secret" in paths
    assert "/webhooks/{webhook_id}/redeliver" in paths


def test_a_webhook_deactivated_by_410_shows_why_and_its_owner_reads_the_notice(
    make_container: Callable[..., NotificationsContainer],
    receiver: WebhookReceiver,
    token: Token,
) -> None:
    receiver.statuses = [410]
    container = make_container()  # 127.0.0.1 allow-listed
    with TestClient(create_app(container)) as api:
        me = token("f-1", "freelancer")
        created = api.post("/webhooks", json=hook(receiver.url), headers=me).json()
        apply(container, Interview().event("interview.invited", "client"))
        container.delivery_worker().run_until_idle()

        (shown,) = api.get("/webhooks", headers=me).json()
        items = api.get("/notifications", headers=me).json()["items"]
        metrics = api.get("/metrics").text
    assert shown["active"] is False and "410 Gone" in shown["disabled_reason"]
    (notice,) = [n for n in items if n["type"] == "webhook.disabled"]
    assert notice["kind"] == "system" and notice["interview_id"] is None
    assert notice["job_id"] is None and notice["read"] is False
    assert f"PATCH /webhooks/{created['id']}" in notice["message"]
    assert "notification_webhooks_disabled_total 1.0" in metrics
