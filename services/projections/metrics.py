"""The projections' own Prometheus metrics, beside the HTTP and consumer ones."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from .adapters.store import ApplyResult


class ProjectionMetrics:
    """Events the live consumer handled by outcome, version gaps and batches
    (``count`` after each batch), the views' position and the rebuild rate (read
    at scrape time)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        position: Callable[[], float],
        rebuild_rate: Callable[[], float],
    ) -> None:
        self.events = Counter(
            "projection_events",
            "Events the live consumer handled, by outcome (applied, duplicate: stale or "
            "repeated and ignored, filled: a late event that filled a gap, skipped: "
            "awaiting a schema rebuild)",
            ["outcome"],
            registry=registry,
        )
        self.gaps = Counter(
            "projection_version_gaps",
            "Versions found missing in an interview's events (applied and flagged)",
            registry=registry,
        )
        self.batches = Counter(
            "projection_batches", "Batches the live consumer wrote", registry=registry
        )
        Gauge(
            "projection_position",
            "Highest event-store position the views applied (as seen by this process)",
            registry=registry,
        ).set_function(position)
        Gauge(
            "projection_rebuild_events_per_second",
            "Rate of the running or last rebuild",
            registry=registry,
        ).set_function(rebuild_rate)

    def count(self, result: ApplyResult) -> None:
        self.batches.inc()
        for outcome, n in (
            ("applied", result.applied),
            ("duplicate", result.duplicates),
            ("filled", result.filled),
            ("skipped", result.skipped),
        ):
            if n:
                self.events.labels(outcome).inc(n)
        if result.gaps:
            self.gaps.inc(len(result.gaps))
