"""One consumer process of a scale-out measurement (``bench.projections``).

``python -m bench.consumer_process SERVICE DATABASE_URL BOOTSTRAP TOPIC GROUP``
builds the projections or notifications consumer (the shared runner on a
``KafkaSource``) of consumer group GROUP, prints ``ready``, starts consuming on
a line ``go`` on its standard input (so several processes join the group
together) and stops when that input closes. After each committed batch it prints
``<wall-clock time> <events applied so far>``, so the parent can add up several
processes on one clock; on each rebalance ``assigned|revoked <time> <partitions>``
(comma-separated, ``-`` for none), so it can tell when each process owned what;
at the end ``cpu <seconds>``, the CPU time it used.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

PARTITIONS = 6


def spec_for(service: str, url: str, bootstrap: str, topic: str, group: str, tmp: str) -> Any:
    """The service's consumer spec and its container (closed by the caller)."""
    if service == "projections":
        from services.projections.bootstrap import ProjectionsContainer, consumer_spec
        from services.projections.settings import ProjectionsSettings

        container: Any = ProjectionsContainer(
            ProjectionsSettings(
                database_url=url,
                projections_database_url=url,
                kafka_bootstrap_servers=bootstrap,
                data_dir=Path(tmp),
                auth_secret="bench",
                projections_consumer_group=group,
            ).model_copy(update={"topic": topic})
        )
        return consumer_spec(container), container
    if service == "notifications":
        from services.notifications.bootstrap import NotificationsContainer
        from services.notifications.bootstrap import consumer_spec as notifications_spec
        from services.notifications.settings import NotificationsSettings

        container = NotificationsContainer(
            NotificationsSettings(
                notifications_database_url=url,
                data_dir=Path(tmp),
                auth_secret="bench",
                notifications_consumer_group=group,
            )
        )
        return notifications_spec(container), container
    raise SystemExit(f"unknown service {service!r}")


def main(argv: list[str]) -> int:
    from services.common.kafka import TopicLayout
    from services.common.runner.kafka_source import kafka_runner

    service, url, bootstrap, topic, group = argv
    with tempfile.TemporaryDirectory() as tmp:
        spec, container = spec_for(service, url, bootstrap, topic, group, tmp)
        runner: Any = None
        notify = spec.on_committed

        def committed(position: int) -> None:
            if notify is not None:
                notify(position)
            print(f"{time.time():.6f} {runner.stats.processed}", flush=True)

        spec.on_committed = committed
        runner = kafka_runner(spec, bootstrap, topic, layout=TopicLayout(PARTITIONS, -1))
        # The processes of a run start together, but the broker forms a group
        # without waiting (group.initial.rebalance.delay.ms=0 in scripts/services.sh):
        # the first to join takes every partition, and with the service's 3 s
        # heartbeat it learns of the second member's join only up to 3 s later,
        # draining alone meanwhile (sometimes the whole topic). Heartbeats every
        # 100 ms make the group split within a moment; the figure measures the
        # apply side by side, not how fast a group forms.
        runner.source.consumer_overrides["heartbeat_interval_ms"] = 100
        _report_rebalances(runner.source)
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            container.close()
            return 0
        runner.start()
        threading.Thread(target=lambda: (sys.stdin.read(), runner.stop()), daemon=True).start()
        runner.join()
        container.close()
    times = os.times()
    print(f"cpu {times.user + times.system:.3f}", flush=True)
    return 0


def _report_rebalances(source: Any) -> None:
    """Prints each assignment and revocation of ``source`` (a ``KafkaSource``)."""
    assigned, revoked = source.on_assigned, source.on_revoked

    def say(what: str, partitions: Any) -> None:
        parts = ",".join(str(tp.partition) for tp in sorted(partitions)) or "-"
        print(f"{what} {time.time():.6f} {parts}", flush=True)

    def on_assigned(partitions: Any) -> None:
        assigned(partitions)
        say("assigned", partitions)

    def on_revoked(partitions: Any) -> None:
        revoked(partitions)
        say("revoked", partitions)

    source.on_assigned, source.on_revoked = on_assigned, on_revoked


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
