"""Publishes erasure announcements on ``privacy.erasures`` (key = the subject's id)."""

from __future__ import annotations

from typing import Any, Protocol

from ...common.kafka import UNLIMITED_RETENTION, TopicLayout, ensure_topics, producer_settings
from ...contracts.envelope import CONTENT_TYPE
from .kafka_publisher import Delivery, Producer


class Announcement(Protocol):
    @property
    def key(self) -> str: ...

    def to_bytes(self) -> bytes: ...


class ErasurePublisher(Producer):
    """The producer of ``subject.erased`` messages, keyed by the subject's id."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        layout: TopicLayout,
        **overrides: Any,
    ) -> None:
        settings = producer_settings(bootstrap_servers, client_id="interviews-erasures")
        super().__init__(bootstrap_servers, topic, layout, settings | overrides)

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
