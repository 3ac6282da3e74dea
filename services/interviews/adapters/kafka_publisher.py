"""Publishes envelopes to Kafka (the relay's outbound port and its real adapter)."""

from __future__ import annotations

import re
from typing import Any, Protocol

from opentelemetry.trace import SpanKind

from ...common.kafka import MemoPartitioner, TopicLayout, ensure_event_topics, producer_settings
from ...common.tracing import context_from, traceparent_of, tracer
from ...contracts import EventEnvelope
from ...contracts.envelope import CONTENT_TYPE

TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


class Delivery(Protocol):
    """What ``publish`` returns: settles once the broker acknowledged (or refused)."""

    @property
    def is_done(self) -> bool: ...

    def failed(self) -> bool: ...

    @property
    def exception(self) -> BaseException | None: ...


class EventPublisher(Protocol):
    def publish(self, envelope: EventEnvelope) -> Delivery: ...

    def flush(self, timeout: float) -> bool:
        """True when every delivery has settled within ``timeout`` seconds."""
        ...

    def close(self, timeout: float = 5.0) -> None: ...


def headers_for(envelope: EventEnvelope, traceparent: str | None = None) -> list[tuple[str, bytes]]:
    """The message's headers; ``traceparent`` is the producer span's, else (an event
    recorded before traces were kept) a correlation id that is one."""
    headers = [
        ("type", envelope.type.encode()),
        ("schema_version", str(envelope.schema_version).encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]
    if traceparent is None and TRACEPARENT.match(envelope.correlation_id):
        traceparent = envelope.correlation_id
    if traceparent is not None:
        headers.append(("traceparent", traceparent.encode()))
    return headers


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

    def publish(self, envelope: EventEnvelope) -> Delivery:
        """Sends one event, in a producer span continuing the command's trace."""
        span = tracer().start_span(
            f"{self.topic} publish",
            context_from(envelope.traceparent),
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": self.topic,
                "messaging.message.id": str(envelope.id),
            },
        )
        try:
            span_context = span.get_span_context()
            traceparent = traceparent_of(span_context) if span_context.is_valid else None
            return self._producer.send(
                self.topic,
                key=str(envelope.interview_id).encode(),
                value=envelope.to_bytes(),
                headers=headers_for(envelope, traceparent),
            )
        finally:
            span.end()
