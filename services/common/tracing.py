"""OpenTelemetry tracing, configured only by the standard ``OTEL_*`` variables.

``setup_tracing(service)`` installs the process's tracer provider once (every
process's composition calls it; nothing happens at import time):

- ``OTEL_TRACES_EXPORTER``: ``console`` (one JSON span a line on stderr),
  ``otlp`` (OTLP/HTTP to ``OTEL_EXPORTER_OTLP_ENDPOINT``), both comma-separated,
  or ``none``/unset: spans are made and their context propagates (the
  ``traceparent`` of every response, Kafka header and stored event) but nothing
  is exported.
- ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``,
  ``OTEL_PROPAGATORS`` (what an HTTP request's headers are read with), ``OTEL_BSP_*``,
  ``OTEL_SDK_DISABLED``: as the SDK reads them. A stored event, a Kafka message and
  a response always carry the W3C ``traceparent`` (DESIGN).

A command's trace: the HTTP server span (FastAPI instrumentation), the
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
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.propagators import (
    ResponsePropagator,
    set_global_response_propagator,
)
from opentelemetry.propagators.textmap import Setter, default_setter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags

log = logging.getLogger(__name__)

TRACER_NAME = "interview-platform"
TRACEPARENT = "traceparent"

_lock = threading.Lock()
_provider: TracerProvider | None = None
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
        for exporter in _exporters():
            provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        set_global_response_propagator(TraceparentResponsePropagator())
        _instrument_database_driver()
        _provider = provider
        return provider


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


def instrument_app(app: Any, service: str) -> None:
    """The HTTP server span of every request, and its ``traceparent`` on every
    response (``setup_tracing`` is called if the process has not yet)."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    provider = setup_tracing(service)
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=provider, exclude_spans=["receive", "send"]
    )


class TraceparentResponsePropagator(ResponsePropagator):
    """Writes the server span's W3C ``traceparent`` on the response (DESIGN)."""

    def inject(
        self,
        carrier: Any,
        context: otel_context.Context | None = None,
        setter: Setter[Any] = default_setter,
    ) -> None:
        span_context = trace.get_current_span(context).get_span_context()
        if span_context.is_valid:
            setter.set(carrier, TRACEPARENT, traceparent_of(span_context))


@cache
def tracer() -> trace.Tracer:
    """The platform's tracer (a proxy until the provider is set, then the SDK's)."""
    return trace.get_tracer(TRACER_NAME)


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
