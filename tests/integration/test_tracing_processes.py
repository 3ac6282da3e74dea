"""One trace per command across real processes: the interviews API, the relay, the
projections consumer and the notifications service (consumer and delivery) as
``interviewctl`` processes on PostgreSQL and Kafka, exporting OTLP/HTTP to a
receiver this test runs on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.jobs import register_job
from tests.reliability.harness import Platform, bearer
from tests.support.notifications import WebhookReceiver
from tests.support.waiting import holds_within

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    links: tuple[str, ...]  # span ids
    attributes: dict[str, Any]


class OtlpCollector:
    """A collector's OTLP/HTTP endpoint (``/v1/traces``, protobuf): a loopback
    receiver that keeps every export; the spans are read from what it kept."""

    def __init__(self, receiver: WebhookReceiver) -> None:
        self.receiver = receiver
        self.endpoint = receiver.base_url

    def all(self) -> list[ReceivedSpan]:
        with self.receiver.lock:
            bodies = [r.body for r in self.receiver.received if r.path == "/v1/traces"]
        return [span for body in bodies for span in spans_of(body)]

    def in_trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [s for s in self.all() if s.trace_id == trace_id]


def spans_of(body: bytes) -> list[ReceivedSpan]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    received = []
    for resource_spans in request.resource_spans:
        resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                received.append(
                    ReceivedSpan(
                        service=resource.get("service.name", ""),
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        links=tuple(link.span_id.hex() for link in span.links),
                        attributes={
                            a.key: a.value.string_value or a.value.int_value
                            for a in span.attributes
                        },
                    )
                )
    return received


@pytest.fixture
def collector() -> Iterator[OtlpCollector]:
    exports = WebhookReceiver(answer=b"").start()
    yield OtlpCollector(exports)
    exports.stop()


@pytest.fixture
def platform(
    tmp_path: Path,
    kafka_bootstrap: str,
    databases: Callable[[str], str],
    collector: OtlpCollector,
) -> Iterator[Platform]:
    with Platform(tmp_path, kafka_bootstrap, databases, name="trace") as running:
        running.extra_env = {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        running.interviews_api()
        running.relay()
        running.projections_consumer()
        running.notifications_api(workers=True)
        running.start()
        yield running


def test_one_command_is_one_trace_across_the_api_relay_consumers_and_delivery(
    platform: Platform, collector: OtlpCollector, receiver: WebhookReceiver
) -> None:
    hook = httpx.post(
        platform["notifications-api"].url + "/webhooks",
        json={"url": receiver.url, "secret": "s" * 24, "event_types": ["interview.invited"]},
        headers=bearer("freelancer-t", "freelancer"),
    )
    assert hook.status_code == 201, hook.text
    register_job(httpx, "job-t", "client-t", base_url=platform["interviews-api"].url)
    invited = httpx.post(
        platform["interviews-api"].url + "/interviews",
        json={"job_id": "job-t", "freelancer_id": "freelancer-t", "message": "hello"},
        headers=bearer("client-t", "client"),
    )
    assert invited.status_code == 201, invited.text
    trace_id = invited.headers["traceparent"].split("-")[1]
    wanted = {
        ("interviews", "POST /interviews"),
        ("interviews", "interviews store"),
        ("relay", f"{platform.topic} publish"),
        ("projections", f"{platform.projections_group} apply"),
        ("notifications", f"{platform.notifications_group} apply"),
        ("notifications", "webhook deliver"),
    }

    def seen() -> set[tuple[str, str]]:
        return {(s.service, s.name) for s in collector.in_trace(trace_id)}

    assert holds_within(lambda: wanted <= seen(), timeout=60), (
        sorted(wanted - seen()),
        platform.logs(),
    )

    assert len(receiver.received) == 1
    spans = collector.in_trace(trace_id)
    (store,) = [s for s in spans if s.name == "interviews store"]
    (publish,) = [s for s in spans if s.name.endswith(" publish")]
    assert publish.parent_id == store.span_id, "the relay continues the stored traceparent"
    applies = [s for s in spans if s.name.endswith(" apply")]
    assert {s.parent_id for s in applies} == {publish.span_id}, "from the Kafka header"
    (apply,) = [s for s in applies if s.service == "notifications"]
    (deliver,) = [s for s in spans if s.name == "webhook deliver"]
    assert deliver.parent_id == apply.span_id
    # The batch that wrote it links the command, and the driver's statements are its children.
    (commit,) = [s for s in collector.all() if store.span_id in s.links]
    statements = [s for s in collector.all() if s.parent_id == commit.span_id]
    assert any(s.attributes.get("db.system") == "postgresql" for s in statements), statements
