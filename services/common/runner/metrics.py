"""The runner's Prometheus metrics (shared by every runner of a registry, labelled
by group) and its running totals."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge


class RunnerMetrics:
    """Prometheus metrics of every runner sharing one registry (labelled by group)."""

    _by_registry: weakref.WeakKeyDictionary[Any, RunnerMetrics] = weakref.WeakKeyDictionary()

    def __init__(self, registry: Any) -> None:
        self.lag = Gauge(
            "consumer_lag",
            "Messages (Kafka) or positions (embedded) the consumer is behind, per partition",
            ["group", "topic", "partition"],
            registry=registry,
        )
        self.processed = Counter(
            "consumer_events_processed",
            "Events applied by the consumer (its spec's apply)",
            ["group"],
            registry=registry,
        )
        self.duplicates = Counter(
            "consumer_duplicates_skipped",
            "Events skipped as already processed",
            ["group"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "consumer_dead_letters",
            "Poison messages sent to the DLQ topic",
            ["group"],
            registry=registry,
        )
        self.handler_failures = Counter(
            "consumer_handler_failures",
            "Failed attempts to apply a batch, or one event of a failed batch",
            ["group"],
            registry=registry,
        )
        self.parked = Gauge(
            "consumer_parked_events",
            "Events parked after failed attempts",
            ["group"],
            registry=registry,
        )

    @classmethod
    def existing(cls, registry: Any) -> RunnerMetrics | None:
        """The metrics a runner registered on ``registry``, if one runs in this process."""
        return cls._by_registry.get(registry)

    def group_lag(self, group: str) -> int | None:
        """The group's lag summed over its partitions; ``None`` before the first reading."""
        samples = [
            s.value
            for metric in self.lag.collect()
            for s in metric.samples
            if s.labels.get("group") == group
        ]
        return int(sum(samples)) if samples else None

    def group_dead_letters(self, group: str) -> int:
        """Poison messages the group sent to the DLQ since this process started."""
        return int(
            sum(
                s.value
                for metric in self.dead_letters.collect()
                for s in metric.samples
                if s.labels.get("group") == group and s.name.endswith("_total")
            )
        )

    @classmethod
    def for_registry(cls, registry: Any) -> RunnerMetrics:
        """The metrics of ``registry``'s runners (created by the first); ``None``:
        a registry of this runner's own, exported nowhere."""
        if registry is None:
            return cls(CollectorRegistry())
        metrics = cls._by_registry.get(registry)
        if metrics is None:
            metrics = cls._by_registry[registry] = cls(registry)
        return metrics


@dataclass
class RunnerStats:
    """What one runner did since it started: events applied, duplicates skipped,
    poison dead-lettered, events parked, and failed polls or batches."""

    processed: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    parked: int = 0
    errors: int = 0
