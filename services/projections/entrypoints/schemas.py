"""Response models of the query API (they feed OpenAPI)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..fold import Status


class OfferPublic(BaseModel):
    amount: str | None
    currency: str | None
    rate_type: str | None
    start_date: str | None
    expires_at: datetime | None
    extended_at: datetime | None
    offers_extended: int
    offers_declined: int
    offers_withdrawn: int


class CancellationPublic(BaseModel):
    reason: str | None
    by: str | None
    at: datetime | None


class InterviewSummary(BaseModel):
    id: str
    job_id: str
    client_id: str
    freelancer_id: str
    status: Status
    version: int
    position: int = Field(description="global position of the last event applied")
    updated_at: datetime
    invited_at: datetime | None
    invitation_message: str | None
    invitation_expires_at: datetime | None
    accepted_at: datetime | None
    declined_at: datetime | None
    decline_reason: str | None
    started_at: datetime | None
    scheduled_at: datetime | None = Field(
        description="when the meeting takes place (set by start or reschedule)"
    )
    duration_minutes: int | None = Field(description="length of the scheduled meeting")
    reschedules: int = Field(description="how many times the meeting was moved")
    next_actor: Literal["freelancer", "client"] | None = Field(
        description="who must act next: the freelancer answers an invitation or offer, "
        "the client starts an accepted interview or makes an offer; null once closed"
    )
    next_deadline_at: datetime | None = Field(
        description="when the open invitation or offer expires, if it has a deadline"
    )
    offer: OfferPublic | None
    hired_at: datetime | None
    cancellation: CancellationPublic | None
    expired_at: datetime | None
    expired_what: str | None
    closed_at: datetime | None
    time_to_accept_seconds: float | None
    time_to_hire_seconds: float | None
    missing_versions: list[int] = Field(
        description="versions skipped by a gap in the stream and not received yet"
    )
    erased_fields: list[str] = Field(
        default_factory=list,
        description="personal texts erased with their author's keys: they read null "
        "(invitation_message, decline_reason, cancellation.reason)",
    )


class TimelineEntry(BaseModel):
    version: int
    position: int
    event_id: str
    type: str
    occurred_at: datetime
    actor: dict[str, str]
    data: dict[str, Any]
    erased_fields: list[str] = Field(
        default_factory=list,
        description="personal texts of ``data`` erased with their author's keys (null)",
    )


class InterviewDetail(InterviewSummary):
    timeline: list[TimelineEntry]


class InterviewPage(BaseModel):
    items: list[InterviewSummary]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page")


class Candidate(BaseModel):
    freelancer_id: str
    status: Status
    interview_id: str
    version: int
    invited_at: datetime | None
    updated_at: datetime
    times_invited: int


class CandidateBoard(BaseModel):
    job_id: str
    counts: dict[str, int]
    candidates: list[Candidate]


class FunnelStage(BaseModel):
    stage: Literal["invited", "accepted", "started", "offer", "hired"]
    count: int = Field(
        description="interviews that reached this stage or went past it; started: only "
        "those that were started (an offer may come straight after acceptance)"
    )
    rate_from_previous: float | None = Field(
        description="relative to the previous stage; offer: relative to accepted"
    )
    rate_from_invited: float | None


class Median(BaseModel):
    median_seconds: float | None
    count: int


class ReasonCount(BaseModel):
    reason: str | None
    count: int


class Cancellations(BaseModel):
    total: int
    by_reason: list[ReasonCount]
    by_party: dict[str, int]


class Gaps(BaseModel):
    interviews_with_gaps: int
    versions_skipped: int
    versions_still_missing: int


class Stats(BaseModel):
    position: int
    total: int
    open: int
    by_status: dict[str, int]
    funnel: list[FunnelStage]
    time_to_accept: Median
    time_to_hire: Median
    cancellations: Cancellations
    expirations: dict[str, int]
    gaps: Gaps


class ConsumerHealth(BaseModel):
    group: str = Field(description="the consumer group that keeps the views")
    source: Literal["kafka", "event store"]
    lag: int | None = Field(
        description="events the views are behind their source (Kafka: messages, summed "
        "over partitions); null when this process cannot tell"
    )
    parked: int = Field(description="events parked after handler failures (dlq list)")
    dead_lettered: int | None = Field(
        description="poison messages sent to the dead-letter topic since this process "
        "started; null when the consumer runs in another process"
    )


def summary(row: dict[str, Any]) -> dict[str, Any]:
    offer = None
    if row.get("offers_count"):
        offer = {
            "amount": row.get("offer_amount"),
            "currency": row.get("offer_currency"),
            "rate_type": row.get("offer_rate_type"),
            "start_date": row.get("offer_start_date"),
            "expires_at": row.get("offer_expires_at"),
            "extended_at": row.get("last_offer_at"),
            "offers_extended": row.get("offers_count") or 0,
            "offers_declined": row.get("offers_declined") or 0,
            "offers_withdrawn": row.get("offers_withdrawn") or 0,
        }
    cancellation = None
    if row.get("cancelled_at") is not None:
        cancellation = {
            "reason": row.get("cancel_reason"),
            "by": row.get("cancelled_by"),
            "at": row.get("cancelled_at"),
        }
    return {
        "id": row["interview_id"],
        "job_id": row["job_id"],
        "client_id": row["client_id"],
        "freelancer_id": row["freelancer_id"],
        "status": row["status"],
        "version": row["version"],
        "position": row["position"],
        "updated_at": row["updated_at"],
        "invited_at": row.get("invited_at"),
        "invitation_message": row.get("invitation_message"),
        "invitation_expires_at": row.get("invitation_expires_at"),
        "accepted_at": row.get("accepted_at"),
        "declined_at": row.get("declined_at"),
        "decline_reason": row.get("decline_reason"),
        "started_at": row.get("started_at"),
        "scheduled_at": row.get("scheduled_at"),
        "duration_minutes": row.get("duration_minutes"),
        "reschedules": row.get("reschedules") or 0,
        "next_actor": row.get("next_actor"),
        "next_deadline_at": row.get("next_deadline_at"),
        "offer": offer,
        "hired_at": row.get("hired_at"),
        "cancellation": cancellation,
        "expired_at": row.get("expired_at"),
        "expired_what": row.get("expired_what"),
        "closed_at": row.get("closed_at"),
        "time_to_accept_seconds": row.get("time_to_accept_s"),
        "time_to_hire_seconds": row.get("time_to_hire_s"),
        "missing_versions": sorted(row.get("missing") or []),
        "erased_fields": list(row.get("erased_fields") or []),
    }


def timeline_entry(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": entry["version"],
        "position": entry["position"],
        "event_id": entry["event_id"],
        "type": entry["type"],
        "occurred_at": entry["occurred_at"],
        "actor": {"id": entry["actor_id"], "role": entry["actor_role"]},
        "data": entry["data"],
        "erased_fields": list(entry.get("erased_fields") or []),
    }


def interview_detail(row: dict[str, Any], timeline: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """An interview's summary with its timeline (``InterviewDetail``)."""
    return {**summary(row), "timeline": [timeline_entry(e) for e in timeline]}
