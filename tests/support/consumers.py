"""The projections and notifications consumers run in process over one log: each
container with the consumer runner's own code, fed batch by batch from ``read``.
No thread, no sleep: a test appends to the log and calls ``drain()``.

``tests/integration/downstream.py`` feeds them the interviews service's store,
``tests/integration/erasure_support.py`` a log of sealed events of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from services.common.consumer import ConsumerSpec
from services.common.privacy import KeyService
from services.common.runner.embedded import EmbeddedSource
from services.common.runner.loop import ConsumerRunner
from services.common.runner.source import SourceRecord
from services.common.runner.tables import consumer_positions, migrate_consumer_database
from services.contracts import EventEnvelope
from services.notifications.bootstrap import NotificationsContainer
from services.notifications.bootstrap import consumer_spec as notifications_spec
from services.notifications.settings import NotificationsSettings
from services.projections.bootstrap import ProjectionsContainer
from services.projections.bootstrap import consumer_spec as projections_spec
from services.projections.settings import ProjectionsSettings
from tests.conftest import TEST_SECRET

ReadLog = Callable[[int, int], list[EventEnvelope]]


class InProcessConsumers:
    """The projections and notifications containers (each its own database: SQLite
    files under ``data_dir`` or the URLs given), their specs and runners over ``read``.

    ``wrap`` may replace a spec (a test's failing handler); ``ttl_seconds`` is the
    containers' key cache TTL (``KEY_CACHE_TTL_SECONDS``)."""

    def __init__(
        self,
        read: ReadLog,
        keys: KeyService,
        data_dir: Path,
        *,
        clock: Callable[[], datetime],
        log_head: Callable[[], int],
        projections_url: str | None = None,
        notifications_url: str | None = None,
        ttl_seconds: float = 5.0,
        wrap: Callable[[ConsumerSpec], ConsumerSpec] = lambda spec: spec,
    ) -> None:
        self.read = read
        # In process, on the log: no Kafka.
        shared: dict[str, Any] = {
            "kafka_bootstrap_servers": None,
            "data_dir": data_dir,
            "auth_secret": TEST_SECRET,
            "key_cache_ttl_seconds": ttl_seconds,
        }
        self.projections = ProjectionsContainer(
            ProjectionsSettings(
                database_url=projections_url, projections_database_url=projections_url, **shared
            ),
            log_reader=read,
            log_head=log_head,
            key_service=keys,
        )
        self.notifications = NotificationsContainer(
            NotificationsSettings(
                database_url=notifications_url,
                notifications_database_url=notifications_url,
                **shared,
            ),
            clock=clock,
            key_service=keys,
        )
        self.specs: dict[str, ConsumerSpec] = {
            "projections": wrap(projections_spec(self.projections)),
            "notifications": wrap(notifications_spec(self.notifications)),
        }
        self.runners: dict[str, ConsumerRunner] = {}
        for group, spec in self.specs.items():
            runner = ConsumerRunner(
                spec, EmbeddedSource(read, threading.Event()), retry_backoff=0.001
            )
            migrate_consumer_database(spec)
            runner.source.open(group, spec.engine, runner.metrics)
            self.runners[group] = runner

    def drain(self) -> None:
        """Every consumer applies the log up to its end (the runner's ``process``,
        batch by batch, as its loop would)."""
        for group, runner in self.runners.items():
            while batch := self.read(self.position(group), 200):
                runner.process([SourceRecord(envelope=e) for e in batch])

    def position(self, group: str) -> int:
        """The log position the group's runner committed (``consumer_positions``)."""
        with self.specs[group].engine.connect() as conn:
            stored = conn.execute(
                sa.select(consumer_positions.c.position).where(consumer_positions.c.group == group)
            ).scalar()
        return int(stored or 0)

    def engines(self) -> dict[str, sa.Engine]:
        return {
            "projections": self.projections.engine(),
            "notifications": self.notifications.engine(),
        }

    def close(self) -> None:
        self.projections.close()
        self.notifications.close()
