"""The notifications service's own metrics (the runner and the HTTP layer have theirs)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge

from .delivery import DeliveryWorker
from .reminders import ReminderWorker


def install_notification_metrics(
    registry: CollectorRegistry,
    recorded: Callable[[], int],
    delivery: Callable[[], DeliveryWorker | None],
    reminders: Callable[[], ReminderWorker | None],
) -> None:
    """Gauges read at scrape time from this process's consumer (``recorded``), its
    delivery worker and its reminder worker (either may not be running)."""
    Gauge(
        "notifications_recorded_total",
        "Inbox entries recorded by this process's consumer",
        registry=registry,
    ).set_function(lambda: float(recorded()))
    outcomes = Gauge(
        "notification_delivery_attempts_total",
        "Delivery attempts made by this process's worker, by outcome",
        ["outcome"],
        registry=registry,
    )
    for outcome in ("delivered", "failed", "dead", "unknown"):

        def delivery_count(o: str = outcome) -> float:
            worker = delivery()
            return float(worker.counts[o]) if worker else 0.0

        outcomes.labels(outcome).set_function(delivery_count)

    def disabled() -> float:
        worker = delivery()
        return float(worker.disabled) if worker else 0.0

    Gauge(
        "notification_webhooks_disabled_total",
        "Webhooks this process's worker deactivated (410 Gone or too many dead deliveries)",
        registry=registry,
    ).set_function(disabled)
    settled = Gauge(
        "notification_reminders_total",
        "Reminders settled by this process's reminder worker: sent, or skipped (deadline passed)",
        ["outcome"],
        registry=registry,
    )
    for outcome in ("sent", "skipped"):

        def reminder_count(o: str = outcome) -> float:
            worker = reminders()
            return float(worker.counts[o]) if worker else 0.0

        settled.labels(outcome).set_function(reminder_count)
