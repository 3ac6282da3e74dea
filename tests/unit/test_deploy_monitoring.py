"""deploy/: the alert rules and the Grafana dashboard name only metrics the services
export, in expressions that parse."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from services.common.runner.metrics import RunnerMetrics
from services.interviews.bootstrap import InterviewsContainer
from services.interviews.bootstrap import create_app as create_interviews_app
from services.interviews.relay import RelayCollector, RelayStats
from services.interviews.scheduler import Scheduler, SchedulerCollector
from services.interviews.settings import InterviewsSettings
from services.notifications.bootstrap import NotificationsContainer
from services.notifications.bootstrap import create_app as create_notifications_app
from services.notifications.settings import NotificationsSettings
from services.projections.bootstrap import ProjectionsContainer
from services.projections.bootstrap import create_app as create_projections_app
from services.projections.settings import ProjectionsSettings
from tests.conftest import TEST_SECRET

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

# PromQL words that are not metric names.
FUNCTIONS = {
    "sum", "avg", "min", "max", "count", "rate", "irate", "increase", "deriv", "delta",
    "histogram_quantile", "by", "without", "and", "or", "unless", "on", "ignoring",
    "group_left", "group_right", "bool", "offset", "abs", "clamp_min", "clamp_max",
    "topk", "bottomk", "time", "vector", "scalar", "le",
}  # fmt: skip
SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
    "untyped": ("",),
}


def alert_expressions() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "interviews-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (labels, strings, durations and
    functions taken out)."""
    text = re.sub(r'"[^"]*"', '""', expr)  # label values
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)  # grouping labels
    words = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", text))
    return {w for w in words if w not in FUNCTIONS}


def check_structure(expr: str) -> None:
    """Balanced brackets, no empty selector, a known function before every call."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    for char in re.sub(r'"[^"]*"', '""', expr):
        if char in "([{":
            stack.append(char)
        elif char in pairs:
            assert stack and stack.pop() == pairs[char], f"unbalanced {char!r} in {expr!r}"
    assert not stack, f"unclosed {stack} in {expr!r}"
    for call in re.findall(r"\b([a-zA-Z_]+)\s*\(", expr):
        assert call in FUNCTIONS, f"unknown function {call!r} in {expr!r}"
    for selector in re.findall(r"\{([^}]*)\}", expr):
        for matcher in filter(None, (m.strip() for m in selector.split(","))):
            assert re.fullmatch(r'[a-zA-Z_][a-zA-Z0-9_]*\s*(=~|!~|!=|=)\s*"[^"]*"', matcher), (
                f"bad label matcher {matcher!r} in {expr!r}"
            )
    for window in re.findall(r"\[([^\]]*)\]", expr):
        assert re.fullmatch(r"\d+[smhdw]", window), f"bad range {window!r} in {expr!r}"


def exported(registry: CollectorRegistry) -> set[str]:
    return {
        family.name + suffix
        for family in registry.collect()
        for suffix in SAMPLE_SUFFIXES[family.type]
    }


@pytest.fixture(scope="module")
def exported_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every sample name the services export, from their own registries, built in-process."""
    data = tmp_path_factory.mktemp("data")
    names: set[str] = set()
    interviews = InterviewsContainer(
        InterviewsSettings(database_url=None, data_dir=data, auth_secret=TEST_SECRET)
    )
    projections = ProjectionsContainer(ProjectionsSettings(database_url=None, data_dir=data))
    notifications = NotificationsContainer(
        NotificationsSettings(database_url=None, data_dir=data, auth_secret=TEST_SECRET)
    )
    for app in (
        create_interviews_app(interviews),
        create_projections_app(projections),
        create_notifications_app(notifications),
    ):
        names |= exported(app.state.metrics.registry)
    consumers = CollectorRegistry()
    RunnerMetrics(consumers)
    names |= exported(consumers)
    relay = CollectorRegistry()
    relay.register(
        RelayCollector(
            SimpleNamespace(feed=SimpleNamespace(max_position=lambda: 0), stats=RelayStats())
        )  # type: ignore[arg-type]
    )
    names |= exported(relay)
    scheduler = CollectorRegistry()
    scheduler.register(SchedulerCollector(Scheduler(interviews)))
    names |= exported(scheduler)
    interviews.close()
    return names


@pytest.mark.parametrize(
    "source,expressions",
    [("alerts", alert_expressions()), ("dashboard", dashboard_expressions())],
)
def test_every_metric_named_in_deploy_is_exported_by_a_service(
    source: str, expressions: list[str], exported_names: set[str]
) -> None:
    assert expressions, f"{source} has no expressions"
    for expr in expressions:
        check_structure(expr)
        names = metric_names(expr)
        assert names, f"{source}: {expr!r} names no metric"
        assert names <= exported_names, f"{source}: {sorted(names - exported_names)} not exported"


def test_the_alerts_cover_what_an_operator_is_paged_for(exported_names: set[str]) -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    by_metric: dict[str, list[str]] = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["alert"] and rule["annotations"]["summary"]
            for name in metric_names(rule["expr"]):
                by_metric.setdefault(name, []).append(rule["alert"])
    for needed in (
        "consumer_lag",
        "relay_lag_positions",
        "consumer_parked_events",
        "consumer_dead_letters_total",
        "scheduler_failures_total",
        "notification_delivery_attempts_total",
        "http_requests_total",
        "http_request_duration_seconds_bucket",
    ):
        assert needed in by_metric, f"no alert on {needed}"


def test_the_checks_catch_an_unknown_metric_and_a_broken_expression(
    exported_names: set[str],
) -> None:
    assert "made_up_metric_total" not in exported_names
    assert metric_names('sum by (group) (rate(made_up_metric_total{a="x"}[5m]))') == {
        "made_up_metric_total"
    }
    with pytest.raises(AssertionError):
        check_structure("sum(rate(consumer_lag[5m])")
    with pytest.raises(AssertionError):
        check_structure("sum(rate(consumer_lag[five]))")


def test_prometheus_scrapes_every_service_and_loads_the_rules() -> None:
    config: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"interviews", "projections", "notifications", "relay", "scheduler"}
    for name, job in jobs.items():
        (target,) = job["static_configs"][0]["targets"]
        host, port = target.split(":")
        assert host in compose, f"{name} scrapes {host}, not a compose service"
        command = " ".join(compose[host].get("command", []))
        env = compose[host].get("environment", {})
        assert port in command or port in {str(v) for v in env.values()}, (
            f"{host} does not listen on {port}"
        )
    assert any(path.endswith("alerts.yml") for path in config["rule_files"])
