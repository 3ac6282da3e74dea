"""The projections consumer (group ``projections``) on Kafka, beside the API or alone.

``python -m services.projections.entrypoints.worker`` runs only the consumer
until SIGTERM/SIGINT; several such processes share the topic's partitions.
In the embedded default ``interviewctl up`` feeds the same ``consumer_spec``
from the event store's log instead.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from ..bootstrap import UNAVAILABLE, ProjectionsContainer, consumer_spec

log = logging.getLogger(__name__)


class ConsumerWorker:
    """Starts the Kafka runner at once, or in the background once the database answers."""

    def __init__(
        self, container: ProjectionsContainer, *, registry: Any = None, **runner_options: Any
    ) -> None:
        self.container = container
        self.registry = registry
        self.runner_options = runner_options
        self.runner: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ConsumerWorker:
        self._thread = threading.Thread(target=self._start, name="projections-start", daemon=True)
        self._thread.start()
        return self

    def _start(self) -> None:
        from ...common.runner.kafka_source import kafka_runner

        settings = self.container.settings
        assert settings.kafka_bootstrap_servers, "the consumer worker reads Kafka"
        delay = 0.5
        while not self._stop.is_set():
            try:
                spec = consumer_spec(self.container)
                break
            except UNAVAILABLE as error:
                log.warning("views database unavailable (%s); consumer starts later", error)
            except Exception:  # never leave the process up without its consumer
                log.exception("cannot start the projections consumer yet; retrying")
            self._stop.wait(delay)
            delay = min(delay * 2, 10.0)
        else:
            return
        self.container.start_rebuild_if_needed()
        self.runner = kafka_runner(
            spec,
            settings.kafka_bootstrap_servers,
            settings.topic,
            layout=settings.topic_layout(),
            registry=self.registry,
            **({"readiness": settings.readiness_rules()} | self.runner_options),
        ).start()
        self.container.consumer = self.runner

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        if self.runner is not None:
            self.runner.stop()
            self.runner.join(30)


def main() -> None:
    from ...common.logs import configure_logging
    from ...common.tracing import setup_tracing

    container = ProjectionsContainer()
    configure_logging(container.settings.log_level, service="projections")
    setup_tracing("projections")
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    worker = ConsumerWorker(container).start()
    try:
        received = signal.sigwait(stop_signals)
        log.info("projections consumer: %s, stopping", signal.Signals(received).name)
    finally:
        worker.stop()
        container.close()


if __name__ == "__main__":
    main()
