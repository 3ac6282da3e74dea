"""The interview command API: commands, authoritative state, job policy.

Routes translate HTTP to use cases and domain errors to status codes; they
never touch the database themselves.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, TypeVar
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.types import ASGIApp

from ...common.auth import Principal
from ...common.calendar import interview_calendar, meeting_description, meeting_summary
from ...common.loop_threads import LoopThreads, WouldBlockError, on_the_loop
from ...common.web import (
    BEARER_DOCUMENT,
    ERROR_RESPONSES,
    ApiError,
    CurrentPrincipal,
    request_principal,
)
from ..application import (
    CommandResult,
    ConcurrencyConflictError,
    IdempotencyKeyReusedError,
    InterviewNotFoundError,
    InterviewsApplication,
    JobView,
    PreparedCommand,
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
from .direct_routes import DirectRoutes
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

IDEMPOTENCY_KEY = "Idempotency-Key"
IF_MATCH = "If-Match"
# The formats of the two headers, as the documents state them.
HEADER_FORMATS = {
    IDEMPOTENCY_KEY: (
        r"^[\x21-\x7e]{1,128}$",
        "Repeating a command with the same key changes nothing and returns the first "
        "answer (1 to 128 visible ASCII characters)",
    ),
    IF_MATCH: (
        r'^(W/)?"?[0-9]{1,18}"?$',
        "The version the command expects the interview to be at, e.g. 3",
    ),
}
_HEADER_PATTERNS = {name: re.compile(pattern) for name, (pattern, _) in HEADER_FORMATS.items()}
# What a command route's document says beyond its path and body: the bearer
# scheme and the two optional headers.
COMMAND_DOCUMENT: dict[str, Any] = {
    **BEARER_DOCUMENT,
    "parameters": [
        {
            "name": name,
            "in": "header",
            "required": False,
            "description": description,
            "schema": {
                "type": "string",
                "pattern": pattern,
                "title": name,
                "description": description,
            },
        }
        for name, (pattern, description) in HEADER_FORMATS.items()
    ],
}


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


def _context(request: Request, principal: Principal) -> CommandContext:
    request_id = request.scope.get("state", {}).get("request_id", "")
    return CommandContext(
        actor=Actor(principal.id, principal.role),
        at=request.app.state.container.clock(),
        correlation_id=request.headers.get("x-correlation-id", "")[:128] or request_id,
        causation_id=request_id,
    )


R = TypeVar("R")


async def in_command_thread(threads: LoopThreads, call: Callable[..., R], *args: Any) -> R:
    """``call(*args)`` in one of the container's ``command_threads`` (a use case
    blocks on the store), in the request's context (its trace and log context)."""
    return await threads.run(call, *args)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sends a command, when, the application it goes to and the threads
    its use case runs in."""

    ctx: CommandContext
    app: InterviewsApplication
    threads: LoopThreads

    async def offload(self, call: Callable[[], R]) -> R:
        """``call()`` in a command thread (``in_command_thread``)."""
        return await in_command_thread(self.threads, call)


async def command_caller(request: Request) -> Caller:
    """401 without a valid token, 403 for readers, 503 while the store is down:
    in that order, and before any header or body is looked at."""
    principal = request_principal(request)
    if principal.is_reader:
        raise ApiError(403, "forbidden", f"{principal.role}s read but never change interviews")
    return Caller(
        _context(request, principal),
        await get_interviews(request),
        request.app.state.container.command_threads,
    )


async def registrar_caller(request: Request) -> Caller:
    """The caller registering a job: the marketplace's job service or an admin."""
    principal = request_principal(request)
    if principal.role not in REGISTRARS:
        raise ApiError(
            403, "forbidden", "only the marketplace's job service or an admin registers jobs"
        )
    return Caller(
        _context(request, principal),
        await get_interviews(request),
        request.app.state.container.command_threads,
    )


# Their routes state the bearer scheme with ``openapi_extra=BEARER_DOCUMENT``.
CallerDep = Annotated[Caller, Depends(command_caller)]
RegistrarDep = Annotated[Caller, Depends(registrar_caller)]


@dataclass(frozen=True, slots=True)
class Command:
    """A command's caller and its ``Idempotency-Key`` and ``If-Match`` headers
    (their formats checked once, by ``command``), and the container's
    ``command_threads``, where its use case runs."""

    ctx: CommandContext
    app: InterviewsApplication
    idempotency_key: str | None
    expected_version: int | None
    threads: LoopThreads
    on_loop: bool = False

    async def run(
        self,
        use_case: Callable[..., CommandResult],
        interview_id: UUID,
        *args: Any,
        **kwargs: Any,
    ) -> Response:
        """``use_case(ctx, interview_id, ...)`` with the headers' options, answered."""
        return await self.answer(
            Response(),
            lambda: use_case(
                self.ctx,
                interview_id,
                *args,
                **kwargs,
                idempotency_key=self.idempotency_key,
                expected_version=self.expected_version,
            ),
        )

    async def answer(
        self, response: Response, call: Callable[[], CommandResult], now: datetime | None = None
    ) -> Response:
        """``run_command(response, call, now)``: with ``on_loop`` the command's
        first attempt on the event loop (``execute_on_loop``), else all of it in
        a command thread (``in_command_thread``). The same answers either way."""
        prepared = self._prepared(call) if self.on_loop else None
        if prepared is None:
            return await in_command_thread(self.threads, run_command, response, call, now)
        with api_errors(now):
            result = await self.app.execute_on_loop(prepared, self.threads.run)
        return answered(response, result)

    def _prepared(self, call: Callable[[], CommandResult]) -> PreparedCommand | None:
        try:
            with on_the_loop():
                return self.app.prepare(call)
        except WouldBlockError:
            return None


async def command(request: Request) -> Command:
    """The caller (as ``command_caller``), then the ``Idempotency-Key`` and
    ``If-Match`` headers, each checked once against its documented format (422).

    One dependency that reads the request, instead of a tree of them (bearer
    scheme, principal, caller, two declared headers) that FastAPI solves anew for
    every request, at a cost comparable to the use case's own Python. The routes
    state the scheme and the headers with ``openapi_extra=COMMAND_DOCUMENT``; a
    malformed header is answered before the body is read."""
    caller = await command_caller(request)
    headers = request.headers
    key, if_match = headers.get(IDEMPOTENCY_KEY), headers.get(IF_MATCH)
    for name, value in ((IDEMPOTENCY_KEY, key), (IF_MATCH, if_match)):
        if value is not None and not _HEADER_PATTERNS[name].fullmatch(value):
            pattern = HEADER_FORMATS[name][0]
            raise RequestValidationError(
                [
                    {
                        "type": "string_pattern_mismatch",
                        "loc": ("header", name),
                        "msg": f"String should match pattern '{pattern}'",
                        "input": value,
                    }
                ]
            )
    expected = None if if_match is None else int(if_match.removeprefix("W/").strip('"'))
    on_loop = request.app.state.container.settings.commands_on_loop
    return Command(caller.ctx, caller.app, key, expected, caller.threads, on_loop)


CommandDep = Annotated[Command, Depends(command)]
JobIdPath = Annotated[
    str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")
]
JOB_READERS = ("auditor", "admin", "service")


def run_command(
    response: Response, call: Callable[[], CommandResult], now: datetime | None = None
) -> Response:
    """Runs a use case and writes its answer into ``response`` (whose status code
    it keeps): the command's JSON rendered once, its ``ETag``, and
    ``Idempotent-Replayed`` on a replay. Domain and use-case errors become
    :class:`ApiError` with their status."""
    with api_errors(now):
        result = call()
    return answered(response, result)


@contextlib.contextmanager
def api_errors(now: datetime | None = None) -> Iterator[None]:
    """The block's domain and use-case errors raised as their HTTP answer
    (``api_error``); anything else as it is."""
    try:
        yield
    except Exception as error:
        mapped = api_error(error, now)
        if mapped is error:
            raise
        raise mapped from None


def api_error(error: Exception, now: datetime | None = None) -> Exception:
    """The HTTP answer to a command's error: domain and use-case errors as
    :class:`ApiError` with their status, anything else as it is."""
    if isinstance(error, ExclusiveWindowError):
        # ``now`` is the command's injected clock, so Retry-After agrees with ends_at.
        ctx_now = now or datetime.now(error.ends_at.tzinfo)
        retry_after = max(1, int((error.ends_at - ctx_now).total_seconds()) + 1)
        return ApiError(409, error.code, error.detail, {"Retry-After": str(retry_after)})
    if isinstance(error, NotAllowedError):
        return ApiError(403, error.code, error.detail)
    if isinstance(error, InvalidCommandError):
        return ApiError(422, error.code, error.detail)
    if isinstance(error, JobNotFoundError):
        return ApiError(404, error.code, error.detail)
    if isinstance(error, DomainError):
        return ApiError(409, error.code, error.detail)
    if isinstance(error, InterviewNotFoundError):
        return ApiError(404, error.code, str(error))
    if isinstance(error, VersionMismatchError):
        return ApiError(412, error.code, str(error), {"ETag": f'"{error.actual}"'})
    if isinstance(error, IdempotencyKeyReusedError):
        return ApiError(422, error.code, str(error))
    if isinstance(error, ConcurrencyConflictError):
        return ApiError(409, error.code, str(error))
    return error


def answered(response: Response, result: CommandResult) -> Response:
    """``response`` (whose status code it keeps) answering ``result``: its JSON
    rendered once, its ``ETag``, and ``Idempotent-Replayed`` on a replay."""
    headers = {"ETag": f'"{result.version}"'}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    response.body = json_bytes(result.as_dict())
    response.media_type = JSON
    response.init_headers(headers)
    return response


def json_bytes(content: Any) -> bytes:
    """``content`` as the framework's JSON responses write it (compact, UTF-8)."""
    return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


def model_response(
    model: BaseModel, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A response model validated once (when it was built) and serialised once;
    the route's ``response_model`` documents it."""
    return Response(model.model_dump_json(), status_code, headers, JSON)


JSON = "application/json"

F = TypeVar("F", bound=Callable[..., Any])
router = APIRouter(tags=["interviews"], responses=ERROR_RESPONSES)


def command_route(path: str, status_code: int = 200) -> Callable[[F], F]:
    """``POST path``: a command answering a ``CommandResponse``, its document
    stating the bearer scheme and the two optional headers."""
    return router.post(
        path,
        status_code=status_code,
        response_model=CommandResponse,
        openapi_extra=COMMAND_DOCUMENT,
    )


@command_route("/interviews", status_code=201)
async def invite(body: InviteRequest, command: CommandDep) -> Response:
    """The job's client invites a freelancer to interview for it. The job must
    exist (`404 job_not_found`, also for another client's job) and be open
    (`409 job_closed`); one open interview per job and freelancer; a freelancer
    hired for the job is not invited again (`409 already_hired`)."""
    ctx = command.ctx
    return await command.answer(
        Response(status_code=201),
        lambda: command.app.invite(
            ctx,
            job_id=body.job_id,
            freelancer_id=body.freelancer_id,
            message=body.message,
            expires_at=body.expires_at,
            exclusive_hours=body.exclusive_hours,
            idempotency_key=command.idempotency_key,
        ),
        now=ctx.at,
    )


@command_route("/interviews/{interview_id}/accept")
async def accept(interview_id: UUID, command: CommandDep, body: NoBody | None = None) -> Response:
    """The invited freelancer accepts the invitation. No body (or ``{}``): any
    field is refused."""
    return await command.run(command.app.accept, interview_id)


@command_route("/interviews/{interview_id}/decline")
async def decline(
    interview_id: UUID, command: CommandDep, body: DeclineRequest | None = None
) -> Response:
    """The invited freelancer declines the invitation (final)."""
    return await command.run(command.app.decline, interview_id, body.reason if body else None)


@command_route("/interviews/{interview_id}/start")
async def start(
    interview_id: UUID, command: CommandDep, body: StartRequest | None = None
) -> Response:
    """Either party marks the accepted interview as started, optionally with a
    date and time and the meeting's length (15 to 240 minutes, default 30).
    An interview left in progress without a start can be started too."""
    body = body or StartRequest()
    return await command.run(
        command.app.start, interview_id, body.scheduled_at, body.duration_minutes
    )


@command_route("/interviews/{interview_id}/reschedule")
async def reschedule(interview_id: UUID, body: RescheduleRequest, command: CommandDep) -> Response:
    """Either party moves the meeting of a started interview (in progress or
    with an open offer) to a new time, optionally with a new length and a
    reason. The calendar event keeps its UID and its SEQUENCE goes up."""
    return await command.run(
        command.app.reschedule,
        interview_id,
        scheduled_at=body.scheduled_at,
        duration_minutes=body.duration_minutes,
        reason=body.reason,
    )


@command_route("/interviews/{interview_id}/offer")
async def extend_offer(interview_id: UUID, body: OfferRequest, command: CommandDep) -> Response:
    """The interview's client extends an offer (again after a declined one)."""
    return await command.run(
        command.app.extend_offer,
        interview_id,
        amount=Decimal(body.amount),
        currency=body.currency,
        rate_type=body.rate_type,
        start_date=body.start_date,
        message=body.message,
        expires_at=body.expires_at,
    )


@command_route("/interviews/{interview_id}/offer/accept")
async def accept_offer(
    interview_id: UUID, command: CommandDep, body: NoBody | None = None
) -> Response:
    """The freelancer accepts the offer: hired (final). No body (or ``{}``): any
    field is refused."""
    return await command.run(command.app.accept_offer, interview_id)


@command_route("/interviews/{interview_id}/offer/decline")
async def decline_offer(
    interview_id: UUID, command: CommandDep, body: DeclineRequest | None = None
) -> Response:
    """The freelancer declines the offer; the client may extend a revised one."""
    return await command.run(command.app.decline_offer, interview_id, body.reason if body else None)


@command_route("/interviews/{interview_id}/offer/withdraw")
async def withdraw_offer(
    interview_id: UUID, command: CommandDep, body: WithdrawOfferRequest | None = None
) -> Response:
    """The client takes back an offer the freelancer has not answered; the
    interview returns to the state it was in before the offer."""
    return await command.run(
        command.app.withdraw_offer, interview_id, body.reason if body else None
    )


@command_route("/interviews/{interview_id}/cancel")
async def cancel(interview_id: UUID, body: CancelRequest, command: CommandDep) -> Response:
    """Either party cancels an open interview, with a reason (final)."""
    return await command.run(command.app.cancel, interview_id, body.reason)


@router.get("/interviews/{interview_id}", response_model=InterviewPublic)
def get_interview(interview_id: UUID, principal: CurrentPrincipal, app: InterviewsDep) -> Response:
    """The authoritative state of an interview, for its parties, auditors and admins."""
    interview = load_visible_interview(app, principal, interview_id)
    position = app.position_of(interview.id, interview.version)
    shown = interview_public(interview, position, app.reader)
    return model_response(shown, headers={"ETag": f'"{interview.version}"'})


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


@router.put("/jobs/{job_id}/policy", response_model=JobPolicyPublic, openapi_extra=BEARER_DOCUMENT)
async def set_job_policy(job_id: JobIdPath, body: JobPolicyRequest, caller: CallerDep) -> Response:
    """The job's client sets its exclusive window (hours; null or 0 turns it off).
    A job that does not exist (or is another client's) is `404 job_not_found`."""

    def set_policy() -> Response:
        with job_errors():
            policy = caller.app.set_job_policy(caller.ctx, job_id, body.exclusive_hours)
        return model_response(JobPolicyPublic(**policy.__dict__))

    return await caller.offload(set_policy)


@router.post("/jobs", status_code=201, response_model=JobPublic, openapi_extra=COMMAND_DOCUMENT)
async def create_job(body: JobCreateRequest, command: CommandDep) -> Response:
    """A client creates a job of their own; the answer carries its new `job_id`.
    With an `Idempotency-Key`, a retry (same title) answers with the job the
    first created (`Idempotent-Replayed: true`); another title is 422."""

    def create() -> Response:
        with job_errors():
            job, created = command.app.create_job(
                command.ctx,
                body.title,
                body.exclusive_hours,
                idempotency_key=command.idempotency_key,
            )
        return model_response(
            job_public(job), 201, None if created else {"Idempotent-Replayed": "true"}
        )

    return await in_command_thread(command.threads, create)


@router.put(
    "/jobs/{job_id}",
    response_model=JobPublic,
    responses={201: {"model": JobPublic, "description": "Registered"}},
    openapi_extra=BEARER_DOCUMENT,
)
async def register_job(
    job_id: JobIdPath, body: JobRegisterRequest, caller: RegistrarDep
) -> Response:
    """The marketplace's job service (role `service`) or an admin registers an
    external job id and the client who owns it: 201 when new, 200 (changing
    nothing) when it is already registered to that client, `409
    job_owner_conflict` when it belongs to another."""

    def register() -> Response:
        with job_errors():
            job, created = caller.app.register_job(caller.ctx, job_id, body.client_id, body.title)
        return model_response(job_public(job), 201 if created else 200)

    return await caller.offload(register)


@router.get("/jobs/{job_id}", response_model=JobPublic)
def get_job(job_id: JobIdPath, principal: CurrentPrincipal, app: InterviewsDep) -> Response:
    """A job, for its client, the job service, auditors and admins. To anyone
    else it is `404 job_not_found`, as if it did not exist (no probing)."""
    job = app.get_job(job_id)
    visible = job is not None and (
        principal.role in JOB_READERS
        or (principal.role == "client" and principal.id == job.client_id)
    )
    if job is None or not visible:
        raise ApiError(404, "job_not_found", f"job {job_id!r} not found")
    return model_response(job_public(job))


@router.post("/jobs/{job_id}/close", response_model=JobClosedPublic, openapi_extra=BEARER_DOCUMENT)
async def close_job(
    job_id: JobIdPath, caller: CallerDep, body: JobCloseRequest | None = None
) -> Response:
    """The job's client closes it: every open interview of the job is cancelled
    (reason "job closed"; both parties see it cancelled and are told), and new
    invitations get `409 job_closed`. Closing a closed job changes nothing."""

    def close() -> Response:
        with job_errors():
            closing = caller.app.close_job(caller.ctx, job_id, body.reason if body else None)
        closed = JobClosedPublic(
            **job_public(closing.job).model_dump(),
            cancelled=[str(i) for i in closing.cancelled],
            position=closing.position,
        )
        return model_response(closed)

    return await caller.offload(close)


def direct_front(app: FastAPI, stack: ASGIApp) -> ASGIApp:
    """This router's command routes served without FastAPI's per-request
    machinery (``DirectRoutes``), in front of ``app``'s middleware stack. The
    router is the app's first, included with no prefix: no route is tried
    before its own."""
    return DirectRoutes(app, stack, router.routes)


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
