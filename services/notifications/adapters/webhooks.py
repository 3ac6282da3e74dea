"""Signed webhook calls over HTTP(S).

Each call is a POST of the notification as JSON with these headers:

- ``X-Notification-Id``: the notification's stable id (the same on every retry:
  receivers deduplicate on it);
- ``X-Delivery-Id`` and ``X-Delivery-Attempt``: which delivery and which try;
- ``X-Timestamp``: Unix seconds when this attempt was signed;
- ``X-Signature``: ``sha256=`` + hex HMAC-SHA256 with the webhook's secret over
  ``f"{timestamp}.".encode() + body``.

Any 2xx answer is success; anything else, or no answer within the timeout,
is a failed attempt to be retried.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import datetime

import httpx

from ..delivery import OutgoingMessage, SendResult

USER_AGENT = "interviews-notifications/1.0"


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
    tolerance_seconds: float = 300,
) -> bool:
    """For receivers: a valid signature over a timestamp that is recent enough."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature)


class WebhookSender:
    """POSTs one delivery; never follows redirects (a redirect is a failed attempt)."""

    def __init__(self, timeout_seconds: float, client: httpx.Client | None = None) -> None:
        self.client = client or httpx.Client(
            timeout=timeout_seconds, follow_redirects=False, headers={"User-Agent": USER_AGENT}
        )

    def send(self, message: OutgoingMessage, now: datetime) -> SendResult:
        if not message.url or message.secret is None:
            return SendResult(False, None, "webhook no longer exists")
        timestamp = int(now.timestamp())
        headers = {
            "Content-Type": "application/json",
            "X-Notification-Id": message.notification_id,
            "X-Delivery-Id": message.delivery_id,
            "X-Delivery-Attempt": str(message.attempt),
            "X-Timestamp": str(timestamp),
            "X-Signature": sign(message.secret, timestamp, message.body),
        }
        try:
            response = self.client.post(message.url, content=message.body, headers=headers)
        except httpx.HTTPError as error:
            return SendResult(False, None, f"{type(error).__name__}: {error}"[:500])
        if 200 <= response.status_code < 300:
            return SendResult(True, response.status_code, None)
        return SendResult(
            False, response.status_code, f"HTTP {response.status_code}: {response.text[:200]}"
        )

    def close(self) -> None:
        self.client.close()
