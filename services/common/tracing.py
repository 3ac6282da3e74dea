"""OpenTelemetry tracing, configured only by the standard ``OTEL_*`` variables.

``setup_tracing(service)`` installs the process's tracer provider once (every
process's composition calls it; nothing happens at import time):

- ``OTEL_TRACES_EXPORTER``: ``console`` (one JSON span a line on stderr),
  ``otlp`` (OTLP/HTTP to ``OTEL_EXPORTER_OTLP_ENDPOINT``), both comma-separated,
  or ``none``/unset: spans are made and their context propagates (the
  ``traceparent`` of every response, Kafka header and stored event) but nothing
  is exported, and the spans only an exported trace would show are not made
  (``export_spans``).
- ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``,
  ``OTEL_PROPAGATORS`` (what an HTTP request's headers are read with), ``OTEL_BSP_*``,
  ``OTEL_SDK_DISABLED``: as the SDK reads them. A stored event, a Kafka message and
  a response always carry the W3C ``traceparent`` (DESIGN).

A command's trace: the HTTP server span (``ServerSpans``), the
``interviews store`` span around its events' write (the group commit's batch
span links every command it wrote; the database driver's spans are its
children), the relay's ``publish`` producer span (a child of the store span:
its ``traceparent`` is stored with the events), each consumer's ``apply`` span
(from the Kafka ``traceparent`` header, or in-process in the embedded default),
and the notification's webhook and e-mail deliveries.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from typing import Any, cast

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.instrumentation._semconv import (
    _OpenTelemetrySemanticConventionStability,
    _OpenTelemetryStabilitySignalType,
)
from opentelemetry.instrumentation.asgi import (
    asgi_getter,
    collect_request_attributes,
    set_status_code,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.semconv.attributes.http_attributes import HTTP_ROUTE
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode
from starlette.types import Scope

log = logging.getLogger(__name__)

TRACER_NAME = "interview-platform"
TRACEPARENT = "traceparent"

_lock = threading.RLock()
_provider: TracerProvider | None = None
_exporting = False  # a span processor is installed (export_spans)
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")


def setup_tracing(service: str) -> TracerProvider | None:
    """The process's tracer provider, installed by the first call (later calls
    return it: ``interviewctl up`` runs every service in one process).

    None when ``OTEL_SDK_DISABLED=true``: spans are then no-ops and no
    ``traceparent`` is written.
    """
    global _provider
    with _lock:
        if _provider is not None:
            return _provider
        if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return None
        attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service}
        provider = TracerProvider(
            resource=Resource.create(attributes),
            sampler=NoOrphanClientSpans(sampling._get_from_env_or_default()),
        )
        trace.set_tracer_provider(provider)
        _provider = provider
        for exporter in _exporters():
            export_spans(BatchSpanProcessor(exporter))
        return provider


def export_spans(processor: SpanProcessor) -> None:
    """Hands every span the process ends from now on to ``processor`` (an
    exporter's), on the provider ``setup_tracing`` installed.

    Spans that only a reader of exported traces would see are made from then on:
    the database driver's statement spans (they cost 6-23% of a command's server
    CPU) and the relay's producer span per event (about a third of its CPU per
    event). Before, the ``traceparent`` of responses, stored events and Kafka
    headers still propagates the trace."""
    global _exporting
    with _lock:
        if _provider is None:
            raise RuntimeError("setup_tracing() installs the tracer provider first")
        _provider.add_span_processor(processor)
        if not _exporting:
            _instrument_database_driver()
            _exporting = True


class NoOrphanClientSpans(sampling.Sampler):
    """``OTEL_TRACES_SAMPLER``'s choice, except that a client span with no parent
    starts no trace: the database statements of polls, health checks and batch
    bookkeeping, outside any command, would each be a one-span trace."""

    def __init__(self, delegate: sampling.Sampler) -> None:
        self.delegate = delegate

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Any = None,
        links: Any = None,
        trace_state: Any = None,
    ) -> sampling.SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if kind == SpanKind.CLIENT and not parent.is_valid:
            return sampling.SamplingResult(sampling.Decision.DROP)
        return self.delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"NoOrphanClientSpans{{{self.delegate.get_description()}}}"


def _exporters() -> list[SpanExporter]:
    names = os.environ.get("OTEL_TRACES_EXPORTER", "none")
    exporters: list[SpanExporter] = []
    for name in (n.strip().lower() for n in names.split(",")):
        if name in ("", "none"):
            continue
        if name == "console":
            exporters.append(ConsoleSpanExporter(out=sys.stderr, formatter=_one_line))
        elif name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            protocol = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
            if protocol.strip().lower() != "http/protobuf":
                log.warning(
                    "OTEL_EXPORTER_OTLP_PROTOCOL=%r: only http/protobuf is built in", protocol
                )
            exporters.append(OTLPSpanExporter())
        else:
            log.warning("OTEL_TRACES_EXPORTER=%r: not console, otlp or none; ignored", name)
    return exporters


def _one_line(span: Any) -> str:
    return str(span.to_json(indent=None)) + os.linesep


def _instrument_database_driver() -> None:
    """psycopg's spans (every statement, the event store's included) as children
    of the span that is current when they run."""
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    instrumentor = PsycopgInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(skip_dep_check=True)


SERVER_TRACER = "opentelemetry.instrumentation.fastapi"


class ServerSpans:
    """The server span of each request (the HTTP layer's one middleware drives
    it): continued from the caller's context (the ``OTEL_PROPAGATORS``), with the
    attributes of OpenTelemetry's ASGI instrumentation (``OTEL_SEMCONV_STABILITY_OPT_IN``
    as it reads it), named ``METHOD /route/{template}`` once the router has
    matched the request, and its ``traceparent`` on the response.

    In place of that instrumentation's middleware, which found the route by
    matching every route before routing, set each attribute twice and recorded
    metrics nobody collects. What only an exported trace shows is made only while
    spans are exported (``export_spans``): the span's attributes, status and name,
    and the span itself. Before, a request gets a span context as the SDK would
    give it (trace id, new span id, sampling flags and trace state by the same
    sampler), current while the app runs: its ``traceparent``, and the parent of
    the spans made inside, are as they would be."""

    def __init__(self, service: str) -> None:
        provider = setup_tracing(service)  # if the process has not yet
        self.tracer = trace.get_tracer(SERVER_TRACER, tracer_provider=provider)
        self.provider = provider
        stability = _OpenTelemetrySemanticConventionStability
        stability._initialize()
        self.mode = stability._get_opentelemetry_stability_opt_in_mode(
            _OpenTelemetryStabilitySignalType.HTTP
        )

    def start(self, scope: Scope) -> Span:
        """The request's span, started (not yet current)."""
        method = scope.get("method", "")
        context = propagate.extract(cast("dict[str, Any]", scope), getter=asgi_getter)
        if _exporting or self.provider is None:
            return self.tracer.start_span(
                method,
                context=context,
                kind=SpanKind.SERVER,
                attributes=collect_request_attributes(scope, self.mode) if _exporting else None,
            )
        return NonRecordingSpan(_span_context_for(self.provider, context, method))

    def answered(self, span: Span, status: int) -> bytes | None:
        """Records the response's status; the ``traceparent`` header's value."""
        if _exporting and span.is_recording():
            set_status_code(span, status, sem_conv_opt_in_mode=self.mode)
        span_context = span.get_span_context()
        return traceparent_of(span_context).encode() if span_context.is_valid else None

    def failed(self, span: Span, error: Exception, status: int) -> None:
        """An exception escaped the app (``status``: the answer sent, 0 if none)."""
        if span.is_recording():
            span.record_exception(error)
            if status < 500:  # a 500 answer has set the span's status
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))

    def end(self, span: Span, scope: Scope) -> None:
        """Names the span by the route that answered, if one did, and ends it."""
        route = getattr(scope.get("route"), "path", None)
        if route and _exporting and span.is_recording():
            span.update_name(f"{scope.get('method', '')} {route}")
            span.set_attribute(HTTP_ROUTE, route)
        span.end()


def _span_context_for(
    provider: TracerProvider, context: otel_context.Context, name: str
) -> SpanContext:
    """The context the SDK's ``Tracer.start_span`` gives a server span with no
    attributes and no links, without the span."""
    parent: SpanContext | None = trace.get_current_span(context).get_span_context()
    ids = provider.id_generator
    if parent is None or not parent.is_valid:
        parent = None
        trace_id = ids.generate_trace_id()
        random_trace_id = ids.is_trace_id_random()
    else:
        trace_id = parent.trace_id
        random_trace_id = parent.trace_flags.random_trace_id
    sampling = provider.sampler.should_sample(context, trace_id, name, SpanKind.SERVER, None, ())
    flags = TraceFlags.SAMPLED if sampling.decision.is_sampled() else TraceFlags.DEFAULT
    if random_trace_id:
        flags |= TraceFlags.RANDOM_TRACE_ID
    return SpanContext(
        trace_id,
        ids.generate_span_id(),
        is_remote=False,
        trace_flags=TraceFlags(flags),
        trace_state=sampling.trace_state,
    )


@cache
def tracer() -> trace.Tracer:
    """The platform's tracer (a proxy until the provider is set, then the SDK's)."""
    return trace.get_tracer(TRACER_NAME)


def tracing_exports() -> bool:
    """Whether a span made now reaches an exporter (``export_spans``). Until then,
    and with ``OTEL_SDK_DISABLED``, a span only carries its context: code may skip
    spans that exist for the reader of exported traces and pass its parent's
    context on instead. Cheap enough for every event."""
    return _exporting


def traceparent_of(span_context: trace.SpanContext) -> str:
    ids = f"{span_context.trace_id:032x}-{span_context.span_id:016x}"
    return f"00-{ids}-{span_context.trace_flags:02x}"


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, or None outside any trace."""
    span_context = trace.get_current_span().get_span_context()
    return traceparent_of(span_context) if span_context.is_valid else None


def span_context_from(traceparent: str | bytes | None) -> SpanContext | None:
    """The remote span a W3C ``traceparent`` names, or None if it names none.

    Parsed here rather than by the propagator: the relay and the consumers do it
    for every event, and this costs a fraction of a full ``extract``."""
    if not traceparent:
        return None
    if isinstance(traceparent, bytes):
        traceparent = traceparent.decode("ascii", "replace")
    match = _TRACEPARENT.match(traceparent.strip().lower())
    if match is None or match[1] == "ff":
        return None
    trace_id, span_id = int(match[2], 16), int(match[3], 16)
    if not trace_id or not span_id:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(int(match[4], 16)))


def context_from(traceparent: str | bytes | None) -> otel_context.Context | None:
    """A context whose parent is the span a ``traceparent`` names, or None."""
    span_context = span_context_from(traceparent)
    if span_context is None:
        return None
    return trace.set_span_in_context(NonRecordingSpan(span_context))


@contextmanager
def continued_span(
    name: str,
    traceparent: str | bytes | None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Span]:
    """A span continuing the trace ``traceparent`` names (a new trace if none)."""
    parent = context_from(traceparent)
    with tracer().start_as_current_span(
        name, context=parent, kind=kind, attributes=dict(attributes or {})
    ) as span:
        yield span


def links_to(traceparents: list[str | None]) -> list[Link]:
    """Links to the spans the given ``traceparent`` values name (the others skipped)."""
    span_contexts = (span_context_from(value) for value in traceparents)
    return [Link(context) for context in span_contexts if context is not None]
