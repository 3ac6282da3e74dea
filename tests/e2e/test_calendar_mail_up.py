"""The calendar feed and the calendar e-mails agree, on ``interviewctl up`` (one
process, SQLite, no broker) with a real SMTP server: after every schedule change
the ``.ics`` the other party was mailed and ``GET /interviews/{id}/calendar.ics``
read at that moment hold the same UID, SEQUENCE, DTSTART, DTEND, DTSTAMP and
STATUS, so a calendar application that got both sees one event updating in place.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from icalendar import Calendar

from tests.e2e.servers import cli, embedded_env, running_cli
from tests.support.notifications import SmtpSink
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

DOMAIN = "example.test"


@pytest.fixture
def platform_with_mail(
    tmp_path: Path,
) -> Iterator[tuple[httpx.Client, dict[str, str], SmtpSink]]:
    sink = SmtpSink()
    sink.controller.start()
    env = embedded_env(
        tmp_path / "data",
        "AUTH_SECRET",
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(sink.port),
        EMAIL_DOMAIN=DOMAIN,
        DELIVERY_POLL_SECONDS="0.2",
    )
    try:
        with running_cli(["up"], env) as (_, client):
            yield client, env, sink
    finally:
        sink.controller.stop()


def mails_to(sink: SmtpSink, address: str, subject: str, count: int) -> list[EmailMessage]:
    """The e-mails with this subject to this address, once ``count`` have arrived."""
    found = wait_until(
        lambda: [m for m in sink.parsed() if m["To"] == address and m["Subject"] == subject],
        20,
        0.1,
        what=f"{count} e-mail(s) {subject!r} to {address}",
        until=lambda mails: len(mails) >= count,
    )
    assert len(found) == count, (address, subject, [m["Subject"] for m in sink.parsed()])
    return found


def attached(mail: EmailMessage) -> tuple[str, Any, str]:
    """The METHOD, the VEVENT and the MIME ``method`` parameter of the mail's .ics."""
    (part,) = list(mail.iter_attachments())
    assert part.get_content_type() == "text/calendar"
    assert part.get_filename() == "interview.ics"
    calendar = Calendar.from_ical(part.get_content())
    (event,) = calendar.walk("VEVENT")
    return str(calendar["METHOD"]), event, str(part.get_param("method"))


def same_event(mail: EmailMessage, feed: httpx.Response) -> int:
    """The mailed event equals the feed's field by field; returns its SEQUENCE."""
    assert feed.status_code == 200, feed.text
    assert feed.headers["content-type"].startswith("text/calendar")
    fed = Calendar.from_ical(feed.content)
    (fed_event,) = fed.walk("VEVENT")
    method, event, mime_method = attached(mail)
    assert method == mime_method == str(fed["METHOD"])
    for field in ("UID", "SEQUENCE", "STATUS", "SUMMARY", "DESCRIPTION"):
        assert str(event[field]) == str(fed_event[field]), field
    for field in ("DTSTART", "DTEND", "DTSTAMP"):
        assert event.decoded(field) == fed_event.decoded(field), field
    return int(event["SEQUENCE"])


def test_each_mailed_invitation_matches_the_feed_at_that_moment(
    platform_with_mail: tuple[httpx.Client, dict[str, str], SmtpSink],
) -> None:
    http, env, sink = platform_with_mail
    auth = {
        role: {"Authorization": "Bearer " + cli("token", "--sub", sub, "--role", role, env=env)}
        for sub, role in (("client-1", "client"), ("freelancer-1", "freelancer"))
    }
    client, freelancer = f"client-1@{DOMAIN}", f"freelancer-1@{DOMAIN}"
    soon = (datetime.now(UTC) + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)

    service = {
        "Authorization": "Bearer " + cli("token", "--sub", "jobs", "--role", "service", env=env)
    }
    job = http.put("/jobs/job-cal", json={"client_id": "client-1"}, headers=service)
    assert job.status_code == 201, job.text
    invited = http.post(
        "/interviews",
        json={"job_id": "job-cal", "freelancer_id": "freelancer-1"},
        headers=auth["client"],
    )
    assert invited.status_code == 201, invited.text
    iid = invited.json()["id"]
    base = f"/interviews/{iid}"

    def command(path: str, body: dict[str, Any] | None, who: str) -> None:
        response = http.post(f"{base}/{path}", json=body, headers=auth[who])
        assert response.status_code == 200, response.text

    def feed(who: str) -> httpx.Response:
        return http.get(f"{base}/calendar.ics", headers=auth[who])

    command("accept", None, "freelancer")
    command("start", {"scheduled_at": soon.isoformat(), "duration_minutes": 45}, "client")
    for address, who in ((client, "client"), (freelancer, "freelancer")):
        (mail,) = mails_to(sink, address, "Interview started", 1)
        assert same_event(mail, feed(who)) == 0
    _, event, _ = attached(mail)
    assert str(event["UID"]) == f"{iid}@interviews"
    assert event.decoded("DTSTART") == soon
    assert event.decoded("DTEND") == soon + timedelta(minutes=45)

    # The freelancer moves it: the client is mailed; then the client moves it back.
    later = soon + timedelta(days=1, hours=3)
    command("reschedule", {"scheduled_at": later.isoformat(), "reason": "a clash"}, "freelancer")
    (mail,) = mails_to(sink, client, "Interview rescheduled", 1)
    assert same_event(mail, feed("client")) == 1
    assert attached(mail)[1].decoded("DTSTART") == later

    command("reschedule", {"scheduled_at": soon.isoformat(), "duration_minutes": 60}, "client")
    (mail,) = mails_to(sink, freelancer, "Interview rescheduled", 1)
    assert same_event(mail, feed("freelancer")) == 2
    assert attached(mail)[1].decoded("DTEND") == soon + timedelta(minutes=60)

    command("cancel", {"reason": "found another job"}, "freelancer")
    (mail,) = mails_to(sink, client, "Interview cancelled", 1)
    assert same_event(mail, feed("client")) == 3
    method, event, _ = attached(mail)
    assert method == "CANCEL" and str(event["STATUS"]) == "CANCELLED"
