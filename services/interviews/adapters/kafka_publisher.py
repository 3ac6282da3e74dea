"""Publishes envelopes to Kafka (the relay's outbound port and its real adapter)."""

from __future__ import annotations

import re
from functools import cache
from typing import Any, Protocol

from opentelemetry.trace import SpanKind

from ...common.kafka import MemoPartitioner, TopicLayout, ensure_event_topics, producer_settings
from ...common.tracing import (
    context_from,
    span_context_from,
    traceparent_of,
    tracer,
    tracing_exports,
)
from ...contracts.envelope import CONTENT_TYPE
from .envelope import OutgoingEvent

TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


class Delivery(Protocol):
    """What ``publish`` returns: settles once the broker acknowledged (or refused)."""

    @property
    def is_done(self) -> bool: ...

    def failed(self) -> bool: ...

    @property
    def exception(self) -> BaseException | None: ...


class EventPublisher(Protocol):
    def publish(self, event: OutgoingEvent) -> Delivery: ...

    def flush(self, timeout: float) -> bool:
        """True when every delivery has settled within ``timeout`` seconds."""
        ...

    def close(self, timeout: float = 5.0) -> None: ...


class HeaderFields(Protocol):
    """What the headers say about an event (an ``EventEnvelope`` or ``OutgoingEvent``)."""

    @property
    def type(self) -> str: ...

    @property
    def schema_version(self) -> int: ...

    @property
    def correlation_id(self) -> str: ...


def headers_for(event: HeaderFields, traceparent: str | None = None) -> list[tuple[str, bytes]]:
    """The message's headers; ``traceparent`` is the producer span's, else (an event
    recorded before traces were kept) a correlation id that is one."""
    headers = list(_fixed_headers(event.type, event.schema_version))
    if traceparent is None and TRACEPARENT.match(event.correlation_id):
        traceparent = event.correlation_id
    if traceparent is not None:
        headers.append(("traceparent", traceparent.encode()))
    return headers


@cache
def _fixed_headers(event_type: str, schema_version: int) -> tuple[tuple[str, bytes], ...]:
    return (
        ("type", event_type.encode()),
        ("schema_version", str(schema_version).encode()),
        ("content-type", CONTENT_TYPE.encode()),
    )


class Producer:
    """An idempotent, ``acks=all`` kafka-python producer of one topic, with the
    flush and close the relay needs."""

    def __init__(
        self, bootstrap_servers: str, topic: str, layout: TopicLayout, settings: dict[str, Any]
    ) -> None:
        from kafka import KafkaProducer

        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.layout = layout
        self._producer = KafkaProducer(**settings)

    def flush(self, timeout: float) -> bool:
        from kafka.errors import KafkaTimeoutError

        try:
            self._producer.flush(timeout=timeout)
        except KafkaTimeoutError:
            return False
        return True

    def close(self, timeout: float = 5.0) -> None:
        self._producer.close(timeout=timeout)


class KafkaPublisher(Producer):
    """The relay's producer of the events topic, keyed by interview id."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        layout: TopicLayout,
        linger_ms: int = 5,
        client_id: str = "interviews-relay",
        **overrides: Any,
    ) -> None:
        settings = producer_settings(bootstrap_servers, client_id=client_id, linger_ms=linger_ms)
        settings["partitioner"] = MemoPartitioner()  # the default placement, memoised
        super().__init__(bootstrap_servers, topic, layout, settings | overrides)

    def ensure_topic(self) -> list[str]:
        """The topic and its dead-letter topic, if missing (``ensure_event_topics``)."""
        return ensure_event_topics(
            self.bootstrap_servers, self.topic, self.layout, client_id="interviews-admin"
        )

    def publish(self, event: OutgoingEvent) -> Delivery:
        """Sends one event, in a producer span continuing the command's trace.

        With nothing exported (``tracing_exports``) the span is not made, and the
        headers carry the command's own context.
        """
        if not tracing_exports():
            parent = span_context_from(event.traceparent)
            return self._send(event, traceparent_of(parent) if parent else None)
        span = tracer().start_span(
            f"{self.topic} publish",
            context_from(event.traceparent),
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": self.topic,
                "messaging.message.id": event.id,
            },
        )
        try:
            context = span.get_span_context()
            return self._send(event, traceparent_of(context) if context.is_valid else None)
        finally:
            span.end()

    def _send(self, event: OutgoingEvent, traceparent: str | None) -> Delivery:
        headers = headers_for(event, traceparent)
        return self._producer.send(self.topic, key=event.key, value=event.value, headers=headers)
