"""Request and response bodies of the notifications API (the public HTTP contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..rules import NOTIFICATION_TYPES

# An http(s) URL of printable ASCII, as the validator below reads it (urllib's
# split): optional user info, a host (a name or address, or an IPv6 address in
# brackets, RFC 3986's grammar), an optional port of 1 to 65535 (leading zeros
# allowed), then a path, query or fragment. Where it may point is the URL
# guard's call (webhook_urls.UrlGuard: 422 url_not_allowed), not the schema's.
_USER_INFO = r"(?:[!-\"$-.0->@-Z\\^-~]*@)?"  # printable ASCII but / ? # [ ]
_H16 = r"[0-9A-Fa-f]{1,4}"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_LS32 = rf"(?:{_H16}:{_H16}|(?:{_OCTET}\.){{3}}{_OCTET})"
_IPV6 = "|".join(
    [
        rf"(?:{_H16}:){{6}}{_LS32}",
        rf"::(?:{_H16}:){{5}}{_LS32}",
        rf"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
        rf"(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}",
        rf"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
        rf"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
        rf"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
        rf"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
        rf"(?:(?:{_H16}:){{0,6}}{_H16})?::",
    ]
)
_HOST = rf"(?:\[(?:{_IPV6})\]|[!-\"$-.0-9;->A-Z\\^-~]+)"  # a name: no / ? # : @ [ ]
_PORT = (
    r"(?::(?:0*(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}"
    r"|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?)?"
)
URL_PATTERN = rf"^[hH][tT][tT][pP][sS]?://{_USER_INFO}{_HOST}{_PORT}(?:[/?#][!-~]*)?$"

# The types a webhook may subscribe to, listed in the schema (an enum) as well.
# Built at run time from the rules' tuple, which a static Literal cannot name.
NotificationType = Literal[NOTIFICATION_TYPES]  # type: ignore[valid-type]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _known_types(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    unknown = [t for t in value if t not in NOTIFICATION_TYPES]
    if unknown:
        raise ValueError(
            f"unknown event type(s) {', '.join(map(repr, unknown[:5]))}; "
            f"known: {', '.join(NOTIFICATION_TYPES)}"
        )
    return list(dict.fromkeys(value))


class WebhookRequest(_Request):
    url: str = Field(
        min_length=8,
        max_length=2048,
        pattern=URL_PATTERN,
        description="http:// or https:// URL that receives POSTs",
    )
    secret: str = Field(
        min_length=16,
        max_length=256,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="Shared secret for the HMAC-SHA256 signature (no control characters)",
    )
    event_types: list[NotificationType] = Field(
        min_length=1,
        max_length=len(NOTIFICATION_TYPES),
        description="Notification types to receive: " + ", ".join(NOTIFICATION_TYPES),
    )

    @field_validator("event_types")
    @classmethod
    def _types(cls, value: list[str] | None) -> list[str] | None:
        return _known_types(value)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError as error:
            raise ValueError(f"not a valid URL: {error}") from None
        if parts.scheme.lower() not in ("http", "https"):
            raise ValueError("the URL must start with http:// or https://")
        if not parts.hostname:
            raise ValueError("the URL must name a host")
        if port == 0:
            raise ValueError("the URL's port must be 1 to 65535")
        if any(c.isspace() for c in value) or not value.isprintable():
            raise ValueError("the URL must not contain spaces or control characters")
        return value


class WebhookUpdateRequest(_Request):
    # A body that changes nothing (``{}``, or only nulls) is refused: the document
    # says so (at least one of the two, not null).
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": ["active"], "properties": {"active": {"type": "boolean"}}},
                {"required": ["event_types"], "properties": {"event_types": {"type": "array"}}},
            ]
        },
    )

    active: bool | None = Field(
        default=None, description="false pauses the webhook; true resumes it (URL checked again)"
    )
    event_types: list[NotificationType] | None = Field(
        default=None,
        min_length=1,
        max_length=len(NOTIFICATION_TYPES),
        description="the notification types to receive from now on",
    )

    @field_validator("event_types")
    @classmethod
    def _types(cls, value: list[str] | None) -> list[str] | None:
        return _known_types(value)

    @model_validator(mode="after")
    def _something(self) -> WebhookUpdateRequest:
        if self.active is None and self.event_types is None:
            raise ValueError("give active, event_types or both")
        return self


class RotateSecretRequest(_Request):
    secret: str = Field(
        min_length=16,
        max_length=256,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="The new shared secret; the previous one also signs during the grace period",
    )


class RedeliverRequest(_Request):
    notification_id: UUID = Field(description="one of your notifications of the webhook's types")


class AttemptPublic(BaseModel):
    attempt: int
    started_at: datetime
    duration_ms: float | None
    outcome: Literal["delivered", "failed", "unknown"]
    status_code: int | None
    error: str | None


class DeliveryPublic(BaseModel):
    id: str
    notification_id: str
    channel: Literal["webhook", "email"]
    status: Literal["pending", "delivered", "dead"]
    attempts: int = Field(description="attempts made so far")
    next_attempt_at: datetime | None = Field(description="when the next attempt is due (pending)")
    last_error: str | None
    delivered_at: datetime | None
    attempt_log: list[AttemptPublic]


class WebhookDeliveryPublic(DeliveryPublic):
    type: str = Field(description="the notification's type")


class NotificationPublic(BaseModel):
    id: UUID = Field(description="stable id: webhooks and e-mails carry it so receivers dedupe")
    kind: Literal["event", "reminder", "system"] = Field(
        description="system: about your account, e.g. webhook.disabled (no interview)"
    )
    type: str
    title: str
    message: str
    interview_id: UUID | None
    job_id: str | None
    event_id: UUID | None
    occurred_at: datetime
    created_at: datetime
    read: bool
    read_at: datetime | None
    details: dict[str, Any]
    erased_fields: list[str] = Field(
        default_factory=list,
        description="personal texts erased with their author's keys: the message no longer "
        "quotes them and details show them as null (e.g. reason)",
    )
    deliveries: list[DeliveryPublic] = Field(description="e-mail and webhook deliveries")


class NotificationPage(BaseModel):
    items: list[NotificationPublic]
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next page; null at the end"
    )


class WebhookPublic(BaseModel):
    id: UUID
    url: str
    event_types: list[str]
    active: bool
    disabled_reason: str | None = Field(
        description="why it is inactive: paused by its owner, 410 Gone, too many dead deliveries"
    )
    dead_in_a_row: int = Field(description="dead deliveries since the last delivered one")
    previous_secret_valid_until: datetime | None = Field(
        description="until then the previous secret signs too (after rotate-secret)"
    )
    created_at: datetime
    delivery_counts: dict[str, int] = Field(description="deliveries by status")
    deliveries: list[WebhookDeliveryPublic] = Field(description="latest deliveries, newest first")


def notification_public(row: dict[str, Any]) -> NotificationPublic:
    values = {k: row[k] for k in NotificationPublic.model_fields if k in row and k != "deliveries"}
    # A system notice is about no interview (stored as "" in the NOT NULL columns).
    values["interview_id"] = values.get("interview_id") or None
    values["job_id"] = values.get("job_id") or None
    values["erased_fields"] = list(values.get("erased_fields") or [])
    return NotificationPublic(
        **values,
        read=row["read_at"] is not None,
        deliveries=[delivery_public(d) for d in row.get("deliveries", [])],
    )


def delivery_public(row: dict[str, Any], cls: type[DeliveryPublic] = DeliveryPublic) -> Any:
    values = {k: row.get(k) for k in cls.model_fields if k != "attempt_log"}
    if values.get("status") != "pending":
        values["next_attempt_at"] = None
    return cls(**values, attempt_log=[AttemptPublic(**a) for a in row.get("attempt_log", [])])


def webhook_public(row: dict[str, Any], now: datetime | None = None) -> WebhookPublic:
    until = row.get("previous_secret_until")
    if until is not None and now is not None and until <= now:
        until = None
    return WebhookPublic(
        id=row["id"],
        url=row["url"],
        event_types=row["event_types"],
        active=row["active"],
        disabled_reason=row.get("disabled_reason"),
        dead_in_a_row=row.get("dead_in_a_row") or 0,
        previous_secret_valid_until=until,
        created_at=row["created_at"],
        delivery_counts=row.get("delivery_counts", {}),
        deliveries=[delivery_public(d, WebhookDeliveryPublic) for d in row.get("deliveries", [])],
    )
