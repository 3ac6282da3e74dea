"""``GET /dashboard``: a hiring team's page, server-rendered, kept live over SSE.

No build step and no CDN: the HTML is rendered here with the caller's
figures, and a few lines of vanilla JavaScript (served inline) apply the
``update`` events of ``/views/stream``.

Browsers cannot put a bearer token on a page load or an EventSource, so
``/dashboard?access_token=...`` stores the token in an HttpOnly, SameSite
cookie and redirects to ``/dashboard``; the views accept that cookie too.
"""

from __future__ import annotations

import html
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic_core import to_jsonable_python
from starlette.concurrency import run_in_threadpool

from ...common.auth import AuthError, decode_token
from ...common.web import ERROR_RESPONSES, ApiError
from ..adapters.queries import Scope
from .api import (
    POSITION_HEADER,
    TOKEN_COOKIE,
    BearerCredentials,
    DashboardCookie,
    MinPosition,
    Views,
    authenticate,
    live_payload,
)

router = APIRouter(tags=["dashboard"])

STATUS_LABELS = {
    "invited": "Invited",
    "accepted": "Accepted",
    "in_progress": "In progress",
    "offer_extended": "Offer extended",
    "hired": "Hired",
    "declined": "Declined",
    "cancelled": "Cancelled",
    "expired": "Expired",
}
STAGE_LABELS = {
    "invited": "Invited",
    "accepted": "Accepted",
    "started": "Started",
    "offer": "Offer",
    "hired": "Hired",
}


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def percent(rate: float | None) -> str:
    return "–" if rate is None else f"{rate * 100:.1f}%"


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


@router.get(
    "/dashboard",
    response_class=HTMLResponse,
    summary="The hiring dashboard (HTML, live)",
    responses={
        303: {"description": "token stored in a cookie"},
        401: {"description": "no or bad token: the sign-in page", "content": {"text/html": {}}},
        422: ERROR_RESPONSES[422],
        503: ERROR_RESPONSES[503],
    },
)
async def dashboard(
    request: Request,
    views: Views,
    credentials: BearerCredentials,
    cookie: DashboardCookie,
    access_token: Annotated[str | None, Query(max_length=4096)] = None,
    min_position: MinPosition = None,
) -> Response:
    """The caller's figures (clients: their jobs; freelancers: their own
    interviews; auditors and admins: everything), live."""
    if access_token is not None:
        try:
            decode_token(request.app.state.auth_secret, access_token)
        except AuthError as error:
            return HTMLResponse(_login_page(str(error)), status_code=401)
        redirect = RedirectResponse("/dashboard", status_code=303)
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
    payload = await run_in_threadpool(live_payload, views, Scope.of(principal))
    page = render(payload, f"{principal.role} {principal.id}")
    return HTMLResponse(page, headers={POSITION_HEADER: str(payload["position"])})


def _login_page(reason: str) -> str:
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Hiring dashboard: sign in</title><style>{CSS}</style></head><body>
<main><h1>Hiring dashboard</h1><p class="muted">{_e(reason)}</p>
<form method="get" action="/dashboard"><label>Access token
<input name="access_token" autocomplete="off" size="60"></label>
<button type="submit">Open</button></form>
<p class="muted">Development token: <code>interviewctl token --sub ID --role auditor</code></p>
</main></body></html>"""


def render(payload: dict[str, Any], who: str) -> str:
    stats = payload["stats"]
    cards = "".join(
        f'<div class="card s-{s}"><div class="label">{label}</div>'
        f'<div class="num" id="count-{s}">{stats["by_status"].get(s, 0)}</div></div>'
        for s, label in STATUS_LABELS.items()
    )
    top = max((st["count"] for st in stats["funnel"]), default=0) or 1
    funnel = "".join(
        f"<tr><th>{STAGE_LABELS[st['stage']]}</th>"
        f'<td class="bar"><span id="bar-{st["stage"]}" '
        f'style="width:{st["count"] * 100 / top:.1f}%"></span></td>'
        f'<td class="n" id="funnel-{st["stage"]}">{st["count"]}</td>'
        f'<td class="n" id="rate-{st["stage"]}">{percent(st["rate_from_previous"])}</td></tr>'
        for st in stats["funnel"]
    )
    reasons = "".join(
        f"<li>{_e(r['reason'])} <b>{r['count']}</b></li>"
        for r in stats["cancellations"]["by_reason"]
    )
    parties = ", ".join(
        f"{_e(k)} {v}" for k, v in sorted(stats["cancellations"]["by_party"].items())
    )
    recent = "".join(_recent_item(item) for item in payload["recent"])
    initial = json.dumps(to_jsonable_python(payload), separators=(",", ":")).replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Hiring dashboard</title><style>{CSS}</style></head>
<body><main>
<header><h1>Hiring dashboard</h1>
<div class="muted">{_e(who)} · position <span id="position">{payload["position"]}</span>
· <span id="live" class="live">connecting…</span></div></header>
<section><h2>Interviews by status <small>(total <span id="total">{stats["total"]}</span>,
open <span id="open">{stats["open"]}</span>)</small></h2>
<div class="cards">{cards}</div></section>
<div class="cols">
<section><h2>Funnel</h2><table class="funnel">
<thead><tr><th></th><th></th><th>count</th><th>conversion</th></tr></thead>
<tbody>{funnel}</tbody></table></section>
<section><h2>Time to hire</h2>
<div class="cards"><div class="card"><div class="label">Median invitation → hire</div>
<div class="num" id="median-hire">{duration(stats["time_to_hire"]["median_seconds"])}</div>
<div class="muted"><span id="hires">{stats["time_to_hire"]["count"]}</span> hires</div></div>
<div class="card"><div class="label">Median invitation → acceptance</div>
<div class="num" id="median-accept">{duration(stats["time_to_accept"]["median_seconds"])}</div>
<div class="muted"><span id="accepts">{stats["time_to_accept"]["count"]}</span> accepted</div>
</div></div>
<h2>Cancellations</h2><p>by party: <span id="cancel-parties">{parties or "–"}</span></p>
<ul id="cancel-reasons">{reasons}</ul></section>
</div>
<section><h2>Recent activity</h2><ol id="recent">{recent}</ol></section>
</main>
<script id="initial" type="application/json">{initial}</script>
<script>{JS}</script>
</body></html>"""


def _recent_item(item: dict[str, Any]) -> str:
    kind = str(item["type"]).removeprefix("interview.").replace("_", " ")
    return (
        f"<li><time>{_e(item['occurred_at'])}</time> <b>{_e(kind)}</b> "
        f"job {_e(item['job_id'])} · freelancer {_e(item['freelancer_id'])} "
        f'<span class="muted">by {_e(item["actor_role"])} · #{_e(item["position"])}</span></li>'
    )


CSS = """
body{font:15px/1.4 system-ui,sans-serif;margin:0;background:#f5f6f8;color:#1c2430}
main{max-width:1100px;margin:0 auto;padding:16px 24px}
h1{margin:0 0 4px;font-size:24px}h2{font-size:17px;margin:20px 0 8px}
header{display:flex;justify-content:space-between;align-items:baseline;flex-wrap:wrap}
.muted{color:#667085;font-size:13px}.live{font-weight:600}
.live.on{color:#16803c}.live.off{color:#b42318}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{background:#fff;border:1px solid #e3e6ea;border-radius:8px;padding:10px 14px;min-width:110px}
.card .label{font-size:12px;color:#667085}.card .num{font-size:26px;font-weight:650}
.s-hired .num{color:#16803c}.s-cancelled .num,.s-expired .num,.s-declined .num{color:#8a94a6}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:24px}
table.funnel{width:100%;border-collapse:collapse;background:#fff}
.funnel th,.funnel td{padding:6px 8px;border-bottom:1px solid #eef0f3;text-align:left}
.funnel td.n{text-align:right;font-variant-numeric:tabular-nums;width:80px}
.funnel td.bar{width:55%}.funnel td.bar span{display:block;height:14px;background:#3b6fd8;
border-radius:3px;min-width:2px;transition:width .3s}
ol#recent{background:#fff;border:1px solid #e3e6ea;border-radius:8px;padding:8px 8px 8px 36px}
ol#recent li{padding:3px 0}time{color:#667085;font-size:12px}
@media (max-width:800px){.cols{grid-template-columns:1fr}}
"""

JS = r"""
(function () {
  "use strict";
  var byId = function (id) { return document.getElementById(id); };
  var setText = function (id, value) { var el = byId(id); if (el) el.textContent = value; };
  function duration(s) {
    if (s === null || s === undefined) return "\u2013";
    if (s < 90) return s.toFixed(0) + " s";
    if (s < 5400) return (s / 60).toFixed(1) + " min";
    if (s < 172800) return (s / 3600).toFixed(1) + " h";
    return (s / 86400).toFixed(1) + " d";
  }
  function percent(r) {
    return r === null || r === undefined ? "\u2013" : (r * 100).toFixed(1) + "%";
  }
  function apply(p) {
    var st = p.stats;
    setText("position", p.position);
    setText("total", st.total);
    setText("open", st.open);
    Object.keys(st.by_status).forEach(function (k) { setText("count-" + k, st.by_status[k]); });
    var top = 1;
    st.funnel.forEach(function (f) { top = Math.max(top, f.count); });
    st.funnel.forEach(function (f) {
      setText("funnel-" + f.stage, f.count);
      setText("rate-" + f.stage, percent(f.rate_from_previous));
      var bar = byId("bar-" + f.stage);
      if (bar) bar.style.width = (f.count * 100 / top).toFixed(1) + "%";
    });
    setText("median-hire", duration(st.time_to_hire.median_seconds));
    setText("hires", st.time_to_hire.count);
    setText("median-accept", duration(st.time_to_accept.median_seconds));
    setText("accepts", st.time_to_accept.count);
    var parties = Object.keys(st.cancellations.by_party).sort().map(function (k) {
      return k + " " + st.cancellations.by_party[k];
    });
    setText("cancel-parties", parties.length ? parties.join(", ") : "\u2013");
    var reasons = byId("cancel-reasons");
    reasons.replaceChildren.apply(reasons, st.cancellations.by_reason.map(function (r) {
      var li = document.createElement("li"), b = document.createElement("b");
      li.textContent = (r.reason === null ? "" : r.reason) + " ";
      b.textContent = r.count; li.appendChild(b); return li;
    }));
    var recent = byId("recent");
    recent.replaceChildren.apply(recent, p.recent.map(function (e) {
      var li = document.createElement("li"), t = document.createElement("time");
      var b = document.createElement("b"), m = document.createElement("span");
      t.textContent = e.occurred_at;
      b.textContent = e.type.replace("interview.", "").replace(/_/g, " ");
      m.className = "muted";
      m.textContent = "by " + e.actor_role + " \u00b7 #" + e.position;
      li.append(t, " ", b, " job " + e.job_id + " \u00b7 freelancer " + e.freelancer_id + " ", m);
      return li;
    }));
  }
  var live = byId("live");
  function connect() {
    var source = new EventSource("/views/stream");
    source.addEventListener("open", function () {
      live.textContent = "live"; live.className = "live on";
    });
    source.addEventListener("update", function (ev) { apply(JSON.parse(ev.data)); });
    source.addEventListener("error", function () {
      live.textContent = "reconnecting…"; live.className = "live off";
    });
  }
  if (window.EventSource) connect(); else live.textContent = "no live updates in this browser";
  window.__dashboardApply = apply;
})();
"""
