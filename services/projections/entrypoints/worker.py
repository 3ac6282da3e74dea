"""``python -m services.projections.entrypoints.worker``: the projections consumer
(group ``projections``) on Kafka alone, until SIGTERM/SIGINT; several such
processes share the topic's partitions. ``bootstrap.py:ConsumerWorker`` is what
it runs (``interviewctl serve projections`` runs it beside the API). In the
embedded default ``interviewctl up`` feeds the same ``consumer_spec`` from the
event store's log instead.
"""

from __future__ import annotations

import logging

from ...common.logs import configure_logging
from ...common.shutdown import block_stop_signals, wait_for_stop_signal
from ...common.tracing import setup_tracing
from ..bootstrap import ConsumerWorker, ProjectionsContainer

log = logging.getLogger(__name__)


def main() -> None:
    container = ProjectionsContainer()
    configure_logging(container.settings.log_level, service="projections")
    setup_tracing("projections")
    block_stop_signals()
    worker = ConsumerWorker(container).start()
    try:
        log.info("projections consumer: %s, stopping", wait_for_stop_signal())
    finally:
        worker.stop()
        container.close()


if __name__ == "__main__":
    main()
