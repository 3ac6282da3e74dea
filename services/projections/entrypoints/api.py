"""The query API: DESIGN's projection paths, read-your-writes, live stream.

Routes translate HTTP to reads of ``ProjectionViews``; they never build SQL.
Every view answers with ``X-View-Position`` (the highest global position the
views have applied) and honours ``min_position``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal
from uuid import UUID

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query, Request, Response, Security
from fastapi.responses import StreamingResponse
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials
from pydantic_core import to_jsonable_python
from starlette.concurrency import run_in_threadpool

from ...common.auth import Principal
from ...common.shutdown import shutting_down
from ...common.web import BEARER, ERROR_RESPONSES, ApiError, principal_from_token
from ..adapters import queries
from ..adapters.queries import InvalidCursorError, Scope
from ..adapters.schema import ViewTables
from ..adapters.store import Generation
from ..application import ProjectionViews, Snapshot
from . import schemas
from .schemas import Status

log = logging.getLogger(__name__)

TOKEN_COOKIE = "interviews_token"
POSITION_HEADER = "X-View-Position"


def get_views(request: Request) -> ProjectionViews:
    return request.app.state.container.views()


DASHBOARD_COOKIE = APIKeyCookie(
    name=TOKEN_COOKIE,
    auto_error=False,
    description="The same JWT, set by the dashboard page for its own requests.",
)


BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]
DashboardCookie = Annotated[str | None, Security(DASHBOARD_COOKIE)]


def authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None, cookie: str | None
) -> Principal:
    """Bearer token, or the dashboard's cookie (browsers cannot add headers to
    page loads and EventSource)."""
    token = credentials.credentials.strip() if credentials else ""
    return principal_from_token(request.app.state.auth_secret, token or (cookie or ""))


async def viewer(  # no I/O: no thread-pool hop
    request: Request, credentials: BearerCredentials, cookie: DashboardCookie
) -> Principal:
    return authenticate(request, credentials, cookie)


Viewer = Annotated[Principal, Depends(viewer)]
Views = Annotated[ProjectionViews, Depends(get_views)]
MinPosition = Annotated[
    int | None,
    Query(
        ge=0,
        le=2**62,
        description="wait (bounded) until the views have applied this global position; "
        "503 with code view_behind if they have not",
    ),
]
# An empty filter (``?status=&job_id=``, as an HTML form sends it) means no filter.
# No id holds a control character, and PostgreSQL text cannot even compare one
# with NUL: such a filter is 422, never a database error.
IdQuery = Annotated[str | None, Query(max_length=128, pattern=r"^[^\x00-\x1f\x7f]*$")]

router = APIRouter(
    tags=["views"],
    responses={k: ERROR_RESPONSES[k] for k in (401, 422, 503)},
)


async def _read(views: ProjectionViews, min_position: int | None, fn: Any) -> Snapshot:
    if min_position:
        await views.wait_for(min_position)
    return await run_in_threadpool(views.read, fn)


def _stamp(response: Response, snapshot: Snapshot) -> None:
    response.headers[POSITION_HEADER] = str(snapshot.position)
    response.headers["X-View-Generation"] = str(snapshot.generation)


def _not_found(snapshot: Snapshot, detail: str) -> ApiError:
    """404, with the position it was read at (``min_position`` can wait past it)."""
    return ApiError(404, "not_found", detail, headers={POSITION_HEADER: str(snapshot.position)})


@router.get(
    "/views/interviews",
    response_model=schemas.InterviewPage,
    summary="Interviews the caller may see, newest first, filtered and paginated",
)
async def list_interviews(
    response: Response,
    principal: Viewer,
    views: Views,
    status: Annotated[Status | Literal[""] | None, Query()] = None,
    job_id: IdQuery = None,
    client_id: IdQuery = None,
    freelancer_id: IdQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    min_position: MinPosition = None,
) -> dict[str, Any]:
    """Clients see their jobs' interviews, freelancers their own, auditors and
    admins all. The order (by each interview's first event) is stable, so a
    cursor never skips or repeats an item while new interviews arrive."""
    status = status or None
    job_id, client_id, freelancer_id, cursor = (
        v or None for v in (job_id, client_id, freelancer_id, cursor)
    )
    if cursor is not None:
        try:
            queries.decode_cursor(cursor)
        except InvalidCursorError as error:
            raise ApiError(422, "invalid_input", f"cursor: {error}") from None
    snapshot = await _read(
        views,
        min_position,
        lambda conn, tables: queries.list_interviews(
            conn,
            tables,
            Scope.of(principal),
            status=status,
            job_id=job_id,
            client_id=client_id,
            freelancer_id=freelancer_id,
            limit=limit,
            cursor=cursor,
        ),
    )
    _stamp(response, snapshot)
    rows, next_cursor = snapshot.value
    return {"items": [schemas.summary(r) for r in rows], "next_cursor": next_cursor}


@router.get(
    "/views/interviews/{interview_id}",
    response_model=schemas.InterviewDetail,
    responses={404: ERROR_RESPONSES[404]},
    summary="One interview's summary with its timeline",
)
async def get_interview(
    response: Response,
    principal: Viewer,
    views: Views,
    interview_id: Annotated[UUID, Path()],
    min_position: MinPosition = None,
) -> dict[str, Any]:
    snapshot = await _read(
        views,
        min_position,
        lambda conn, tables: queries.get_interview(
            conn, tables, Scope.of(principal), str(interview_id)
        ),
    )
    _stamp(response, snapshot)
    if snapshot.value is None:
        raise _not_found(snapshot, f"interview {interview_id} not found")
    row, timeline = snapshot.value
    return schemas.interview_detail(row, timeline)


@router.get(
    "/views/jobs/{job_id}/candidates",
    response_model=schemas.CandidateBoard,
    responses={404: ERROR_RESPONSES[404]},
    summary="A job's candidate board: every freelancer invited and where each stands",
)
async def job_candidates(
    response: Response,
    principal: Viewer,
    views: Views,
    job_id: Annotated[str, Path(min_length=1, max_length=128)],
    min_position: MinPosition = None,
) -> dict[str, Any]:
    """The job's client (and auditors, admins) see every candidate; a freelancer
    sees only their own line."""
    snapshot = await _read(
        views,
        min_position,
        lambda conn, tables: queries.job_candidates(conn, tables, Scope.of(principal), job_id),
    )
    _stamp(response, snapshot)
    if not snapshot.value:
        raise _not_found(snapshot, f"job {job_id} has no candidates you may see")
    counts: dict[str, int] = {}
    candidates = []
    for entry in snapshot.value:
        latest = entry["latest"]
        counts[latest["status"]] = counts.get(latest["status"], 0) + 1
        candidates.append(
            {
                "freelancer_id": latest["freelancer_id"],
                "status": latest["status"],
                "interview_id": latest["interview_id"],
                "version": latest["version"],
                "invited_at": latest["invited_at"],
                "updated_at": latest["updated_at"],
                "times_invited": entry["interviews"],
            }
        )
    return {"job_id": job_id, "counts": counts, "candidates": candidates}


@router.get(
    "/views/stats",
    response_model=schemas.Stats,
    summary="Counts per status, funnel, time to accept and hire, cancellations",
)
async def stats(
    response: Response, principal: Viewer, views: Views, min_position: MinPosition = None
) -> dict[str, Any]:
    """Over the interviews the caller may see. Funnel stages count every
    interview that reached the stage or went past it, except "started", which
    counts only interviews that were started (an offer can be made without a
    formal start); rates are relative to the previous stage (offers: to the
    acceptances) and to the invitations."""
    if min_position:
        await views.wait_for(min_position)
    snapshot = await run_in_threadpool(views.stats, Scope.of(principal))
    _stamp(response, snapshot)
    return {**snapshot.value, "position": snapshot.position}


def live_payload(
    views: ProjectionViews,
    scope: Scope,
    health: Callable[[], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """What the dashboard shows, at one position: stats and recent activity; a
    client's or freelancer's own interviews (``interviews``); for auditors and
    admins the consumer's health (``consumer``) when ``health`` is given."""
    own = scope.client_id is not None or scope.freelancer_id is not None

    def read(conn: sa.Connection, tables: ViewTables, generation: Generation) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "stats": {
                **views.stats_in(conn, tables, generation, scope),
                "position": generation.position,
            },
            "recent": queries.recent_activity(conn, tables, scope, 15),
        }
        if own:
            rows = queries.list_interviews(conn, tables, scope, limit=OWN_LIMIT)[0]
            payload["interviews"] = [schemas.summary(row) for row in rows]
        return payload

    snapshot = views.read_at(read)  # one snapshot: every part at the same position
    payload = {"position": snapshot.position, "generation": snapshot.generation, **snapshot.value}
    if not own and health is not None:
        payload["consumer"] = health()
    return payload


# The newest interviews a client's or freelancer's dashboard shows.
OWN_LIMIT = 500


def consumer_health_of(
    request: Request, principal: Principal
) -> Callable[[], dict[str, Any]] | None:
    """The consumer's self-report, for the callers allowed to see it."""
    if not principal.is_reader:
        return None
    return request.app.state.container.consumer_health


@router.get(
    "/views/consumer",
    response_model=schemas.ConsumerHealth,
    responses={403: ERROR_RESPONSES[403]},
    summary="The views' consumer: lag, parked and dead-lettered events (auditors, admins)",
)
async def consumer(request: Request, principal: Viewer) -> dict[str, Any]:
    """How far the views are behind the events, and how many events the
    consumer parked or dead-lettered. Auditors and admins only: it tells how
    busy the whole platform is."""
    health = consumer_health_of(request, principal)
    if health is None:
        raise ApiError(403, "forbidden", "only auditors and admins see the consumer's health")
    return await run_in_threadpool(health)


@router.get(
    "/views/stream",
    summary="Live updates (server-sent events) of the caller's stats and activity",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(
    request: Request,
    principal: Viewer,
    views: Views,
    min_position: MinPosition = None,
    max_events: Annotated[int | None, Query(ge=1, le=10_000)] = None,
) -> StreamingResponse:
    """Sends an ``update`` event (JSON: position, stats, recent activity; a
    client's or freelancer's own interviews; for auditors and admins the
    consumer's health) now and whenever the views move on, at most every few
    hundred milliseconds. The stream ends after a while, and at once when the
    server shuts down; EventSource reconnects by itself."""
    if min_position:
        await views.wait_for(min_position)
    settings = request.app.state.container.settings
    interval = settings.stream_interval_s
    lifetime = settings.stream_lifetime_s
    scope = Scope.of(principal)
    health = consumer_health_of(request, principal)
    first = await run_in_threadpool(live_payload, views, scope, health)

    async def events() -> AsyncIterator[str]:
        started = time.monotonic()
        last_sent = time.monotonic()
        sent = 0
        payload: dict[str, Any] | None = first
        last_key: tuple[int, int] | None = None
        yield "retry: 1000\n\n"
        while True:
            if payload is not None:
                key = (payload["generation"], payload["position"])
                if key != last_key:
                    last_key = key
                    data = json.dumps(to_jsonable_python(payload), separators=(",", ":"))
                    yield f"id: {payload['position']}\nevent: update\ndata: {data}\n\n"
                    sent += 1
                    last_sent = time.monotonic()
                    if max_events is not None and sent >= max_events:
                        return
            if (
                shutting_down()
                or time.monotonic() - started > lifetime
                or await request.is_disconnected()
            ):
                return
            await views.watch.changed(1.0)
            await asyncio.sleep(interval)
            if time.monotonic() - last_sent > 15:
                last_sent = time.monotonic()
                yield ": keep-alive\n\n"
            try:
                payload = await run_in_threadpool(live_payload, views, scope, health)
            except Exception as error:  # the database may be down for a moment
                log.warning("live stream read failed: %s", error)
                payload = None

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            POSITION_HEADER: str(first["position"]),
        },
    )
