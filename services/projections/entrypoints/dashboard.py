"""``GET /dashboard``: the page a hiring team and a freelancer open every day.

Read-only pages over the projection API, kept live over SSE. No build step, no
CDN: the server sends a small HTML shell with the caller's data as JSON
(the same payload ``/views/stream`` sends), and vanilla JavaScript (served
inline) renders it in the viewer's time zone and re-renders on every
``update`` event.

- a client ("My Jobs"): a candidate board per job (columns are states; a card
  says who must act next, the deadline and the scheduled time), the interviews
  of the next 7 days, and invitations and offers expiring within 48 hours;
- a freelancer ("Interviews"): what they must answer and by when, what is
  coming up, the rest of their interviews;
- auditors and admins ("Platform"): the platform's figures and the health of
  the views' consumer (lag, parked and dead-lettered events);
- ``/dashboard/interviews/{id}``: one interview's timeline, for its two
  parties, auditors and admins (anyone else gets 404).

Times read like a person wrote them ("Tue 8 Dec, 15:00 CET", "in 5 h") in
the browser's zone, or in ``?tz=`` (an IANA name). Internal log positions and
raw UUIDs are never shown as text.

Browsers cannot put a bearer token on a page load or an EventSource, so
``/dashboard?access_token=...`` stores the token in an HttpOnly, SameSite
cookie and redirects to ``/dashboard``; the views accept that cookie too.
"""

from __future__ import annotations

import html
import json
from functools import cache
from importlib.resources import files
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic_core import to_jsonable_python
from starlette.concurrency import run_in_threadpool

from ...common.auth import AuthError, Principal, decode_token
from ...common.web import ERROR_RESPONSES, ApiError
from ..adapters import queries
from ..adapters.queries import Scope
from . import schemas
from .api import (
    POSITION_HEADER,
    TOKEN_COOKIE,
    BearerCredentials,
    DashboardCookie,
    MinPosition,
    Views,
    authenticate,
    consumer_health_of,
    live_payload,
)

router = APIRouter(tags=["dashboard"])

TITLES = {
    "client": "My Jobs",
    "freelancer": "Interviews",
    "auditor": "Platform",
    "admin": "Platform",
}
TzQuery = Annotated[
    str | None,
    Query(
        max_length=64,
        description="IANA time zone to show times in (default: the browser's), e.g. Europe/Berlin",
    ),
]
PAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or bad token: the sign-in page", "content": {"text/html": {}}},
    422: ERROR_RESPONSES[422],
    503: ERROR_RESPONSES[503],
}


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _checked_zone(tz: str | None) -> str | None:
    if not tz:
        return None
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ApiError(422, "invalid_input", f"tz: {tz!r} is not an IANA time zone") from None
    return tz


@router.get(
    "/dashboard",
    response_class=HTMLResponse,
    summary="The dashboard (HTML, live): My Jobs, Interviews or Platform by role",
    responses={303: {"description": "token stored in a cookie"}, **PAGE_RESPONSES},
)
async def dashboard(
    request: Request,
    views: Views,
    credentials: BearerCredentials,
    cookie: DashboardCookie,
    access_token: Annotated[str | None, Query(max_length=4096)] = None,
    tz: TzQuery = None,
    min_position: MinPosition = None,
) -> Response:
    """Clients see their jobs' candidate boards, what is coming up and what
    expires soon; freelancers their interviews and what they must answer;
    auditors and admins the platform's figures and the consumer's health."""
    tz = _checked_zone(tz)
    if access_token is not None:
        try:
            decode_token(request.app.state.auth_secret, access_token)
        except AuthError as error:
            return HTMLResponse(_login_page(str(error)), status_code=401)
        target = "/dashboard" + (f"?{urlencode({'tz': tz})}" if tz else "")
        redirect = RedirectResponse(target, status_code=303)
        redirect.set_cookie(
            TOKEN_COOKIE,
            access_token,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return redirect
    try:
        principal = authenticate(request, credentials, cookie)
    except ApiError as error:
        return HTMLResponse(_login_page(error.detail), status_code=401)
    if min_position:
        await views.wait_for(min_position)
    payload = await run_in_threadpool(
        live_payload, views, Scope.of(principal), consumer_health_of(request, principal)
    )
    page = render(principal, payload, tz=tz)
    return HTMLResponse(page, headers={POSITION_HEADER: str(payload["position"])})


@router.get(
    "/dashboard/interviews/{interview_id}",
    response_class=HTMLResponse,
    summary="One interview's page (HTML, live): where it stands and its timeline",
    responses={404: {"description": "no such interview for this caller"}, **PAGE_RESPONSES},
)
async def interview_page(
    request: Request,
    views: Views,
    credentials: BearerCredentials,
    cookie: DashboardCookie,
    interview_id: Annotated[str, Path(max_length=64)],
    tz: TzQuery = None,
) -> Response:
    """For the interview's client and freelancer, auditors and admins; anyone
    else (and an id that is not one) gets 404, without learning whether it exists."""
    tz = _checked_zone(tz)
    try:
        principal = authenticate(request, credentials, cookie)
    except ApiError as error:
        return HTMLResponse(_login_page(error.detail), status_code=401)
    try:
        key = str(UUID(interview_id))
    except ValueError:
        return HTMLResponse(_not_found_page(principal), status_code=404)
    snapshot = await run_in_threadpool(
        views.read,
        lambda conn, tables: queries.get_interview(conn, tables, Scope.of(principal), key),
    )
    if snapshot.value is None:
        return HTMLResponse(_not_found_page(principal), status_code=404)
    row, timeline = snapshot.value
    page = render(principal, schemas.interview_detail(row, timeline), tz=tz, interview_id=key)
    return HTMLResponse(page, headers={POSITION_HEADER: str(snapshot.position)})


def render(
    principal: Principal,
    payload: dict[str, Any],
    *,
    tz: str | None = None,
    interview_id: str | None = None,
) -> str:
    """The page shell; the script renders ``payload`` for the viewer's role."""
    title = TITLES.get(principal.role, "Interviews")
    boot = {
        "role": principal.role,
        "me": principal.id,
        "tz": tz,
        "interview_id": interview_id,
        "payload": payload,
    }
    initial = json.dumps(to_jsonable_python(boot), separators=(",", ":")).replace("</", "<\\/")
    heading = "Interview" if interview_id else title
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(heading)} · Hiring</title><style>{_asset("dashboard.css")}</style></head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top" role="banner"><div class="bar">
<a class="brand" href="/dashboard{_tz_query(tz)}">Hiring <span>{_e(title)}</span></a>
<nav id="nav" aria-label="Sections"></nav>
<div class="status"><span id="who" class="who"></span>
<span id="live" class="live" role="status" aria-live="polite">connecting…</span></div>
</div></header>
<main id="main" tabindex="-1"><div id="view"><h1>{_e(heading)}</h1>
<noscript><p>This page needs JavaScript to show your data.</p></noscript></div></main>
<script id="initial" type="application/json">{initial}</script>
<script>{_asset("dashboard.js")}</script>
</body></html>"""


def _tz_query(tz: str | None) -> str:
    return f"?{urlencode({'tz': tz})}" if tz else ""


def _not_found_page(principal: Principal) -> str:
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Not found · Hiring</title><style>{_asset("dashboard.css")}</style></head><body>
<main id="main"><div id="view"><h1>Not found</h1>
<p class="muted">There is no interview here that you may see.</p>
<p><a href="/dashboard">Back to {_e(TITLES.get(principal.role, "the dashboard"))}</a></p>
</div></main></body></html>"""


def _login_page(reason: str) -> str:
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · Hiring</title><style>{_asset("dashboard.css")}</style></head><body>
<main id="main"><div id="view"><h1>Hiring dashboard</h1><p class="muted">{_e(reason)}</p>
<form method="get" action="/dashboard"><label>Access token
<input name="access_token" autocomplete="off" size="50"></label>
<button type="submit">Open</button></form>
<p class="muted">Development token: <code>interviewctl token --sub ID --role client</code></p>
</div></main></body></html>"""


@cache
def _asset(name: str) -> str:
    """The page's stylesheet or script, shipped beside this module (read once)."""
    return (files(__name__.rpartition(".")[0]) / name).read_text(encoding="utf-8")
