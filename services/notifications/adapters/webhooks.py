"""Signed webhook calls over HTTP(S).

Each call is a POST of the notification as JSON with these headers:

- ``X-Notification-Id``: the notification's stable id (the same on every retry:
  receivers deduplicate on it);
- ``X-Delivery-Id`` and ``X-Delivery-Attempt``: which delivery and which try;
- ``X-Timestamp``: Unix seconds when this attempt was signed;
- ``X-Signature``: ``sha256=`` + hex HMAC-SHA256 with the webhook's secret over
  ``f"{timestamp}.".encode() + body``. For a while after a secret rotation it
  holds two signatures, comma-separated, the new secret's first.

Before each call the URL is checked again (``webhook_urls.UrlGuard``): the host
is resolved, every address it resolves to must be public, and the call goes to
one of those checked addresses (the ``Host`` header and TLS name are the URL's),
so a name re-pointed to an internal address after the check is never called.
Redirects are never followed.

Any 2xx answer is success; ``410 Gone`` ends the delivery and deactivates the
webhook; anything else, or no answer within the timeout, is a failed attempt
to be retried. The receiver's answer body is never read nor kept.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import datetime
from typing import Any

import httpx

from ..delivery import OutgoingMessage, SendResult
from ..webhook_urls import CheckedUrl, UrlGuard, UrlNotAllowedError

USER_AGENT = "interviews-notifications/1.0"
DEFAULT_TOLERANCE_SECONDS = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify(
    secret: str,
    timestamp: str | int,
    body: bytes,
    signature: str,
    *,
    now: float | None = None,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """For receivers: True when ``signature`` (the ``X-Signature`` header) holds a
    valid signature with ``secret`` over ``timestamp`` (``X-Timestamp``) and
    ``body``, and the timestamp is within ``tolerance_seconds`` (default 300 s)
    of ``now`` (default: the current time), in either direction.

    The tolerance is what stops replays: a captured call sent again later fails
    once its timestamp is too old, and the timestamp cannot be changed without
    breaking the signature. Keep the X-Notification-Id of the calls you accepted
    within that window to refuse a replay inside it as well.

    ``signature`` may list several signatures, comma-separated (after a secret
    rotation both are sent): one valid signature is enough.
    """
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if tolerance_seconds < 0 or abs(current - ts) > tolerance_seconds:
        return False
    expected = sign(secret, ts, body)
    candidates = [part.strip() for part in str(signature).split(",") if part.strip()]
    # Compare with every candidate (no early exit) so timing says nothing about which.
    return sum(hmac.compare_digest(expected, c) for c in candidates) > 0


class WebhookSender:
    """POSTs one delivery to a checked address; never follows redirects (a redirect
    is a failed attempt)."""

    def __init__(
        self, timeout_seconds: float, guard: UrlGuard, client: httpx.Client | None = None
    ) -> None:
        self.guard = guard
        self.client = client or httpx.Client(
            timeout=timeout_seconds,
            follow_redirects=False,
            # No proxy from the environment: the call must reach the address checked.
            trust_env=False,
            headers={"User-Agent": USER_AGENT},
        )

    def send(self, message: OutgoingMessage, now: datetime) -> SendResult:
        if not message.url or message.secret is None:
            return SendResult(False, None, "webhook deleted", final=True)
        try:
            target = self.guard.check(message.url)
        except UrlNotAllowedError as error:
            return SendResult(False, None, f"url_not_allowed: {error}"[:500])
        timestamp = int(now.timestamp())
        signatures = [sign(message.secret, timestamp, message.body)]
        if message.previous_secret:
            signatures.append(sign(message.previous_secret, timestamp, message.body))
        headers = {
            "Content-Type": "application/json",
            "X-Notification-Id": message.notification_id,
            "X-Delivery-Id": message.delivery_id,
            "X-Delivery-Attempt": str(message.attempt),
            "X-Timestamp": str(timestamp),
            "X-Signature": ",".join(signatures),
        }
        try:
            code = self._post(target, message.url, message.body, headers)
        except httpx.HTTPError as error:
            return SendResult(False, None, f"{type(error).__name__}: {error}"[:500])
        if 200 <= code < 300:
            return SendResult(True, code, None)
        if code == 410:
            return SendResult(False, code, "HTTP 410 Gone", gone=True)
        if 300 <= code < 400:
            return SendResult(False, code, f"HTTP {code} (redirects are not followed)")
        return SendResult(False, code, f"HTTP {code}")

    def _post(self, target: CheckedUrl, url: str, body: bytes, headers: dict[str, str]) -> int:
        """The answer's status code. The call goes to the URL itself for an allow-listed
        host, else to each checked address in turn until one accepts the connection.
        The answer's body is not read."""
        calls: list[tuple[str, dict[str, str], dict[str, Any]]]
        if target.allow_listed:
            calls = [(url, headers, {})]
        else:
            extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
            pinned = headers | {"Host": target.host_header}
            calls = [(target.url_for(a), pinned, extensions) for a in target.addresses]
        error: httpx.ConnectError | None = None
        for address_url, call_headers, extensions in calls:
            try:
                with self.client.stream(
                    "POST", address_url, content=body, headers=call_headers, extensions=extensions
                ) as response:
                    return response.status_code
            except httpx.ConnectError as failed:
                error = failed
        raise error or httpx.ConnectError(f"{target.host} has no address to connect to")

    def close(self) -> None:
        self.client.close()
