"""One trace per command, in one process (``interviewctl up``, the embedded
default): the request, the store write, each consumer's apply and the delivery
share the command's trace id; every response carries its ``traceparent``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.common.auth import mint_token
from services.common.logs import trace_id_from
from services.platform import create_platform_app
from tests.conftest import GIVEN_TRACEPARENT, TEST_SECRET
from tests.jobs import register_job
from tests.reliability.harness import free_port
from tests.support.notifications import WebhookReceiver
from tests.support.waiting import wait_until

GIVEN = GIVEN_TRACEPARENT


def auth(sub: str, role: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + mint_token(TEST_SECRET, sub, role, 600)}


@pytest.fixture
def embedded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[TestClient]:
    for name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "OTEL_TRACES_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AUTH_SECRET", TEST_SECRET)
    monkeypatch.setenv("WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")
    monkeypatch.setenv("DELIVERY_POLL_SECONDS", "0.1")
    with TestClient(create_platform_app()) as http:
        yield http


def names_in(spans: InMemorySpanExporter, trace_id: int) -> list[str]:
    return [s.name for s in spans.get_finished_spans() if s.context.trace_id == trace_id]


def by_name(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name == name]


def test_every_response_of_every_service_carries_its_traceparent(
    spans: InMemorySpanExporter, embedded: TestClient
) -> None:
    client = auth("client-1", "client")
    answers = {
        "healthz": embedded.get("/healthz"),
        "no token": embedded.get("/interviews/00000000-0000-0000-0000-000000000000"),
        "unknown": embedded.get("/interviews/00000000-0000-0000-0000-000000000000", headers=client),
        "bad input": embedded.post("/interviews", json={"job_id": ""}, headers=client),
        "views": embedded.get("/views/stats", headers=client),
        "inbox": embedded.get("/notifications", headers=client),
        "no route": embedded.get("/nowhere"),
    }

    missing = {
        name: r.status_code for name, r in answers.items() if not r.headers.get("traceparent")
    }
    assert missing == {}
    trace_ids = {trace_id_from(r.headers["traceparent"]) for r in answers.values()}
    assert None not in trace_ids
    assert len(trace_ids) == len(answers), "each request is a trace of its own"
    server_spans = {f"{s.context.trace_id:032x}" for s in spans.get_finished_spans()}
    assert trace_ids <= server_spans, "the traceparent names a span that was recorded"


def test_a_caller_s_traceparent_is_continued(
    spans: InMemorySpanExporter, embedded: TestClient
) -> None:
    answer = embedded.get("/healthz", headers={"traceparent": GIVEN})

    assert trace_id_from(answer.headers["traceparent"]) == trace_id_from(GIVEN)
    assert answer.headers["traceparent"] != GIVEN, "the server span is a child of the caller's"


def test_one_command_is_one_trace_through_store_consumers_and_delivery(
    spans: InMemorySpanExporter, embedded: TestClient, receiver: WebhookReceiver
) -> None:
    freelancer = auth("freelancer-1", "freelancer")
    hook = embedded.post(
        "/webhooks",
        json={"url": receiver.url, "secret": "s" * 24, "event_types": ["interview.invited"]},
        headers=freelancer,
    )
    assert hook.status_code == 201, hook.text
    register_job(embedded, "job-trace", "client-1")
    invited = embedded.post(
        "/interviews",
        json={"job_id": "job-trace", "freelancer_id": "freelancer-1", "message": "hello"},
        headers=auth("client-1", "client"),
    )
    assert invited.status_code == 201, invited.text
    trace_id = int(trace_id_from(invited.headers["traceparent"]) or "0", 16)

    wanted = {"projections apply", "notifications apply", "webhook deliver"}
    wait_until(
        lambda: names_in(spans, trace_id),
        20,
        what=f"the command's trace to hold {sorted(wanted)}",
        until=lambda names: wanted <= set(names),
    )

    names = names_in(spans, trace_id)
    assert "POST /interviews" in names
    assert "interviews store" in names
    (store,) = [s for s in by_name(spans, "interviews store") if s.context.trace_id == trace_id]
    commits = [
        s
        for s in by_name(spans, "interviews group commit")
        if any(link.context.span_id == store.context.span_id for link in s.links)
    ]
    assert len(commits) == 1, "the batch that wrote the command links to it"
    applies = [
        s
        for s in spans.get_finished_spans()
        if s.name.endswith(" apply") and s.context.trace_id == trace_id
    ]
    assert {s.parent.span_id for s in applies if s.parent} == {store.context.span_id}
    assert len(receiver.received) == 1


def test_the_stored_traceparent_is_outside_the_hash_chain_and_the_audit(
    spans: InMemorySpanExporter, embedded: TestClient
) -> None:
    client = auth("client-1", "client")
    register_job(embedded, "job-audit", "client-1")
    invited = embedded.post(
        "/interviews",
        json={"job_id": "job-audit", "freelancer_id": "freelancer-1", "message": "hello"},
        headers=client,
    )
    assert invited.status_code == 201, invited.text
    interview = invited.json()["id"]
    cancelled = embedded.post(
        f"/interviews/{interview}/cancel", json={"reason": "changed plans"}, headers=client
    )
    assert cancelled.status_code == 200, cancelled.text
    (interviews_app,) = [a for a in embedded.app.apps if a.title == "Interviews"]  # type: ignore[attr-defined]
    store = interviews_app.state.container.interviews()
    states = [
        store.mapper.transcoder.decode(e.state)
        for e in store.recorder.select_events(UUID(interview))
    ]
    assert [trace_id_from(state["trace_context"]) for state in states] == [
        trace_id_from(invited.headers["traceparent"]),
        trace_id_from(cancelled.headers["traceparent"]),
    ], "each event keeps the trace of the command that recorded it"

    auditor = auth("auditor-1", "auditor")
    verified = embedded.get(f"/audit/interviews/{interview}/verify", headers=auditor)
    assert verified.json() == {"ok": True, "checked": 2, "broken": None}
    events = embedded.get(f"/audit/interviews/{interview}/events", headers=auditor).json()
    assert "trace_context" not in str(events)


def test_interviewctl_up_writes_its_spans_to_stderr_with_the_console_exporter(
    tmp_path: Path,
) -> None:
    """A real ``interviewctl up`` process: the responses' trace ids are the spans' on stderr."""
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OTEL_") and k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")
    }
    env |= {
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "AUTH_SECRET": TEST_SECRET,
        "LOG_LEVEL": "WARNING",
    }
    stderr = tmp_path / "stderr.log"
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "up", "--port", str(port)],
            env=env | {"DATA_DIR": str(tmp_path / "data")},
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        assert wait_until(lambda: _answers(base + "/healthz"), timeout=60), stderr.read_text()
        register_job(httpx, "job-up", "client-1", base_url=base)
        invited = httpx.post(
            base + "/interviews",
            json={"job_id": "job-up", "freelancer_id": "freelancer-1", "message": "hello"},
            headers=auth("client-1", "client"),
        )
        assert invited.status_code == 201, invited.text
        refused = httpx.get(base + "/notifications")
        assert refused.status_code == 401
        traces = {trace_id_from(r.headers.get("traceparent")) for r in (invited, refused)}
        assert None not in traces

        def spans_of(trace_id: str | None) -> set[str]:
            names = set()
            for line in stderr.read_text(errors="replace").splitlines():
                if line.startswith("{") and f'"0x{trace_id}"' in line:
                    names.add(json.loads(line)["name"])
            return names

        invited_trace = trace_id_from(invited.headers["traceparent"])
        wanted = {"POST /interviews", "interviews store", "projections apply"}
        assert wait_until(lambda: wanted <= spans_of(invited_trace), timeout=30), spans_of(
            invited_trace
        )
        assert wait_until(lambda: bool(spans_of(trace_id_from(refused.headers["traceparent"]))), 10)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
