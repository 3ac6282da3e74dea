"""The notifications service's background work, in a process of its own or beside the API.

- the consumer (group ``notifications``) on Kafka when ``KAFKA_BOOTSTRAP_SERVERS``
  is set (in the embedded default ``interviewctl up`` feeds the same spec from
  the event store's log instead);
- the delivery worker, which drains the outbox of webhook and e-mail deliveries;
- the reminder worker, which records the reminders that fall due.

``python -m services.notifications.entrypoints.worker [--no-consumer] [--no-delivery]
[--no-reminders]``
runs them until SIGTERM/SIGINT (several such processes share the work).
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

from ...common.consumer import ConsumerSpec
from ..bootstrap import NotificationsContainer, consumer_spec

# Builds a runner (not yet started) for the spec, e.g. the platform's embedded
# source on the event store's log; it gets the spec and the metrics registry.
RunnerFactory = Callable[[ConsumerSpec, Any], Any]

log = logging.getLogger(__name__)


class Workers:
    """Starts and stops the consumer runner, the delivery worker and the reminder
    worker of one container.

    The consumer is the runner ``runner_factory`` builds when one is given, else
    a Kafka runner when ``KAFKA_BOOTSTRAP_SERVERS`` is set, else none.
    """

    def __init__(
        self,
        container: NotificationsContainer,
        *,
        consumer: bool = True,
        delivery: bool = True,
        reminders: bool = True,
        registry: Any = None,
        runner_factory: RunnerFactory | None = None,
        **runner_options: Any,
    ) -> None:
        self.container = container
        self.runner_factory = runner_factory
        self.consumer = consumer
        self.delivery = delivery
        self.reminders = reminders
        self.registry = registry
        self.runner_options = runner_options
        self.runner: Any = None
        self._stop = threading.Event()
        self._starter: threading.Thread | None = None

    def start(self) -> Workers:
        """Starts at once, or (a database down) in the background as soon as it answers."""
        try:
            self._start()
        except Exception as error:  # ours or the runner factory's dependency
            log.warning(
                "cannot start the workers yet (%s: %s); retrying", type(error).__name__, error
            )
            self._starter = threading.Thread(target=self._start_later, daemon=True)
            self._starter.start()
        return self

    def _start_later(self) -> None:
        delay = 0.5
        while not self._stop.wait(delay):
            try:
                self._start()
                return
            except Exception as error:  # keep trying until stopped
                log.warning("workers still not started: %s: %s", type(error).__name__, error)
                delay = min(delay * 2, 10.0)

    def _start(self) -> None:
        settings = self.container.settings
        self.container.engine()
        if self.delivery:
            self.container.delivery_worker().start()
        if self.reminders:
            self.container.reminder_worker().start()
        if self.consumer:
            if self.runner_factory is not None:
                self.runner = self.runner_factory(consumer_spec(self.container), self.registry)
                self.runner.start()
            elif settings.kafka_bootstrap_servers:
                from ...common.runner import kafka_runner

                self.runner = kafka_runner(
                    consumer_spec(self.container),
                    settings.kafka_bootstrap_servers,
                    settings.topic,
                    registry=self.registry,
                    **({"readiness": settings.readiness_rules()} | self.runner_options),
                ).start()
            self.container.consumer = self.runner
            # The erasure worker goes with the consumer: it redacts what the consumer stored.
            self.container.erasure_worker(self.registry).start()
            if self.runner is None:
                log.warning(
                    "KAFKA_BOOTSTRAP_SERVERS is not set: no consumer here (in the embedded "
                    "default `interviewctl up` runs it on the event store's log)"
                )

    def stop(self) -> None:
        self._stop.set()
        if self._starter is not None:
            self._starter.join(15)
        if self.runner is not None:
            self.runner.stop()
            self.runner.join(15)
            self.runner = None
            self.container.consumer = None
        if self.consumer and self.container._erasures is not None:
            self.container._erasures.stop()
        if self.reminders and self.container._reminders is not None:
            self.container._reminders.stop()
        if self.delivery and self.container._worker is not None:
            self.container._worker.stop()


def main(argv: list[str] | None = None) -> None:
    from ...common.logs import configure_logging
    from ...common.tracing import setup_tracing

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-consumer", action="store_true", help="do not consume events")
    parser.add_argument("--no-delivery", action="store_true", help="do not send deliveries")
    parser.add_argument("--no-reminders", action="store_true", help="do not send reminders")
    args = parser.parse_args(argv)
    container = NotificationsContainer()
    configure_logging(container.settings.log_level, service="notifications")
    setup_tracing("notifications")
    # The signals wait here; the worker threads (which inherit the mask) never see them.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    workers = Workers(
        container,
        consumer=not args.no_consumer,
        delivery=not args.no_delivery,
        reminders=not args.no_reminders,
    )
    workers.start()
    try:
        received = signal.sigwait(stop_signals)
        log.info("notifications worker: %s, stopping", signal.Signals(received).name)
    finally:
        workers.stop()
        container.close()


if __name__ == "__main__":
    main()
