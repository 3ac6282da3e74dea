"""The relay and the scheduler answer /readyz too (compose's health checks ask it)."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from services.common.health import HealthServer
from services.interviews.bootstrap import InterviewsContainer
from services.interviews.relay import RelayStats, relay_readiness
from services.interviews.scheduler import Scheduler, SchedulerNotReadyError
from tests.support.waiting import wait_until


class Switch:
    def __init__(self) -> None:
        self.problem: str | None = None

    def __call__(self) -> None:
        if self.problem:
            raise RuntimeError(self.problem)


def test_the_health_server_answers_ready_not_ready_and_metrics() -> None:
    registry = CollectorRegistry()
    Counter("probe_checks", "a metric", registry=registry).inc()
    switch = Switch()
    server = HealthServer(0, registry, switch, host="127.0.0.1").start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=5) as http:
            assert http.get("/healthz").json() == {"status": "ok"}
            assert http.get("/readyz").status_code == 200
            switch.problem = "the database is down"
            refused = http.get("/readyz")
            assert refused.status_code == 503
            assert refused.json() == {
                "code": "unavailable",
                "detail": "not ready: RuntimeError: the database is down",
            }
            assert "probe_checks_total 1.0" in http.get("/metrics").text
            assert http.get("/nothing").status_code == 404
    finally:
        server.shutdown()


def test_a_leading_relay_without_a_broker_is_not_ready_a_standby_is() -> None:
    stats = RelayStats()
    store_up = Switch()
    relay = SimpleNamespace(stats=stats, feed=SimpleNamespace(max_position=store_up))
    ready = relay_readiness(relay)  # type: ignore[arg-type]

    ready()  # standing by, the store answers
    stats.leader = True
    with pytest.raises(Exception, match="broker"):
        ready()
    stats.connected = True
    ready()
    store_up.problem = "connection refused"
    with pytest.raises(RuntimeError, match="connection refused"):
        ready()


def test_the_scheduler_is_ready_only_while_its_loop_runs_and_ticks(
    interviews_container: InterviewsContainer,
) -> None:
    scheduler = Scheduler(interviews_container, max_sleep=0.1)
    with pytest.raises(SchedulerNotReadyError, match="not running"):
        scheduler.check_ready()
    scheduler.start()
    try:

        def ready() -> bool:
            try:
                scheduler.check_ready()
            except SchedulerNotReadyError:
                return False
            return True

        assert wait_until(ready, timeout=20)
    finally:
        scheduler.stop()
    with pytest.raises(SchedulerNotReadyError, match="not running"):
        scheduler.check_ready()
