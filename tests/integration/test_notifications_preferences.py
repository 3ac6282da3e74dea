"""Time-zone preferences on a real database (SQLite file and PostgreSQL), over HTTP:
each user's zone is stored, unknown names are refused and change nothing, and texts,
reminders and e-mails recorded afterwards show times in the recipient's zone."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.notifications.bootstrap import NotificationsContainer, create_app
from tests.conftest import FakeClock
from tests.support.notifications import Interview, SmtpSink, apply, inbox_of

pytestmark = pytest.mark.integration

Token = Callable[[str, str], dict[str, str]]
Make = Callable[..., NotificationsContainer]


@pytest.fixture
def container(make_container: Make) -> NotificationsContainer:
    return make_container()


@pytest.fixture
def api(container: NotificationsContainer) -> Iterator[TestClient]:
    with TestClient(create_app(container)) as client:
        yield client


def test_a_user_reads_utc_until_they_choose_a_zone_and_then_their_own(
    api: TestClient, token: Token, clock: FakeClock
) -> None:
    me, other = token("f-1", "freelancer"), token("c-1", "client")
    assert api.get("/me/preferences", headers=me).json() == {
        "time_zone": "UTC",
        "updated_at": None,
    }
    response = api.put("/me/preferences", json={"time_zone": "Europe/Berlin"}, headers=me)
    assert response.status_code == 200, response.text
    assert response.json()["time_zone"] == "Europe/Berlin"
    stored = api.get("/me/preferences", headers=me).json()
    assert stored["time_zone"] == "Europe/Berlin"
    assert stored["updated_at"].startswith(clock.now.strftime("%Y-%m-%dT%H:%M"))
    assert api.get("/me/preferences", headers=other).json()["time_zone"] == "UTC"
    again = api.put("/me/preferences", json={"time_zone": "Asia/Tokyo"}, headers=me)
    assert again.status_code == 200
    assert api.get("/me/preferences", headers=me).json()["time_zone"] == "Asia/Tokyo"


@pytest.mark.parametrize(
    "body",
    [
        {"time_zone": "Mars/Olympus"},
        {"time_zone": "europe/berlin"},
        {"time_zone": "../../etc/passwd"},
        {"time_zone": ""},
        {"time_zone": "Z" * 200},
        {"time_zone": 1},
        {},
        {"time_zone": "UTC", "language": "de"},
    ],
)
def test_an_unknown_zone_or_body_is_422_and_changes_nothing(
    api: TestClient, token: Token, body: dict[str, Any]
) -> None:
    me = token("f-1", "freelancer")
    assert api.put("/me/preferences", json={"time_zone": "Europe/Paris"}, headers=me).is_success
    response = api.put("/me/preferences", json=body, headers=me)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_input"
    assert api.get("/me/preferences", headers=me).json()["time_zone"] == "Europe/Paris"


def test_a_wrongly_cased_zone_is_refused_with_the_right_spelling(
    api: TestClient, token: Token
) -> None:
    response = api.put(
        "/me/preferences", json={"time_zone": "europe/berlin"}, headers=token("u", "client")
    )
    assert response.status_code == 422
    assert "Europe/Berlin" in response.json()["detail"]


def test_preferences_need_a_token(api: TestClient) -> None:
    assert api.get("/me/preferences").status_code == 401
    response = api.put("/me/preferences", json={"time_zone": "UTC"})
    assert response.status_code == 401 and response.json()["code"]


def test_later_notifications_show_times_in_the_zone_chosen_earlier_ones_keep_theirs(
    api: TestClient, container: NotificationsContainer, token: Token
) -> None:
    started = {"scheduled_at": "2026-12-08T14:00:00Z", "duration_minutes": 45}
    before, after = Interview("job-1"), Interview("job-2")
    apply(container, before.event("interview.started", "client", started))
    api.put(
        "/me/preferences", json={"time_zone": "Europe/Berlin"}, headers=token("f-1", "freelancer")
    )
    apply(container, after.event("interview.started", "client", started))
    messages = {n["job_id"]: n for n in inbox_of(container, "f-1")}
    assert "Tuesday 8 December 2026 at 14:00 UTC" in messages["job-1"]["message"]
    assert "Tuesday 8 December 2026 at 15:00 CET" in messages["job-2"]["message"]
    assert messages["job-2"]["details"]["time_zone"] == "Europe/Berlin"
    assert messages["job-2"]["details"]["scheduled_at"] == "2026-12-08T14:00:00+00:00"
    # The client chose nothing: UTC.
    (client_view,) = [n for n in inbox_of(container, "c-1") if n["job_id"] == "job-2"]
    assert "at 14:00 UTC" in client_view["message"]


def test_the_e_mail_shows_the_time_in_the_recipients_zone(
    make_container: Make, smtp: SmtpSink, token: Token
) -> None:
    c = make_container(smtp_host="127.0.0.1", smtp_port=smtp.port, email_domain="example.com")
    c.preferences().set_time_zone("f-1", "America/New_York")
    interview = Interview()
    apply(
        c,
        interview.event(
            "interview.rescheduled",
            "client",
            {
                "scheduled_at": "2026-07-09T16:00:00Z",
                "duration_minutes": 60,
                "previous_scheduled_at": "2026-07-08T14:00:00Z",
            },
        ),
    )
    assert c.delivery_worker().run_until_idle() == 1
    (mail,) = smtp.parsed()
    assert mail["To"] == "f-1@example.com"
    assert mail["Subject"] == "Interview rescheduled"
    assert mail.get_content().strip() == (
        "Client c-1 moved your interview for job job-1 from Wednesday 8 July 2026 at 10:00 EDT"
        " to Thursday 9 July 2026 at 12:00 EDT (60 minutes)."
    )
