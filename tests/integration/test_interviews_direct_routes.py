"""The command routes served directly (``entrypoints.direct_routes``) answer
exactly as FastAPI answers them: the same status, body and headers for every
refusal, the same shape for a success, and the request's log line, metrics and
server span still name the route and the status."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import uuid4

import httpx
import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.common.logs import configure_logging
from services.interviews.entrypoints.direct_routes import DirectRoutes
from tests.jobs import invite, register_job

pytestmark = pytest.mark.integration

# Headers that differ between any two requests, whoever answers them.
PER_REQUEST = {"x-request-id", "traceparent", "date"}


def direct_routes(api: TestClient) -> DirectRoutes:
    stack = api.app.middleware_stack  # type: ignore[attr-defined]
    assert stack is not None, "the app has answered a request"
    front = stack.app
    assert isinstance(front, DirectRoutes)
    return front


@contextmanager
def through_fastapi(api: TestClient) -> Iterator[None]:
    """While a dependency override is set, every request goes through FastAPI's
    own routing and dependency solving (the overrides are FastAPI's to apply)."""
    overrides = api.app.dependency_overrides  # type: ignore[attr-defined]
    overrides[through_fastapi] = through_fastapi
    try:
        yield
    finally:
        overrides.pop(through_fastapi)


def answer(response: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    headers = [(k, v) for k, v in response.headers.multi_items() if k not in PER_REQUEST]
    return response.status_code, response.content, headers


def both_ways(api: TestClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """The request answered directly and again through FastAPI: the same answer
    (for a request that changes nothing)."""
    direct = api.request(method, path, **kwargs)
    with through_fastapi(api):
        framework = api.request(method, path, **kwargs)
    assert answer(direct) == answer(framework), (direct.text, framework.text)
    return direct


def test_every_command_route_is_served_directly(api: TestClient, client: dict[str, str]) -> None:
    api.post(f"/interviews/{uuid4()}/accept", headers=client)
    served = {(m, r.path) for r in direct_routes(api).served for m in r.methods or ()}
    assert served == {
        ("POST", "/interviews"),
        *(
            ("POST", f"/interviews/{{interview_id}}/{action}")
            for action in (
                "accept",
                "decline",
                "start",
                "reschedule",
                "offer",
                "offer/accept",
                "offer/decline",
                "offer/withdraw",
                "cancel",
            )
        ),
        ("POST", "/jobs"),
        ("PUT", "/jobs/{job_id}"),
        ("PUT", "/jobs/{job_id}/policy"),
        ("POST", "/jobs/{job_id}/close"),
    }


@pytest.mark.parametrize(
    ("path", "content", "content_type", "status"),
    [
        ("/interviews", b'{"job_id": ', "application/json", 422),  # not JSON
        ("/interviews", b'{"job_id": "j", "freelancer_id": "f"}', "text/plain", 422),
        ("/interviews", b'{"job_id": "j", "freelancer_id": "f"}', None, 422),
        ("/interviews", b'{"job_id": "j", "freelancer_id": "f", "x": 1}', "application/json", 422),
        ("/interviews", b"", "application/json", 422),  # a required body missing
        ("/interviews", b"[]", "application/json", 422),
        ("/interviews", b"null", "application/json", 422),
        ("/interviews", b"\xff\xfe{}", "application/json", 422),  # not UTF-8
        ("/interviews", b'{"job_id": "j"}', "application/json; charset=utf-8", 422),
        ("/interviews/not-a-uuid/accept", b"", None, 422),
        ("/interviews/not-a-uuid/cancel", b'{"reason": "r"}', "application/json", 422),
        ("/interviews/{known}/cancel", b'{"reason": ""}', "application/json", 422),
        ("/interviews/{known}/cancel", b'{"reason": "r", "y": 2}', "application/json", 422),
        ("/interviews/{known}/accept", b'{"extra": true}', "application/json", 422),
        ("/interviews/{known}/offer", b'{"amount": "-1"}', "application/json", 422),
        ("/interviews/{known}/start", b'{"duration_minutes": 5}', "application/json", 422),
        ("/interviews/{unknown}/accept", b"", None, 404),
        ("/interviews/{unknown}/accept", b"null", "application/json", 404),
        ("/interviews/{unknown_hex}/decline", b"{}", "application/json", 404),
        ("/interviews/{known}/offer/accept", b"", None, 403),  # the client may not
        ("/interviews/{unknown}/cancel", b'{"reason": "r"}', "Application/JSON", 404),
        # Nested past the JSON parser's recursion limit, well under the body limit.
        ("/interviews", b"[" * 20_000 + b"]" * 20_000, "application/json", 422),
        (
            "/interviews/{known}/cancel",
            b'{"reason": ' * 5_000 + b"}" * 5_000,
            "application/json",
            422,
        ),
        ("/interviews", b'{"job_id": ' + b"9" * 5_000 + b"}", "application/json", 422),
    ],
)
def test_a_refused_command_gets_the_framework_s_answer(
    api: TestClient,
    client: dict[str, str],
    path: str,
    content: bytes,
    content_type: str | None,
    status: int,
) -> None:
    known = invite(api, client)["id"]
    unknown = uuid4()
    path = path.format(known=known, unknown=unknown, unknown_hex=unknown.hex)
    headers = {**client}
    if content_type is not None:
        headers["Content-Type"] = content_type
    before = api.get(f"/interviews/{known}", headers=client).json()["version"]

    refused = both_ways(api, "POST", path, content=content, headers=headers)

    assert refused.status_code == status, refused.text
    body = refused.json()
    assert set(body) >= {"code", "detail"} and body["detail"]
    assert api.get(f"/interviews/{known}", headers=client).json()["version"] == before


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "unauthorized"),
        ({"Authorization": "Bearer nonsense"}, 401, "unauthorized"),
        ({"Authorization": "Basic abc"}, 401, "unauthorized"),
        ({"role": "auditor"}, 403, "forbidden"),
        ({"Idempotency-Key": "has space"}, 422, "invalid_input"),
        ({"If-Match": "three"}, 422, "invalid_input"),
        ({"If-Match": '"99"'}, 412, "version_mismatch"),
    ],
)
def test_a_caller_or_header_refusal_gets_the_framework_s_answer(
    api: TestClient,
    client: dict[str, str],
    token: Any,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    known = invite(api, client)["id"]
    if headers.get("role"):
        headers = token("auditor-1", headers["role"])
    elif "Authorization" not in headers and headers:
        headers = {**client, **headers}

    refused = both_ways(
        api, "POST", f"/interviews/{known}/cancel", json={"reason": "r"}, headers=headers
    )

    assert (refused.status_code, refused.json()["code"]) == (status, code), refused.text


def test_a_job_path_that_breaks_its_pattern_gets_the_framework_s_answer(
    api: TestClient, client: dict[str, str]
) -> None:
    refused = both_ways(
        api, "PUT", "/jobs/-bad id/policy", json={"exclusive_hours": 2}, headers=client
    )
    assert refused.status_code == 422


def test_a_chunked_body_over_the_limit_is_refused_as_before(
    api: TestClient, client: dict[str, str]
) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"reason": "'
        for _ in range(70):
            yield b"x" * 1024
        yield b'"}'

    refused = api.post(
        f"/interviews/{uuid4()}/cancel",
        content=chunks(),
        headers={**client, "Content-Type": "application/json"},
    )

    assert refused.status_code == 413, refused.text
    assert refused.json()["code"] == "payload_too_large"


def test_a_command_answers_the_same_directly_and_through_the_framework(
    api: TestClient, client: dict[str, str], freelancer: dict[str, str]
) -> None:
    """Two interviews taken through the same steps, one answered directly, the
    other by FastAPI: the same headers, in the same order, and the same fields."""
    answers = [hiring_steps(api, client, freelancer)]
    with through_fastapi(api):
        answers.append(hiring_steps(api, client, freelancer))

    for direct, framework in zip(*answers, strict=True):
        assert direct.status_code == framework.status_code, (direct.text, framework.text)
        assert [k for k, _ in answer(direct)[2]] == [k for k, _ in answer(framework)[2]]
        assert direct.headers["etag"] == framework.headers["etag"]
        assert direct.headers.get("idempotent-replayed") == framework.headers.get(
            "idempotent-replayed"
        )
        assert set(direct.json()) == set(framework.json())
        assert direct.json()["status"] == framework.json()["status"]
        assert direct.json()["version"] == framework.json()["version"]
    assert [a.status_code for a in answers[0]] == [201, 201, 200, 200]
    assert answers[0][1].headers["idempotent-replayed"] == "true"


def hiring_steps(
    api: TestClient, client: dict[str, str], freelancer: dict[str, str]
) -> list[httpx.Response]:
    """Invite (with a key, twice), accept, start: the four answers."""
    job = f"job-{uuid4().hex[:8]}"
    register_job(api, job, "client-1")
    invited = api.post(
        "/interviews",
        json={"job_id": job, "freelancer_id": "freelancer-1"},
        headers={**client, "Idempotency-Key": f"k-{job}"},
    )
    iid = invited.json()["id"]
    replayed = api.post(
        "/interviews",
        json={"job_id": job, "freelancer_id": "freelancer-1"},
        headers={**client, "Idempotency-Key": f"k-{job}"},
    )
    accepted = api.post(f"/interviews/{iid}/accept", headers=freelancer)
    started = api.post(
        f"/interviews/{iid}/start", json={"duration_minutes": 45}, headers={**client}
    )
    return [invited, replayed, accepted, started]


def test_a_direct_command_s_log_line_metrics_and_span_name_its_route_and_status(
    api: TestClient, client: dict[str, str], spans: InMemorySpanExporter
) -> None:
    known = invite(api, client)["id"]
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    buffer = io.StringIO()
    configure_logging("INFO", "json", service="interviews", stream=buffer)
    spans.clear()
    try:
        cancelled = api.post(
            f"/interviews/{known}/cancel",
            json={"reason": "position filled"},
            headers={**client, "X-Correlation-Id": "corr-direct-1"},
        )
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.headers["traceparent"] and cancelled.headers["x-request-id"]
    lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    requests = [e for e in lines if e["logger"] == "http"]
    assert [(e["method"], e["route"], e["status"], e["correlation_id"]) for e in requests] == [
        ("POST", "/interviews/{interview_id}/cancel", 200, "corr-direct-1")
    ]
    server = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert [s.name for s in server] == ["POST /interviews/{interview_id}/cancel"]
    assert server[0].attributes is not None
    assert server[0].attributes["http.status_code"] == 200
    assert server[0].attributes["http.route"] == "/interviews/{interview_id}/cancel"
    assert cancelled.headers["traceparent"].split("-")[1] == format(
        server[0].context.trace_id, "032x"
    )
    metrics = api.get("/metrics").text
    assert (
        'http_requests_total{method="POST",route="/interviews/{interview_id}/cancel",'
        'status="200"} 1.0' in metrics
    )
