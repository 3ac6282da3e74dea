"""The audit API: an interview's history, its state at any moment, its chain's
verdict, and the whole log in global order. Read only: no route here (or
anywhere) changes or deletes history.

Auditors and admins read everything; a client or freelancer reads the history
of their own interviews, and gets 404 for anyone else's, so existence does not
leak. The global log is for auditors and admins only.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from ...common.auth import Principal
from ...common.web import ERROR_RESPONSES, ApiError, CurrentPrincipal
from ..application import InterviewNotFoundError
from ..audit import BrokenHistoryError, InterviewAudit, state_at
from ..audit_log import RecordedEvent, verify_chain
from ..domain import Interview
from ..personal_data import reveal_event_json
from .api import InterviewsDep
from .schemas import InterviewPublic, interview_public

MAX_PAGE = 1000
_POSITION_MAX = 2**63 - 1


class ActorPublic(BaseModel):
    id: str | None
    role: str | None


class AuditEventPublic(BaseModel):
    """One recorded event. Values are those its ``hash`` covers, except the
    personal free text in ``data``, shown revealed (the hash covers its sealed
    form, which ``audit export`` carries); ``data`` is in the event's recorded
    shape (``class_version``)."""

    interview_id: str
    position: int | None = Field(description="Global position in the event store's log")
    version: int = Field(description="The interview's version after this event (1-based)")
    type: str | None = Field(description="Integration type name, e.g. interview.invited")
    event: str | None = Field(description="Domain event class, e.g. Invited")
    class_version: int = Field(description="Shape the event was recorded in")
    occurred_at: str | None = Field(description="ISO 8601, exactly as hashed")
    actor: ActorPublic
    correlation_id: str | None
    causation_id: str | None
    data: dict[str, Any]
    prev_hash: str | None
    hash: str | None
    error: str | None = Field(
        default=None, description="Set when the stored event can no longer be read"
    )
    erased_fields: list[str] = Field(
        default_factory=list, description="Fields of `data` whose author was erased (null)"
    )


class AuditEventsPage(BaseModel):
    events: list[AuditEventPublic]
    next: int = Field(description="Pass as `after` to read on")
    has_more: bool


class BrokenLinkPublic(BaseModel):
    version: int
    reason: str


class VerifyPublic(BaseModel):
    ok: bool
    checked: int = Field(description="Events checked")
    broken: BrokenLinkPublic | None


class InterviewStatePublic(InterviewPublic):
    as_of: datetime | None = Field(description="The time asked for (`at`), if any")


def get_audit(app: InterviewsDep) -> InterviewAudit:
    return InterviewAudit(app)


AuditDep = Annotated[InterviewAudit, Depends(get_audit)]

router = APIRouter(prefix="/audit", tags=["audit"], responses=ERROR_RESPONSES)


@router.get("/interviews/{interview_id}/events", response_model=list[AuditEventPublic])
def interview_history(interview_id: UUID, principal: CurrentPrincipal, audit: AuditDep) -> Response:
    """Every event of an interview in order: type, data, version, position, actor,
    time, correlation and causation ids, and its link in the hash chain."""
    records = _visible_history(audit, principal, interview_id)
    return _json([reveal_event_json(r.to_json(), audit.app.reader) for r in records])


@router.get("/interviews/{interview_id}/state", response_model=InterviewStatePublic)
def interview_state_at(
    interview_id: UUID,
    principal: CurrentPrincipal,
    audit: AuditDep,
    at: Annotated[
        str | None, Query(max_length=64, description="ISO 8601 time (naive means UTC)")
    ] = None,
    version: Annotated[int | None, Query(ge=1, le=2**31)] = None,
) -> InterviewStatePublic:
    """The interview as it was at a moment (`at`) or after a version (`version`),
    rebuilt by replaying its events up to that point."""
    if at is not None and version is not None:
        raise ApiError(422, "invalid_input", "give either `at` or `version`, not both")
    moment = _parse_time(at) if at is not None else None
    records = _visible_history(audit, principal, interview_id)
    try:
        past = state_at(records, at=moment, version=version)
    except InterviewNotFoundError as error:
        raise ApiError(404, "not_found", str(error)) from None
    except BrokenHistoryError as error:
        raise ApiError(409, error.code, str(error)) from None
    public = interview_public(past.interview, past.position, audit.app.reader)
    return InterviewStatePublic(**public.model_dump(), as_of=moment)


@router.get("/interviews/{interview_id}/verify", response_model=VerifyPublic)
def verify_interview(
    interview_id: UUID, principal: CurrentPrincipal, audit: AuditDep
) -> VerifyPublic:
    """Recomputes every event's hash and link: `ok`, or the first broken link and why."""
    report = verify_chain(_visible_history(audit, principal, interview_id))
    broken = (
        BrokenLinkPublic(version=report.broken.version, reason=report.broken.reason)
        if report.broken
        else None
    )
    return VerifyPublic(ok=report.ok, checked=report.checked, broken=broken)


@router.get("/events", response_model=AuditEventsPage)
def log_events(
    principal: CurrentPrincipal,
    audit: AuditDep,
    after: Annotated[int, Query(ge=0, le=_POSITION_MAX, description="A position")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> Response:
    """Every interview event in global order after `after`, for auditors who
    replay everything. Auditors and admins only."""
    if not principal.is_reader:
        raise ApiError(403, "forbidden", "only auditors and admins read the whole log")
    records = audit.log_page(after, limit + 1)
    page = records[:limit]
    return _json(
        {
            "events": [reveal_event_json(r.to_json(), audit.app.reader) for r in page],
            "next": page[-1].position if page else after,
            "has_more": len(records) > limit,
        }
    )


def _visible_history(
    audit: InterviewAudit, principal: Principal, interview_id: UUID
) -> list[RecordedEvent]:
    try:
        records = audit.history(interview_id)
    except InterviewNotFoundError as error:
        raise ApiError(404, "not_found", str(error)) from None
    if principal.is_reader or _is_party(principal, records[0]):
        return records
    raise ApiError(404, "not_found", f"interview {interview_id} not found")


def _is_party(principal: Principal, first: RecordedEvent) -> bool:
    invited = first.event
    if first.version != 1 or not isinstance(invited, Interview.Invited):
        return False  # ownership cannot be shown from a damaged history
    parties = {("client", invited.client_id), ("freelancer", invited.freelancer_id)}
    return (principal.role, principal.id) in parties


def _json(content: Any) -> Response:
    """Recorded values as they are, even damaged ones (no response-model coercion)."""
    body = json.dumps(content, ensure_ascii=False, default=str)
    return Response(body, media_type="application/json")


_DATETIME = TypeAdapter(datetime)


def _parse_time(raw: str) -> datetime:
    # A "+" in a query string arrives as a space: "12:00:00 00:00" meant "+00:00".
    text = raw.strip()
    if len(text) > 6 and text[-6] == " " and text[-3] == ":":
        text = text[:-6] + "+" + text[-5:]
    try:
        value = _DATETIME.validate_python(text)
    except ValidationError:
        raise ApiError(
            422, "invalid_input", f"at: {raw!r} is not an ISO 8601 time, e.g. 2026-11-25T12:00:00Z"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
