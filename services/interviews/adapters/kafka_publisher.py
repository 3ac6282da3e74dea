"""Publishes envelopes to Kafka (the relay's outbound port and its real adapter)."""

from __future__ import annotations

import re
from functools import cache
from typing import Any, Protocol, cast

from kafka.structs import TopicPartition
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

    def linger(self, on: bool) -> None:
        """Whether records wait for more to fill a batch (a backlog) or go to the
        broker as soon as they are sent (caught up: nothing more is coming)."""
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
        self._linger_ms = settings.get("linger_ms", 0)

    def flush(self, timeout: float) -> bool:
        from kafka.errors import KafkaTimeoutError

        try:
            self._producer.flush(timeout=timeout)
        except KafkaTimeoutError:
            return False
        return True

    def linger(self, on: bool) -> None:
        """Records wait up to ``linger_ms`` to fill a batch (``on``), or each is sent
        as soon as it is appended: what ``flush`` does, without waiting for the
        broker, so the relay reads on while the broker acknowledges.

        It sets the linger of kafka-python's accumulator, which reads it each time
        it checks whether a batch is ready; a producer without one (another client
        version, a fake) keeps its ``linger_ms``.
        """
        accumulator = getattr(self._producer, "_accumulator", None)
        config = getattr(accumulator, "config", None)
        if not isinstance(config, dict) or "linger_ms" not in config:
            return
        linger_ms = self._linger_ms if on else 0
        if config["linger_ms"] != linger_ms:
            config["linger_ms"] = linger_ms
            sender = getattr(self._producer, "_sender", None)
            if not on and sender is not None:
                sender.wakeup()  # a batch already waiting out the linger goes now

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
        settings |= overrides
        super().__init__(bootstrap_servers, topic, layout, settings)
        self._records = RecordSender(self._producer, topic, settings["partitioner"])

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
        return self._records.send(event.key, event.value, headers)


class RecordSender:
    """``KafkaProducer.send`` of one topic's records whose key, value and headers
    are bytes made by this module, without the checks such a record passes by
    construction (serializers, header types, partitioner dispatch, size estimate).

    The record goes to the producer's accumulator, as ``send`` puts it there:
    batching, idempotent sequence numbers, ``acks`` and retries are the producer's.
    While the topic's partitions are unknown, for a value near
    ``max_request_size``, and with a producer that lacks the parts used (another
    client version, a transactional or fake producer, another partitioner than
    ``MemoPartitioner``), it is the producer's own ``send``, which waits for
    metadata and refuses an oversized record.
    """

    def __init__(self, producer: Any, topic: str, partitioner: Any) -> None:
        self.producer = producer
        self.topic = topic
        # Records go where the producer's own partitioner would put them.
        self.partitioner: MemoPartitioner = partitioner
        lean = isinstance(partitioner, MemoPartitioner)
        self._parts = _accumulator_of(producer) if lean else None
        config = getattr(producer, "config", {})
        # Room left under the request limit for the key, headers and framing.
        self._max_value = config.get("max_request_size", 0) - 64 * 1024
        self._partitions: dict[int, TopicPartition] = {}

    def send(self, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> Delivery:
        tp = self._lean_partition(key, value)
        if tp is None:
            future = self.producer.send(self.topic, key=key, value=value, headers=headers)
            return cast(Delivery, future)
        accumulator, sender, _ = self._parts  # type: ignore[misc]  # set: tp is known
        future, batch_is_full, new_batch, _ = accumulator.append(tp, None, key, value, headers)
        if batch_is_full or new_batch:
            sender.wakeup()
        return cast(Delivery, future)

    def _lean_partition(self, key: bytes, value: bytes) -> TopicPartition | None:
        """Where the record goes, or None when the producer's ``send`` must take it."""
        if self._parts is None or len(value) > self._max_value:
            return None
        partitions = self._parts[2].partitions_for_topic(self.topic)
        if partitions is None:  # no metadata yet
            return None
        partition = self.partitioner.place(key, partitions)
        tp = self._partitions.get(partition)
        if tp is None:
            tp = self._partitions[partition] = TopicPartition(self.topic, partition)
        return tp


def _accumulator_of(producer: Any) -> tuple[Any, Any, Any] | None:
    """kafka-python's accumulator, sender thread and cluster metadata behind
    ``producer``, or None when it is not a plain ``KafkaProducer`` of the pinned
    client with them."""
    names = ("_accumulator", "_sender", "_metadata")
    accumulator, sender, cluster = (getattr(producer, name, None) for name in names)
    transactions = getattr(producer, "_transaction_manager", None)
    if transactions is not None and transactions.is_transactional():
        return None
    if not (
        callable(getattr(accumulator, "append", None))
        and callable(getattr(sender, "wakeup", None))
        and callable(getattr(cluster, "partitions_for_topic", None))
    ):
        return None
    return accumulator, sender, cluster
