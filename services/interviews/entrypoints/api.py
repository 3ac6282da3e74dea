"""The interview command API: commands, authoritative state, job policy.

Routes translate HTTP to use cases and domain errors to status codes; they
never touch the database themselves.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Path, Request, Response
from fastapi.concurrency import run_in_threadpool

from ...common.auth import Principal
from ...common.calendar import interview_calendar, meeting_description, meeting_summary
from ...common.web import ERROR_RESPONSES, ApiError, CurrentPrincipal
from ..application import (
    CommandResult,
    ConcurrencyConflictError,
    IdempotencyKeyReusedError,
    InterviewNotFoundError,
    InterviewsApplication,
    JobView,
    VersionMismatchError,
)
from ..domain import (
    Actor,
    CommandContext,
    DomainError,
    ExclusiveWindowError,
    InvalidCommandError,
    JobNotFoundError,
    NotAllowedError,
)
from ..domain.job import REGISTRARS
from .schemas import (
    CancelRequest,
    CommandResponse,
    DeclineRequest,
    InterviewPublic,
    InviteRequest,
    JobClosedPublic,
    JobCloseRequest,
    JobCreateRequest,
    JobPolicyPublic,
    JobPolicyRequest,
    JobPublic,
    JobRegisterRequest,
    NoBody,
    OfferRequest,
    RescheduleRequest,
    StartRequest,
    WithdrawOfferRequest,
    interview_public,
)

_KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,128}$")
# The documents state these formats, so a generated client or a fuzzer knows them.
# Typed ``str`` (not ``str | None``): a header is absent or a string, never null.
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        pattern=r"^[\x21-\x7e]{1,128}$",
        description="Repeating a command with the same key changes nothing and returns "
        "the first answer (1 to 128 visible ASCII characters)",
    ),
]
IfMatch = Annotated[
    str,
    Header(
        alias="If-Match",
        pattern=r'^(W/)?"?[0-9]{1,18}"?$',
        description="The version the command expects the interview to be at, e.g. 3",
    ),
]


async def get_interviews(request: Request) -> InterviewsApplication:
    # Dependencies are async where they do no I/O: FastAPI runs a sync one in the
    # thread pool, a hop per dependency per request. Building the application
    # (only until it first succeeds) connects to the database, so that goes there.
    container = request.app.state.container
    container.check_available()  # 503 at once while its database is known to be down
    app = container.opened
    if app is not None:
        return app
    return await run_in_threadpool(container.interviews)


InterviewsDep = Annotated[InterviewsApplication, Depends(get_interviews)]


class CommandOptions:
    """``Idempotency-Key`` and ``If-Match`` headers, validated."""

    def __init__(
        self,
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
        if_match: Annotated[str | None, Header(alias="If-Match")] = None,
    ) -> None:
        if idempotency_key is not None and not _KEY_PATTERN.match(idempotency_key):
            raise ApiError(
                422, "invalid_input", "Idempotency-Key must be 1 to 128 visible ASCII characters"
            )
        self.idempotency_key = idempotency_key
        self.expected_version: int | None = None
        if if_match is not None:
            raw = if_match.strip()
            raw = raw.removeprefix("W/").strip('"')
            if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
                raise ApiError(422, "invalid_input", "If-Match must be a version number, e.g. 3")
            self.expected_version = int(raw)

    def kwargs(self) -> dict[str, Any]:
        return {
            "idempotency_key": self.idempotency_key,
            "expected_version": self.expected_version,
        }


async def command_options(
    # Typed str for the documents (see IdempotencyKey); an absent header gives None.
    idempotency_key: IdempotencyKey = None,  # type: ignore[assignment]
    if_match: IfMatch = None,  # type: ignore[assignment]
) -> CommandOptions:
    return CommandOptions(idempotency_key, if_match)


OptionsDep = Annotated[CommandOptions, Depends(command_options)]


async def command_context(request: Request, principal: CurrentPrincipal) -> CommandContext:
    if principal.is_reader:
        raise ApiError(403, "forbidden", f"{principal.role}s read but never change interviews")
    request_id = getattr(request.state, "request_id", "")
    correlation = request.headers.get("x-correlation-id", "")[:128] or request_id
    return CommandContext(
        actor=Actor(principal.id, principal.role),
        at=request.app.state.container.clock(),
        correlation_id=correlation,
        causation_id=request_id,
    )


ContextDep = Annotated[CommandContext, Depends(command_context)]


async def registrar_context(request: Request, principal: CurrentPrincipal) -> CommandContext:
    """The caller registering a job: the marketplace's job service or an admin."""
    if principal.role not in REGISTRARS:
        raise ApiError(
            403, "forbidden", "only the marketplace's job service or an admin registers jobs"
        )
    request_id = getattr(request.state, "request_id", "")
    return CommandContext(
        actor=Actor(principal.id, principal.role),
        at=request.app.state.container.clock(),
        correlation_id=request.headers.get("x-correlation-id", "")[:128] or request_id,
        causation_id=request_id,
    )


RegistrarDep = Annotated[CommandContext, Depends(registrar_context)]
JobIdPath = Annotated[
    str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")
]
JOB_READERS = ("auditor", "admin", "service")


def run_command(
    response: Response, call: Callable[[], CommandResult], now: datetime | None = None
) -> CommandResponse:
    try:
        result = call()
    except ExclusiveWindowError as error:
        # ``now`` is the command's injected clock, so Retry-After agrees with ends_at.
        ctx_now = now or datetime.now(error.ends_at.tzinfo)
        retry_after = max(1, int((error.ends_at - ctx_now).total_seconds()) + 1)
        raise ApiError(409, error.code, error.detail, {"Retry-After": str(retry_after)}) from None
    except NotAllowedError as error:
        raise ApiError(403, error.code, error.detail) from None
    except InvalidCommandError as error:
        raise ApiError(422, error.code, error.detail) from None
    except JobNotFoundError as error:
        raise ApiError(404, error.code, error.detail) from None
    except DomainError as error:
        raise ApiError(409, error.code, error.detail) from None
    except InterviewNotFoundError as error:
        raise ApiError(404, error.code, str(error)) from None
    except VersionMismatchError as error:
        raise ApiError(412, error.code, str(error), {"ETag": f'"{error.actual}"'}) from None
    except IdempotencyKeyReusedError as error:
        raise ApiError(422, error.code, str(error)) from None
    except ConcurrencyConflictError as error:
        raise ApiError(409, error.code, str(error)) from None
    response.headers["ETag"] = f'"{result.version}"'
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return CommandResponse(**result.as_dict())


router = APIRouter(tags=["interviews"], responses=ERROR_RESPONSES)


@router.post("/interviews", status_code=201, response_model=CommandResponse)
def invite(
    body: InviteRequest, ctx: ContextDep, opts: OptionsDep, app: InterviewsDep, response: Response
) -> CommandResponse:
    """The job's client invites a freelancer to interview for it. The job must
    exist (`404 job_not_found`, also for another client's job) and be open
    (`409 job_closed`); one open interview per job and freelancer; a freelancer
    hired for the job is not invited again (`409 already_hired`)."""
    return run_command(
        response,
        lambda: app.invite(
            ctx,
            job_id=body.job_id,
            freelancer_id=body.freelancer_id,
            message=body.message,
            expires_at=body.expires_at,
            exclusive_hours=body.exclusive_hours,
            idempotency_key=opts.idempotency_key,
        ),
        now=ctx.at,
    )


@router.post("/interviews/{interview_id}/accept", response_model=CommandResponse)
def accept(
    interview_id: UUID,
    ctx: ContextDep,
    opts: OptionsDep,
    app: InterviewsDep,
    response: Response,
    body: NoBody | None = None,
) -> CommandResponse:
    """The invited freelancer accepts the invitation. No body (or ``{}``): any
    field is refused."""
    return run_command(response, lambda: app.accept(ctx, interview_id, **opts.kwargs()))


@router.post("/interviews/{interview_id}/decline", response_model=CommandResponse)
def decline(
    interview_id: UUID,
    ctx: ContextDep,
    opts: OptionsDep,
    app: InterviewsDep,
    response: Response,
    body: DeclineRequest | None = None,
) -> CommandResponse:
    """The invited freelancer declines the invitation (final)."""
    reason = body.reason if body else None
    return run_command(response, lambda: app.decline(ctx, interview_id, reason, **opts.kwargs()))


@router.post("/interviews/{interview_id}/start", response_model=CommandResponse)
def start(
    interview_id: UUID,
    ctx: ContextDep,
    opts: OptionsDep,
    app: InterviewsDep,
    response: Response,
    body: StartRequest | None = None,
) -> CommandResponse:
    """Either party marks the accepted interview as started, optionally with a
    date and time and the meeting's length (15 to 240 minutes, default 30).
    An interview left in progress without a start can be started too."""
    body = body or StartRequest()
    return run_command(
        response,
        lambda: app.start(
            ctx, interview_id, body.scheduled_at, body.duration_minutes, **opts.kwargs()
        ),
    )


@router.post("/interviews/{interview_id}/reschedule", response_model=CommandResponse)
def reschedule(
    interview_id: UUID,
    body: RescheduleRequest,
    ctx: ContextDep,
    opts: OptionsDep,
    app: InterviewsDep,
    response: Response,
) -> CommandResponse:
    """Either party moves the meeting of a started interview (in progress or
    with an open offer) to a new time, optionally with a new length and a
    reason. The calendar event keeps its UID and its SEQUENCE goes up."""
    return run_command(
        response,
        lambda: app.reschedule(
            ctx,
            interview_id,
            scheduled_at=body.scheduled_at,
            duration_minutes=body.duration_minutes,
            reason=body.reason,
            **opts.kwargs(),
        ),
    )


@router.post("/interviews/{interview_id}/offer", response_model=CommandResponse)
def extend_offer(
    interview_id: UUID,
    body: OfferRequest,
    ctx: ContextDep,
    opts: OptionsDep,
    app: InterviewsDep,
    response: Response,
) -> CommandResponse:
    """The interview's client extends an offer (again after a declined one)."""
    return run_command(
        response,
        lambda: app.extend_offer(
            ctx,
            interview_id,
            amount=Decimal(body.amount),
            currency=body.currency,
            rate_type=body.rate_type,
            start_date=body.start_date,
            message=body.message,
            expires_at=body.expires_at,
            **opts.kwargs(),
        ),
    )


@router.post("/interviews/{interview_id}/offer/accept", response_model=CommandResponse)
def accept_offer(
    interview_id: UUID,
    ctx: ContextDep,
    opts: OptionsDep,
    app: InterviewsDep,
    response: Response,
    body: NoBody | None = None,
) -> CommandResponse:
    """The freelancer accepts the offer: hired (final). No body (or ``{}``): any
    field is refused."""
    return run_command(response, lambda: app.accept_offer(ctx, interview_id, **opts.kwargs()))


@router.post("/interviews/{interview_id}/offer/decline", response_model=CommandResponse)
def decline_offer(
    interview_id: UUID,
    ctx: ContextDep,
    opts: OptionsDep,
    app: InterviewsDep,
    response: Response,
    body: DeclineRequest | None = None,
) -> CommandResponse:
    """The freelancer declines the offer; the client may extend a revised one."""
    reason = body.reason if body else None
    return run_command(
        response, lambda: app.decline_offer(ctx, interview_id, reason, **opts.kwargs())
    )


@router.post("/interviews/{interview_id}/offer/withdraw", response_model=CommandResponse)
def withdraw_offer(
    interview_id: UUID,
    ctx: ContextDep,
    opts: OptionsDep,
    app: InterviewsDep,
    response: Response,
    body: WithdrawOfferRequest | None = None,
) -> CommandResponse:
    """The client takes back an offer the freelancer has not answered; the
    interview returns to the state it was in before the offer."""
    reason = body.reason if body else None
    return run_command(
        response, lambda: app.withdraw_offer(ctx, interview_id, reason, **opts.kwargs())
    )


@router.post("/interviews/{interview_id}/cancel", response_model=CommandResponse)
def cancel(
    interview_id: UUID,
    body: CancelRequest,
    ctx: ContextDep,
    opts: OptionsDep,
    app: InterviewsDep,
    response: Response,
) -> CommandResponse:
    """Either party cancels an open interview, with a reason (final)."""
    return run_command(
        response, lambda: app.cancel(ctx, interview_id, body.reason, **opts.kwargs())
    )


@router.get("/interviews/{interview_id}", response_model=InterviewPublic)
def get_interview(
    interview_id: UUID, principal: CurrentPrincipal, app: InterviewsDep, response: Response
) -> InterviewPublic:
    """The authoritative state of an interview, for its parties, auditors and admins."""
    interview = load_visible_interview(app, principal, interview_id)
    response.headers["ETag"] = f'"{interview.version}"'
    return interview_public(interview, app.position_of(interview.id, interview.version), app.reader)


CALENDAR_MEDIA_TYPE = "text/calendar; charset=utf-8"


@router.get(
    "/interviews/{interview_id}/calendar.ics",
    response_class=Response,
    responses={
        200: {
            "description": "An iCalendar object (RFC 5545) with one VEVENT",
            "content": {"text/calendar": {"schema": {"type": "string"}}},
        },
        404: {
            **ERROR_RESPONSES[404],
            "description": "Not a party of this interview (`not_found`), or the "
            "interview has no scheduled time (`not_scheduled`)",
        },
    },
)
def interview_calendar_feed(
    interview_id: UUID, principal: CurrentPrincipal, app: InterviewsDep
) -> Response:
    """The interview's meeting for the client's or the freelancer's calendar
    (nobody else's: 404). Its UID never changes; SEQUENCE counts the schedule
    changes (0 at the start, +1 per reschedule, +1 on cancellation);
    METHOD:REQUEST while it stands, METHOD:CANCEL with STATUS:CANCELLED once
    cancelled. An interview without a scheduled time is `404 not_scheduled`."""
    interview = load_visible_interview(app, principal, interview_id)
    if interview.party_role_of(principal.id) != principal.role:
        raise ApiError(404, "not_found", f"interview {interview_id} not found")
    if interview.scheduled_at is None:
        raise ApiError(
            404,
            "not_scheduled",
            f"interview {interview_id} has no scheduled time yet: it gets one when it is "
            "started or rescheduled with a scheduled_at",
        )
    cancelled = interview.status == "cancelled"
    body = interview_calendar(
        interview_id=interview.id,
        summary=meeting_summary(interview.job_id),
        description=meeting_description(
            interview.id, interview.job_id, interview.client_id, interview.freelancer_id
        ),
        start=interview.scheduled_at,
        duration_minutes=interview.duration_minutes,
        organizer_id=interview.client_id,
        attendee_id=interview.freelancer_id,
        sequence=interview.schedule_sequence,
        # Final once cancelled, so its last change is the cancellation.
        stamp=interview.updated_at
        if cancelled
        else interview.schedule_changed_at or interview.updated_at,
        cancelled=cancelled,
    )
    return Response(
        body,
        media_type=CALENDAR_MEDIA_TYPE,
        headers={
            "Content-Disposition": f'inline; filename="interview-{interview.id}.ics"',
            "Cache-Control": "private, no-cache",
            "ETag": f'"{interview.version}"',
        },
    )


@router.put("/jobs/{job_id}/policy", response_model=JobPolicyPublic)
def set_job_policy(
    job_id: JobIdPath,
    body: JobPolicyRequest,
    ctx: ContextDep,
    app: InterviewsDep,
) -> JobPolicyPublic:
    """The job's client sets its exclusive window (hours; null or 0 turns it off).
    A job that does not exist (or is another client's) is `404 job_not_found`."""
    with job_errors():
        policy = app.set_job_policy(ctx, job_id, body.exclusive_hours)
    return JobPolicyPublic(**policy.__dict__)


@router.post("/jobs", status_code=201, response_model=JobPublic)
def create_job(
    body: JobCreateRequest,
    ctx: ContextDep,
    opts: OptionsDep,
    app: InterviewsDep,
    response: Response,
) -> JobPublic:
    """A client creates a job of their own; the answer carries its new `job_id`.
    With an `Idempotency-Key`, a retry (same title) answers with the job the
    first created (`Idempotent-Replayed: true`); another title is 422."""
    with job_errors():
        job, created = app.create_job(
            ctx, body.title, body.exclusive_hours, idempotency_key=opts.idempotency_key
        )
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return job_public(job)


@router.put(
    "/jobs/{job_id}",
    response_model=JobPublic,
    responses={201: {"model": JobPublic, "description": "Registered"}},
)
def register_job(
    job_id: JobIdPath,
    body: JobRegisterRequest,
    ctx: RegistrarDep,
    app: InterviewsDep,
    response: Response,
) -> JobPublic:
    """The marketplace's job service (role `service`) or an admin registers an
    external job id and the client who owns it: 201 when new, 200 (changing
    nothing) when it is already registered to that client, `409
    job_owner_conflict` when it belongs to another."""
    with job_errors():
        job, created = app.register_job(ctx, job_id, body.client_id, body.title)
    response.status_code = 201 if created else 200
    return job_public(job)


@router.get("/jobs/{job_id}", response_model=JobPublic)
def get_job(job_id: JobIdPath, principal: CurrentPrincipal, app: InterviewsDep) -> JobPublic:
    """A job, for its client, the job service, auditors and admins. To anyone
    else it is `404 job_not_found`, as if it did not exist (no probing)."""
    job = app.get_job(job_id)
    visible = job is not None and (
        principal.role in JOB_READERS
        or (principal.role == "client" and principal.id == job.client_id)
    )
    if job is None or not visible:
        raise ApiError(404, "job_not_found", f"job {job_id!r} not found")
    return job_public(job)


@router.post("/jobs/{job_id}/close", response_model=JobClosedPublic)
def close_job(
    job_id: JobIdPath,
    ctx: ContextDep,
    app: InterviewsDep,
    body: JobCloseRequest | None = None,
) -> JobClosedPublic:
    """The job's client closes it: every open interview of the job is cancelled
    (reason "job closed"; both parties see it cancelled and are told), and new
    invitations get `409 job_closed`. Closing a closed job changes nothing."""
    with job_errors():
        closing = app.close_job(ctx, job_id, body.reason if body else None)
    return JobClosedPublic(
        **job_public(closing.job).model_dump(),
        cancelled=[str(i) for i in closing.cancelled],
        position=closing.position,
    )


def job_public(job: JobView) -> JobPublic:
    return JobPublic(
        job_id=job.job_id,
        client_id=job.client_id,
        title=job.title,
        status=job.status,
        exclusive_hours=job.exclusive_hours,
    )


@contextlib.contextmanager
def job_errors() -> Iterator[None]:
    """Domain and use-case errors of the job commands as HTTP answers."""
    try:
        yield
    except NotAllowedError as error:
        raise ApiError(403, error.code, error.detail) from None
    except JobNotFoundError as error:
        raise ApiError(404, error.code, error.detail) from None
    except InvalidCommandError as error:
        raise ApiError(422, error.code, error.detail) from None
    except DomainError as error:
        raise ApiError(409, error.code, error.detail) from None
    except IdempotencyKeyReusedError as error:
        raise ApiError(422, error.code, str(error)) from None
    except ConcurrencyConflictError as error:
        raise ApiError(409, error.code, str(error)) from None


def load_visible_interview(
    app: InterviewsApplication, principal: Principal, interview_id: UUID, version: int | None = None
) -> Any:
    try:
        interview = app.get_interview(interview_id)
    except InterviewNotFoundError as error:
        raise ApiError(404, "not_found", str(error)) from None
    if not principal.is_reader and interview.party_role_of(principal.id) != principal.role:
        raise ApiError(404, "not_found", f"interview {interview_id} not found")
    if version is not None:
        try:
            return app.get_interview(interview_id, version=version)
        except InterviewNotFoundError as error:
            raise ApiError(404, "not_found", str(error)) from None
    return interview
