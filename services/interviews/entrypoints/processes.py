"""The interview service's background processes, each alone: ``interviewctl relay``
(``serve_relay``) and ``interviewctl serve scheduler`` (``serve_scheduler``).

``services/cli.py`` parses their options and checks the database first; these
run the process until SIGTERM or SIGINT. What they run is built by ``bootstrap.py``.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

import typer
from prometheus_client import CollectorRegistry

from ...common.db import DependencyUnavailableError
from ...common.health import HealthServer
from ...common.logs import configure_logging
from ...common.shutdown import block_stop_signals, wait_for_stop_signal
from ...common.tracing import setup_tracing
from ..bootstrap import InterviewsContainer, RelayProcess
from ..relay import relay_readiness
from ..scheduler import Scheduler
from ..settings import InterviewsSettings, RelaySettings

log = logging.getLogger(__name__)


def serve_relay(settings: RelaySettings | None = None) -> None:
    """``interviewctl relay``: runs until SIGTERM/SIGINT, with /metrics on its own port."""
    settings = settings or RelaySettings()
    stop = threading.Event()
    # kafka-python reports every connection at INFO; keep its warnings only.
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLogger().level))

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("relay: signal %d, stopping", signum)
        stop.set()
        if process is not None:
            process.relay.stop()

    process: RelayProcess | None = None
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    container = InterviewsContainer(
        InterviewsSettings(database_url=settings.database_url, data_dir=settings.data_dir)
    )
    backoff = 0.5
    while not stop.is_set():
        try:
            app = container.interviews()
            break
        except DependencyUnavailableError as error:
            log.warning("relay: event store unavailable (%s), retrying in %.1fs", error, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, settings.max_backoff_seconds)
    else:
        return
    registry = CollectorRegistry()
    process = RelayProcess(app, settings, registry=registry)
    server = None
    if settings.metrics_port:
        server = HealthServer(
            settings.metrics_port,
            registry,
            relay_readiness(process.relay),
            host=settings.metrics_host,
        ).start()
        log.info(
            "relay /metrics, /healthz, /readyz on http://%s:%d",
            settings.metrics_host,
            settings.metrics_port,
        )
    if stop.is_set():
        process.relay.stop()
    try:
        process.run()
    finally:
        if server is not None:
            server.shutdown()
        container.close()


def serve_scheduler(metrics_port: int = 0) -> None:
    """``interviewctl serve scheduler``: the deadline scheduler alone, with /metrics,
    /healthz and /readyz on ``metrics_port`` (0 = none)."""
    container = InterviewsContainer()
    configure_logging(container.settings.log_level, service="scheduler")
    setup_tracing("scheduler")
    block_stop_signals()
    registry = CollectorRegistry()
    scheduler = Scheduler(container, registry=registry)
    server = None
    if metrics_port:
        server = HealthServer(metrics_port, registry, scheduler.check_ready).start()
    scheduler.start()
    try:
        typer.echo(f"deadline scheduler: {wait_for_stop_signal()}, stopping", err=True)
    finally:
        scheduler.stop()
        container.close()
        if server is not None:
            server.shutdown()
