"""Intruders at every endpoint of every service (enumerated from the OpenAPI documents
the running services publish): bad tokens get 401, a token of the wrong role 403,
another user's resource 404 (or 403 where DESIGN says the caller is not allowed),
and no response to an intruder carries another user's data.

A victim's interview goes through invitation, acceptance, start and an offer, so
it exists in every service (event store, views, inbox) before the intruders come.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest

from services.notifications.rules import NOTIFICATION_TYPES
from tests.conftest import TEST_SECRET
from tests.jobs import register_job
from tests.support.notifications import WebhookReceiver
from tests.support.waiting import holds_within

from .harness import TALLY, Platform, bearer, fresh_databases

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.kafka,
    pytest.mark.filterwarnings("ignore:The HMAC key"),  # HS512 on purpose
]

PUBLIC = {"/healthz", "/readyz", "/metrics"}
WEBHOOK_PATHS = (
    "/webhooks/{webhook_id}",
    "/webhooks/{webhook_id}/rotate-secret",
    "/webhooks/{webhook_id}/redeliver",
)
JOB_COMMANDS = ("/jobs/{job_id}/policy", "/jobs/{job_id}/close")
TRANSITIONS = {
    "/interviews/{interview_id}/accept": None,
    "/interviews/{interview_id}/decline": {"reason": "no"},
    "/interviews/{interview_id}/start": {},
    "/interviews/{interview_id}/offer": {"amount": "10", "currency": "EUR", "rate_type": "fixed"},
    "/interviews/{interview_id}/offer/accept": None,
    "/interviews/{interview_id}/offer/decline": {"reason": "no"},
    "/interviews/{interview_id}/cancel": {"reason": "mine now"},
    "/interviews/{interview_id}/reschedule": {"scheduled_at": "2026-12-20T10:00:00Z"},
    "/interviews/{interview_id}/offer/withdraw": {"reason": "mine now"},
}


@dataclass(frozen=True)
class Who:
    """A caller with a valid token: a stranger, a reader, or a party claiming the wrong role."""

    name: str
    sub: str
    role: str

    @property
    def reader(self) -> bool:
        return self.role in ("auditor", "admin")


@dataclass
class World:
    urls: dict[str, str]  # service -> base URL
    victim: dict[str, str]  # what belongs to the victims
    secrets: list[str]  # strings no intruder may ever see
    intruders: list[Who]


def _raw_token(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return ".".join(
        [part(json.dumps(header).encode()), part(json.dumps(claims).encode()), part(signature)]
    )


def bad_credentials(victim: str) -> dict[str, dict[str, str]]:
    """Headers that must all be refused with 401, each naming the victim as subject."""
    now = int(time.time())
    claims = {"sub": victim, "role": "admin", "iat": now, "exp": now + 3600}
    auth = "Authorization"
    return {
        "no token": {},
        "empty bearer": {auth: "Bearer"},
        "basic auth": {auth: "Basic " + base64.b64encode(b"admin:admin").decode()},
        "garbage": {auth: "Bearer not.a.token"},
        "expired": {
            auth: "Bearer "
            + jwt.encode(claims | {"iat": now - 7200, "exp": now - 3600}, TEST_SECRET, "HS256")
        },
        "wrong signature": {auth: "Bearer " + jwt.encode(claims, "another-secret" * 3, "HS256")},
        "alg none": {auth: "Bearer " + _raw_token({"alg": "none", "typ": "JWT"}, claims)},
        "alg none, signed": {
            auth: "Bearer " + _raw_token({"alg": "none", "typ": "JWT"}, claims, b"sig")
        },
        "HS512 with the right secret": {auth: "Bearer " + jwt.encode(claims, TEST_SECRET, "HS512")},
        "unknown role": {auth: "Bearer " + jwt.encode(claims | {"role": "root"}, TEST_SECRET)},
        "no subject": {
            auth: "Bearer "
            + jwt.encode({k: v for k, v in claims.items() if k != "sub"}, TEST_SECRET)
        },
        "no expiry": {
            auth: "Bearer "
            + jwt.encode({k: v for k, v in claims.items() if k != "exp"}, TEST_SECRET)
        },
        "forged cookie": {"Cookie": "interviews_token=" + _raw_token({"alg": "none"}, claims)},
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("intruders")
    with (
        fresh_databases() as databases,
        Platform(tmp, kafka_bootstrap, databases, name="intruders") as platform,
    ):
        urls = platform.start_everything()
        receiver = WebhookReceiver().start()  # the victim's webhooks answer 200: none dies
        try:
            yield seed(urls, receiver.url)
        finally:
            receiver.stop()
        errors = platform.server_errors()
        TALLY.add(server_errors=errors)
        assert errors == 0, platform.logs()


def seed(urls: dict[str, str], receiver_url: str) -> World:
    tag = uuid.uuid4().hex[:8]
    vc, vf, job = f"victim-client-{tag}", f"victim-freelancer-{tag}", f"victim-job-{tag}"
    message = f"victim-secret-message-{tag}"
    hook, hook_secret = f"{receiver_url}/victim-hook-{tag}", f"victim-hook-secret-{tag}"
    iv = urls["interviews"]

    def ok(response: httpx.Response) -> dict[str, Any]:
        assert response.status_code in (200, 201), response.text
        return response.json()  # type: ignore[no-any-return]

    # Two webhooks of the victim: one to change, one to delete.
    webhook, doomed = (
        ok(
            httpx.post(
                urls["notifications"] + "/webhooks",
                json={"url": url, "secret": hook_secret, "event_types": list(NOTIFICATION_TYPES)},
                headers=bearer(vf, "freelancer"),
            )
        )["id"]
        for url in (hook, hook + "-doomed")
    )
    register_job(httpx, job, vc, base_url=iv)
    body = {"job_id": job, "freelancer_id": vf, "message": message}
    interview = ok(httpx.post(iv + "/interviews", json=body, headers=bearer(vc, "client")))["id"]
    ok(httpx.post(f"{iv}/interviews/{interview}/accept", headers=bearer(vf, "freelancer")))
    ok(httpx.post(f"{iv}/interviews/{interview}/start", json={}, headers=bearer(vc, "client")))
    offer = {"amount": "4321.99", "currency": "EUR", "rate_type": "fixed", "message": message}
    last = ok(
        httpx.post(f"{iv}/interviews/{interview}/offer", json=offer, headers=bearer(vc, "client"))
    )
    # The intruders have an interview of their own, so their lists are not trivially empty.
    ic, if_ = f"intruder-client-{tag}", f"intruder-freelancer-{tag}"
    own = {"job_id": f"intruder-job-{tag}", "freelancer_id": if_}
    register_job(httpx, own["job_id"], ic, base_url=iv)
    ok(httpx.post(iv + "/interviews", json=own, headers=bearer(ic, "client")))

    auditor = bearer(f"auditor-{tag}", "auditor")
    assert holds_within(
        lambda: (
            httpx.get(
                f"{urls['projections']}/views/interviews/{interview}",
                params={"min_position": last["position"]},
                headers=auditor,
            ).status_code
            == 200
        ),
        60,
        0.3,
    ), "the victim's interview never reached the views"
    inbox: list[dict[str, Any]] = []

    def notified() -> bool:
        inbox[:] = ok(httpx.get(urls["notifications"] + "/notifications",
                                headers=bearer(vf, "freelancer")))["items"]  # fmt: skip
        return len(inbox) >= 2

    assert holds_within(notified, 60, 0.3), "the victim was never notified"
    victim = {
        "client": vc,
        "freelancer": vf,
        "job": job,
        "interview": interview,
        "notification": inbox[0]["id"],
        "notification_owner": vf,
        "webhook": webhook,
        "doomed_webhook": doomed,
    }
    secrets = [vc, vf, job, interview, message, hook, hook_secret, "4321.99", webhook, doomed]
    secrets += [n["id"] for n in inbox]
    intruders = [
        Who("stranger client", ic, "client"),
        Who("stranger freelancer", if_, "freelancer"),
        Who("auditor", f"auditor-{tag}", "auditor"),
        Who("admin", f"admin-{tag}", "admin"),
        Who("victim client claiming freelancer", vc, "freelancer"),
        Who("victim freelancer claiming client", vf, "client"),
        Who("the marketplace's job service", f"service-{tag}", "service"),
    ]
    return World(urls, victim, secrets, intruders)


# ------------------------------------------------------------------ the endpoints


@dataclass(frozen=True)
class Endpoint:
    service: str
    method: str
    path: str
    declared_security: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.service} {self.method} {self.path}"


def endpoints(world: World) -> list[Endpoint]:
    found = []
    for service, url in world.urls.items():
        spec = httpx.get(url + "/openapi.json").json()
        schemes = spec.get("components", {}).get("securitySchemes", {})
        for path, operations in spec["paths"].items():
            for method, operation in operations.items():
                declared = tuple(
                    f"{schemes.get(name, {}).get('type')}/{schemes.get(name, {}).get('scheme')}"
                    for requirement in operation.get("security", [])
                    for name in requirement
                )
                found.append(Endpoint(service, method.upper(), path, declared))
    return found


def request_for(world: World, e: Endpoint, who: Who | None) -> tuple[str, Any, dict[str, Any]]:
    """URL, JSON body and query of a well-formed request, aimed at the victim's things."""
    v = world.victim
    path = (
        e.path.replace("{interview_id}", v["interview"])
        .replace("{job_id}", v["job"])
        .replace("{notification_id}", v["notification"])
        .replace("{webhook_id}", v["doomed_webhook" if e.method == "DELETE" else "webhook"])
        .replace("{erasure_id}", "00000000-0000-4000-8000-000000000000")  # none such
        .replace("{key_id}", "00000000-0000-4000-8000-000000000000")
    )
    assert "{" not in path, f"{e}: a path parameter the intruder test does not know"
    body: Any = None
    query: dict[str, Any] = {}
    key = (e.method, e.path)
    if e.path == "/interviews":
        body = {"job_id": v["job"], "freelancer_id": v["freelancer"], "message": "let me in"}
    elif e.path in TRANSITIONS:
        body = TRANSITIONS[e.path]
    elif e.path == "/jobs/{job_id}/policy":
        body = {"exclusive_hours": 1}
    elif key == ("POST", "/jobs"):
        body = {"title": "a job of my own"}
    elif key == ("PUT", "/jobs/{job_id}"):
        body = {"client_id": who.sub if who else "anonymous"}  # take the victim's job
    elif e.path == "/jobs/{job_id}/close":
        body = {"reason": "closing someone else's job"}
    elif e.path == "/webhooks" and e.method == "POST":
        name = who.name.replace(" ", "-") if who else "anonymous"
        body = {"url": f"http://127.0.0.1:9/{name}", "secret": "s" * 24,
                "event_types": ["interview.invited"]}  # fmt: skip
    elif e.path == "/webhooks/{webhook_id}" and e.method == "PATCH":
        body = {"event_types": list(NOTIFICATION_TYPES)}
    elif e.path == "/webhooks/{webhook_id}/rotate-secret":
        body = {"secret": "rotated-secret-" + "r" * 16}
    elif e.path == "/webhooks/{webhook_id}/redeliver":
        body = {"notification_id": v["notification"]}
    elif key == ("PUT", "/me/preferences"):
        body = {"time_zone": "Europe/Berlin"}  # the caller's own
    elif key == ("POST", "/admin/erasures"):
        # Someone who wrote nothing: an admin's erasure of them is harmless here.
        body = {"subject_id": "nobody-" + (who.name.replace(" ", "-") if who else "anonymous"),
                "reason": "intruder test"}  # fmt: skip
    elif key == ("GET", "/internal/erasures"):
        query = {"service": "projections"}
    elif e.path == "/internal/erasures/{erasure_id}/done":
        body = {"service": "projections"}
    elif e.path == "/audit/interviews/{interview_id}/state":
        query = {"version": 1}
    elif e.path == "/views/stream":
        query = {"max_events": 1}
    return world.urls[e.service] + path, body, query


def expected_status(world: World, e: Endpoint, who: Who) -> int:
    """DESIGN: 403 not allowed for this caller, 404 another user's (or unknown) resource;
    readers (auditors, admins) read everything and change nothing."""
    key = (e.method, e.path)
    stranger = who.sub not in (world.victim["client"], world.victim["freelancer"])
    if e.path in PUBLIC:
        return 200
    if key == ("POST", "/interviews") or e.path in JOB_COMMANDS:
        # Only clients act on jobs (readers change nothing); to another client
        # the victim's job does not exist.
        return 404 if who.role == "client" else 403
    if key == ("POST", "/jobs"):
        return 201 if who.role == "client" else 403  # a job of their own
    if key == ("PUT", "/jobs/{job_id}"):
        # Registrars may register jobs, never take the victim's.
        return 409 if who.role in ("service", "admin") else 403
    if key == ("GET", "/jobs/{job_id}"):
        return 200 if who.role in ("auditor", "admin", "service") else 404
    if e.path in TRANSITIONS:
        return 403 if who.reader or not stranger else 404
    if key == ("GET", "/audit/events"):
        return 200 if who.reader else 403
    if e.path == "/interviews/{interview_id}/calendar.ics":
        return 404  # the two parties only: readers and wrong roles included
    if e.path.startswith(
        ("/interviews/", "/audit/", "/views/interviews/", "/views/jobs/", "/dashboard/interviews/")
    ):
        return 200 if who.reader else 404
    if key == ("GET", "/views/consumer"):
        return 200 if who.reader else 403  # it tells how busy the whole platform is
    if e.path in ("/views/interviews", "/views/stats", "/views/stream", "/dashboard"):
        return 200  # the caller's own scope
    if key in (("GET", "/notifications"), ("GET", "/webhooks")):
        return 200  # the caller's own
    if e.path == "/me/preferences":
        return 200  # the caller's own time zone, whatever the role
    if key == ("POST", "/webhooks"):
        return 201 if who.role in ("client", "freelancer") else 403
    if e.path == "/notifications/{notification_id}/read":
        return 200 if who.sub == world.victim["notification_owner"] else 404
    if e.path.startswith("/webhooks/{webhook_id}"):
        # Webhooks belong to their owner's id, whatever role a token claims.
        owner = who.sub == world.victim["notification_owner"]
        ok = {"DELETE": 204, "PATCH": 200}.get(e.method, 202 if "redeliver" in e.path else 200)
        return ok if owner else 404
    if key == ("POST", "/admin/erasures"):
        return 202 if who.role == "admin" else 403
    if key == ("GET", "/admin/erasures/{erasure_id}"):
        return 404 if who.role == "admin" else 403  # no such erasure
    if e.path.startswith("/internal/"):
        # The platform's consumers only: never another marketplace service, an
        # admin or a party (the intruders' ``service`` token is the job service's).
        return 403
    raise AssertionError(f"{e}: add this endpoint to the intruder test's expectations")


def leaks(world: World, text: str, asked: str, who: Who | None, e: Endpoint) -> list[str]:
    """Victim data in a response that the caller did not send and may not see."""
    own = ("/notifications", "/notifications/{notification_id}/read", "/webhooks")
    own += tuple(p for p in WEBHOOK_PATHS)
    if who is not None and who.reader and e.path not in own:
        return []  # readers see every interview (but never anyone's inbox or webhooks)
    if who is not None and who.role == "service" and e.path == "/jobs/{job_id}":
        return []  # the job service sees who owns every job (and nothing else)
    victims = (world.victim["client"], world.victim["freelancer"])
    if who is not None and who.sub in victims and e.path in own:
        return []  # the victim's own inbox, whatever role the token claims
    mine = who.sub if who is not None else None
    return [s for s in world.secrets if s in text and s not in asked and s != mine]


def send(
    client: httpx.Client,
    method: str,
    url: str,
    body: Any,
    query: dict[str, Any],
    headers: dict[str, str],
) -> httpx.Response:
    client.cookies.clear()  # a cookie set by one answer must not authenticate the next
    if method == "GET":
        return client.get(url, params=query, headers=headers)
    return client.request(method, url, params=query, json=body, headers=headers)


def test_every_endpoint_refuses_bad_tokens_wrong_roles_and_other_users(world: World) -> None:
    found = endpoints(world)
    assert len(found) >= 25, [str(e) for e in found]
    wrong: list[str] = []
    tried = 0
    server_errors = 0

    def check(e: Endpoint, who: Who | None, label: str, headers: dict[str, str], want: int) -> None:
        nonlocal tried, server_errors
        url, body, query = request_for(world, e, who)
        response = send(client, e.method, url, body, query, headers)
        tried += 1
        asked = url + json.dumps(body) + json.dumps(query)
        if response.status_code >= 500:
            server_errors += 1
        problem = None
        if response.status_code != want:
            problem = f"answered {response.status_code}, expected {want}"
        leaked = leaks(world, response.text, asked, who, e)
        if leaked:
            problem = f"{problem or 'answered ' + str(response.status_code)}; leaked {leaked}"
        if problem:
            wrong.append(f"{e} [{label}]: {problem}: {response.text[:200]}")
            if 200 <= response.status_code < 300 and want >= 400 or leaked:
                TALLY.add(unauthorized=1)

    with httpx.Client(timeout=30) as client:
        for e in found:
            if e.path in PUBLIC:
                check(e, None, "no token", {}, 200)
                continue
            for label, headers in bad_credentials(world.victim["client"]).items():
                check(e, None, label, headers, 401)
            for who in world.intruders:
                want = expected_status(world, e, who)
                check(e, who, who.name, bearer(who.sub, who.role), want)

    TALLY.add(bad_inputs=tried, server_errors=server_errors)
    print(f"intruders: {tried} requests to {len(found)} endpoints")
    assert not wrong, f"{len(wrong)} of {tried} intrusions not refused as DESIGN says:\n" + (
        "\n".join(wrong[:60])
    )


def test_every_openapi_document_declares_the_bearer_scheme_where_a_token_is_needed(
    world: World,
) -> None:
    """Generated clients and API explorers learn from the documents which
    operations need ``Authorization: Bearer <JWT>`` (the others are health checks)."""
    wrong = [
        f"{e}: declares {list(e.declared_security)}"
        for e in endpoints(world)
        # Health checks declare nothing; the rest at least the bearer scheme
        # (the projections also accept the dashboard's cookie).
        if (e.declared_security if e.path in PUBLIC else "http/bearer" not in e.declared_security)
    ]
    assert not wrong, wrong


def test_the_dashboard_refuses_a_bad_token_in_its_query_and_sets_no_cookie(world: World) -> None:
    now = int(time.time())
    claims = {"sub": world.victim["client"], "role": "admin", "iat": now, "exp": now + 60}
    for token in (
        _raw_token({"alg": "none"}, claims),
        jwt.encode(claims, "another-secret" * 3, "HS256"),
        jwt.encode(claims | {"exp": now - 10}, TEST_SECRET, "HS256"),
    ):
        page = httpx.get(world.urls["projections"] + "/dashboard", params={"access_token": token})
        TALLY.add(bad_inputs=1)
        assert page.status_code == 401 and "set-cookie" not in page.headers, page.text[:200]
        assert not [s for s in world.secrets if s in page.text]
