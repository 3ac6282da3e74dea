"""Publishes erasure announcements on ``privacy.erasures`` (key = the subject's id)."""

from __future__ import annotations

from typing import Any, Protocol

from ...common.kafka import UNLIMITED_RETENTION, TopicLayout, ensure_topics, producer_settings
from ...contracts.envelope import CONTENT_TYPE
from .kafka_publisher import Delivery


class Announcement(Protocol):
    @property
    def key(self) -> str: ...

    def to_bytes(self) -> bytes: ...


class ErasurePublisher:
    """An idempotent, ``acks=all`` producer of ``subject.erased`` messages."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        layout: TopicLayout,
        **overrides: Any,
    ) -> None:
        from kafka import KafkaProducer

        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.layout = layout
        settings = producer_settings(bootstrap_servers, client_id="interviews-erasures")
        self._producer = KafkaProducer(**(settings | overrides))

    def ensure_topic(self) -> list[str]:
        return ensure_topics(
            self.bootstrap_servers,
            {self.topic: (self.layout.partitions, UNLIMITED_RETENTION)},
            replication_factor=self.layout.replication_factor,
        )

    def publish(self, announcement: Announcement) -> Delivery:
        return self._producer.send(
            self.topic,
            key=announcement.key.encode(),
            value=announcement.to_bytes(),
            headers=[("type", b"subject.erased"), ("content-type", CONTENT_TYPE.encode())],
        )

    def flush(self, timeout: float) -> bool:
        from kafka.errors import KafkaTimeoutError

        try:
            self._producer.flush(timeout=timeout)
        except KafkaTimeoutError:
            return False
        return True

    def close(self, timeout: float = 5.0) -> None:
        self._producer.close(timeout=timeout)
