"""The HTTP server span of every service (``services.common.tracing.ServerSpans``):
named by the route that answered, a child of the caller's trace, its status and
its ``traceparent`` on the answer, an unhandled error recorded on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from services.common.logs import trace_id_from
from services.common.web import Metrics, service_app
from tests.conftest import GIVEN_TRACEPARENT

GIVEN = GIVEN_TRACEPARENT


def spans_app(description: str) -> FastAPI:
    """A bare service app, its routes added by the test."""
    return service_app(
        title="Spans",
        description=description,
        lifespan=None,
        container=None,
        auth_secret="secret",
        metrics=Metrics("spans"),
        unavailable=(),
    )


@pytest.fixture
def http() -> Iterator[TestClient]:
    app = spans_app("A service with two routes.")

    @app.get("/things/{thing_id}")
    def thing(thing_id: int) -> dict[str, int]:
        return {"thing_id": thing_id}

    @app.get("/broken")
    def broken() -> None:
        raise RuntimeError("the disk is full")

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def server_spans(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]


def test_the_server_span_is_named_by_its_route_and_continues_the_caller_s_trace(
    spans: InMemorySpanExporter, http: TestClient
) -> None:
    answer = http.get("/things/7", headers={"traceparent": GIVEN})

    assert answer.status_code == 200
    (span,) = server_spans(spans)
    assert span.name == "GET /things/{thing_id}"
    assert span.parent is not None and span.parent.span_id == int(GIVEN.split("-")[2], 16)
    assert trace_id_from(answer.headers["traceparent"]) == trace_id_from(GIVEN)
    assert answer.headers["traceparent"].split("-")[2] == f"{span.context.span_id:016x}"
    assert span.attributes is not None
    assert span.attributes["http.route"] == "/things/{thing_id}"
    assert span.attributes["http.status_code"] == 200
    assert span.attributes["http.target"] == "/things/7"
    assert span.status.status_code is StatusCode.UNSET


def test_a_request_no_route_answers_is_named_by_its_method_only(
    spans: InMemorySpanExporter, http: TestClient
) -> None:
    answer = http.get("/nowhere")

    assert answer.status_code == 404
    (span,) = server_spans(spans)
    assert span.name == "GET"
    assert span.attributes is not None and "http.route" not in span.attributes
    assert trace_id_from(answer.headers["traceparent"]) == f"{span.context.trace_id:032x}"


def test_an_unhandled_error_is_a_500_with_its_traceparent_and_the_error_on_the_span(
    spans: InMemorySpanExporter, http: TestClient
) -> None:
    answer = http.get("/broken")

    assert answer.status_code == 500
    (span,) = server_spans(spans)
    assert trace_id_from(answer.headers["traceparent"]) == f"{span.context.trace_id:032x}"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None and span.attributes["http.status_code"] == 500
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "RuntimeError"


@pytest.fixture
def nothing_exported(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process as it runs with ``OTEL_TRACES_EXPORTER`` unset (another test
    may have installed an exporter in this process)."""
    from services.common import tracing

    assert tracing.setup_tracing("tests") is not None
    monkeypatch.setattr(tracing, "_exporting", False)


def test_with_nothing_exported_a_request_still_continues_the_caller_s_trace(
    nothing_exported: None,
) -> None:
    from services.common.tracing import current_traceparent

    app = spans_app("A service whose route shows the current trace context.")

    @app.get("/inside")
    async def inside() -> dict[str, str | None]:
        return {"traceparent": current_traceparent()}

    with TestClient(app) as http:
        continued = http.get("/inside", headers={"traceparent": GIVEN})
        unsampled = http.get("/inside", headers={"traceparent": GIVEN[:-2] + "00"})
        fresh = http.get("/inside")

    given_trace, given_span = GIVEN.split("-")[1:3]
    version, trace_id, span_id, flags = continued.headers["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", given_trace, "01")
    assert span_id not in (given_span, "0" * 16)
    # The span made for the request is the current one inside it.
    assert continued.json()["traceparent"] == continued.headers["traceparent"]
    assert unsampled.headers["traceparent"].split("-")[1::2] == [given_trace, "00"]
    assert trace_id_from(fresh.headers["traceparent"]) not in (None, given_trace)
    assert fresh.json()["traceparent"] == fresh.headers["traceparent"]
