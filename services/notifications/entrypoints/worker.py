"""``python -m services.notifications.entrypoints.worker [--no-consumer] [--no-delivery]
[--no-reminders]``: the notifications service's background work alone, until
SIGTERM/SIGINT (several such processes share the work):

- the consumer (group ``notifications``) on Kafka when ``KAFKA_BOOTSTRAP_SERVERS``
  is set (in the embedded default ``interviewctl up`` feeds the same spec from
  the event store's log instead);
- the delivery worker, which drains the outbox of webhook and e-mail deliveries;
- the reminder worker, which records the reminders that fall due.

``bootstrap.py:Workers`` is what it runs.
"""

from __future__ import annotations

import argparse
import logging

from ...common.logs import configure_logging
from ...common.shutdown import block_stop_signals, wait_for_stop_signal
from ...common.tracing import setup_tracing
from ..bootstrap import NotificationsContainer, Workers

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The notifications service's background work.")
    parser.add_argument("--no-consumer", action="store_true", help="do not consume events")
    parser.add_argument("--no-delivery", action="store_true", help="do not send deliveries")
    parser.add_argument("--no-reminders", action="store_true", help="do not send reminders")
    args = parser.parse_args(argv)
    container = NotificationsContainer()
    configure_logging(container.settings.log_level, service="notifications")
    setup_tracing("notifications")
    block_stop_signals()
    workers = Workers(
        container,
        consumer=not args.no_consumer,
        delivery=not args.no_delivery,
        reminders=not args.no_reminders,
    )
    workers.start()
    try:
        log.info("notifications worker: %s, stopping", wait_for_stop_signal())
    finally:
        workers.stop()
        container.close()


if __name__ == "__main__":
    main()
