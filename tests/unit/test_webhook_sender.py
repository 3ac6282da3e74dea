"""The webhook sender calls the address it checked, signs with one or two
secrets, and never reads what the receiver answers; ``verify`` refuses replays."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import httpx
import pytest

from services.notifications.adapters.webhooks import WebhookSender, sign, verify
from services.notifications.delivery import OutgoingMessage
from services.notifications.webhook_urls import UrlGuard

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
BODY = b'{"id":"n-1"}'


class Dns:
    def __init__(self, *answers: Sequence[str]) -> None:
        self.answers = list(answers)

    def __call__(self, host: str, port: int) -> Sequence[str]:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def message(url: str = "https://hooks.example.com/in?x=1", **over: object) -> OutgoingMessage:
    values: dict[str, object] = {
        "delivery_id": "d-1",
        "notification_id": "n-1",
        "attempt": 1,
        "lease_token": "t",
        "channel": "webhook",
        "recipient_id": "f-1",
        "title": "t",
        "text": "t",
        "body": BODY,
        "url": url,
        "secret": "new-secret-0000000",
    } | over
    return OutgoingMessage(**values)  # type: ignore[arg-type]


def sender_with(dns: Dns, status: int = 200, allowed: Sequence[str] = ()):  # type: ignore[no-untyped-def]
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, content=b"internal secrets")

    client = httpx.Client(transport=httpx.MockTransport(handle), follow_redirects=False)
    return WebhookSender(5.0, UrlGuard(allowed, dns), client), seen


def test_the_call_goes_to_the_checked_address_under_the_urls_host_name() -> None:
    sender, seen = sender_with(Dns(["93.184.216.34"]))
    assert sender.send(message(), NOW).ok
    (request,) = seen
    assert str(request.url) == "https://93.184.216.34/in?x=1"
    assert request.headers["host"] == "hooks.example.com"
    assert request.extensions["sni_hostname"] == "hooks.example.com"


def test_a_name_rebound_to_an_internal_address_is_refused_before_any_call() -> None:
    dns = Dns(["93.184.216.34"], ["127.0.0.1"])
    sender, seen = sender_with(dns)
    assert sender.send(message(), NOW).ok
    refused = sender.send(message(), NOW)
    assert not refused.ok and refused.error is not None
    assert refused.error.startswith("url_not_allowed") and "127.0.0.1" in refused.error
    assert len(seen) == 1  # the second attempt called nobody


def test_an_allow_listed_host_is_called_as_written() -> None:
    sender, seen = sender_with(Dns(["10.0.0.9"]), allowed=["receiver.lan"])
    assert sender.send(message("http://receiver.lan:8080/in"), NOW).ok
    assert str(seen[0].url) == "http://receiver.lan:8080/in"


@pytest.mark.parametrize(
    ("status", "gone", "error"),
    [
        (410, True, "HTTP 410 Gone"),
        (500, False, "HTTP 500"),
        (302, False, "HTTP 302 (redirects are not followed)"),
    ],
)
def test_a_failed_answer_keeps_its_status_code_and_never_its_body(
    status: int, gone: bool, error: str
) -> None:
    sender, _ = sender_with(Dns(["93.184.216.34"]), status=status)
    result = sender.send(message(), NOW)
    assert (result.ok, result.status_code, result.gone, result.error) == (
        False,
        status,
        gone,
        error,
    )


def test_both_signatures_are_sent_during_a_rotation_new_first() -> None:
    sender, seen = sender_with(Dns(["93.184.216.34"]))
    sender.send(message(previous_secret="old-secret-0000000"), NOW)
    ts = int(NOW.timestamp())
    header = seen[0].headers["x-signature"]
    assert (
        header == f"{sign('new-secret-0000000', ts, BODY)},{sign('old-secret-0000000', ts, BODY)}"
    )
    for secret in ("new-secret-0000000", "old-secret-0000000"):
        assert verify(secret, ts, BODY, header, now=ts)
    assert not verify("another-secret-000", ts, BODY, header, now=ts)


def test_verify_refuses_a_timestamp_outside_the_tolerance_in_either_direction() -> None:
    ts = int(NOW.timestamp())
    good = sign("s" * 16, ts, BODY)
    assert verify("s" * 16, ts, BODY, good, now=ts + 300)
    assert verify("s" * 16, str(ts), BODY, good, now=ts - 300)
    assert not verify("s" * 16, ts, BODY, good, now=ts + 301)  # a replay, too late
    assert not verify("s" * 16, ts, BODY, good, now=ts - 301)  # from the future
    assert verify("s" * 16, ts, BODY, good, now=ts + 3000, tolerance_seconds=3600)
    assert not verify("s" * 16, ts, BODY, good, now=ts + 10, tolerance_seconds=5)


def test_verify_refuses_a_changed_body_timestamp_or_garbage() -> None:
    ts = int(NOW.timestamp())
    good = sign("s" * 16, ts, BODY)
    assert not verify("s" * 16, ts, BODY + b" ", good, now=ts)
    assert not verify("s" * 16, ts + 1, BODY, good, now=ts)
    assert not verify("s" * 16, "soon", BODY, good, now=ts)
    assert not verify("s" * 16, ts, BODY, "", now=ts)
    assert not verify("s" * 16, ts, BODY, ",,", now=ts)
    assert verify("s" * 16, ts, BODY, f"sha256=00, {good}", now=ts)
