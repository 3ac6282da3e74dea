"""docker-compose.yml runs real ``interviewctl`` commands, with health checks and
start-up order; checked against the CLI itself (no Docker needed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from services.cli import app as cli_app

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def resolve(argv: list[str]) -> Any:
    """The (click) command that ``interviewctl argv...`` runs; its options must parse.

    Typer ships its own copy of click, so groups are recognised by their
    ``commands`` mapping rather than by class.
    """
    command: Any = typer.main.get_command(cli_app)
    path = ["interviewctl"]
    rest = list(argv)
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        sub = command.commands.get(name)
        assert sub is not None, f"`{' '.join(path)} {name}` is not an interviewctl command"
        path.append(name)
        command = sub
    assert not hasattr(command, "commands"), f"`{' '.join(path)}` needs a subcommand"
    command.make_context(" ".join(path), rest)  # raises on unknown options
    return command


def app_services() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose()["services"].items()
        if service.get("command", [None])[0] == "interviewctl"
    }


def test_every_service_runs_an_existing_interviewctl_command() -> None:
    services = app_services()
    assert services, "no service runs interviewctl"
    for name, service in services.items():
        command = service["command"]
        assert isinstance(command, list), f"{name}: use the exec form of command"
        resolve(command[1:])


def test_the_platform_is_all_there() -> None:
    services = compose()["services"]
    commands = {name: " ".join(s.get("command", [])) for name, s in services.items()}
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["postgres"]["image"].startswith("postgres:")
    assert commands["interviews"].startswith("interviewctl serve interviews")
    assert commands["relay"] == "interviewctl relay"
    assert commands["projections"].startswith("interviewctl serve projections")
    assert commands["notifications"].startswith("interviewctl serve notifications")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_services_wait_for_healthy_dependencies() -> None:
    services = compose()["services"]
    for name in ("kafka", "postgres", "interviews", "relay", "projections", "notifications"):
        assert "healthcheck" in services[name], f"{name} has no health check"
    for name, service in app_services().items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict) and depends, f"{name}: depends_on with conditions"
        for dependency, rule in depends.items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert rule["condition"] in ("service_healthy", "service_started")
        env = service["environment"]
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["DATABASE_URL"].startswith("postgresql://")
    for name in ("relay", "projections", "notifications"):
        depends = services[name]["depends_on"]
        assert depends["kafka"]["condition"] == "service_healthy"
        assert depends["postgres"]["condition"] == "service_healthy"


def test_an_unknown_command_would_be_caught() -> None:
    with pytest.raises(AssertionError):
        resolve(["serve", "nonsense"])
    with pytest.raises(Exception, match="no-such-option"):
        resolve(["relay", "--no-such-option"])


def test_the_broker_keeps_its_log_in_its_volume() -> None:
    kafka = compose()["services"]["kafka"]
    log_dirs = kafka["environment"]["KAFKA_LOG_DIRS"].split(",")
    mounts = [volume.split(":")[1] for volume in kafka["volumes"]]
    named = set(compose()["volumes"])
    assert all(volume.split(":")[0] in named for volume in kafka["volumes"])
    for log_dir in log_dirs:
        assert any(log_dir == m or log_dir.startswith(m.rstrip("/") + "/") for m in mounts), (
            f"{log_dir} lies outside the broker's volumes {mounts}"
        )


def test_every_long_running_service_restarts_and_has_a_health_check() -> None:
    for name, service in compose()["services"].items():
        assert service.get("restart") == "unless-stopped", f"{name}: no restart policy"
        test = service.get("healthcheck", {}).get("test")
        assert test, f"{name}: no health check"


def test_the_platform_s_health_checks_ask_for_readiness_on_the_port_it_serves() -> None:
    """/readyz (database, broker, consumer, leadership), never only /healthz or /metrics."""
    for name, service in app_services().items():
        probe = " ".join(service["healthcheck"]["test"])
        match = re.search(r"http://127\.0\.0\.1:(\d+)(/\S*?)'", probe)
        assert match, f"{name}: the health check asks no local URL: {probe}"
        port, path = match.groups()
        assert path == "/readyz", f"{name} checks {path}, not /readyz"
        command = service["command"]
        env = service.get("environment", {})
        assert port in command or port in {str(v) for v in env.values()}, (
            f"{name} checks port {port}, which it does not serve"
        )


def test_monitoring_mounts_the_deploy_files() -> None:
    services = compose()["services"]
    for name, files in (
        ("prometheus", ("deploy/prometheus/prometheus.yml", "deploy/prometheus/alerts.yml")),
        ("grafana", ("deploy/grafana/interviews-dashboard.json",)),
    ):
        sources = {volume.split(":")[0].removeprefix("./") for volume in services[name]["volumes"]}
        for path in files:
            assert path in sources, f"{name} does not mount {path}"
            assert (ROOT / path).is_file()


def test_every_service_sends_its_traces_to_the_collector_which_forwards_them_to_jaeger() -> None:
    services = compose()["services"]
    collector = services["otel-collector"]
    config_path = next(
        v.split(":")[0].removeprefix("./")
        for v in collector["volumes"]
        if v.split(":")[1] in " ".join(collector["command"])
    )
    config = yaml.safe_load((ROOT / config_path).read_text())
    http = config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    receiver = f"http://otel-collector:{http.rsplit(':', 1)[1]}"
    for name, service in app_services().items():
        env = service["environment"]
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == receiver, f"{name} sends traces elsewhere"
        assert env["OTEL_TRACES_EXPORTER"] in ("otlp", "${OTEL_TRACES_EXPORTER:-otlp}"), name
    (pipeline,) = config["service"]["pipelines"].values()
    assert pipeline["receivers"] == ["otlp"]
    (exporter,) = pipeline["exporters"]
    assert config["exporters"][exporter]["endpoint"] == "jaeger:4317"
    jaeger = services["jaeger"]
    assert jaeger["image"].startswith("jaegertracing/all-in-one:")
    assert jaeger["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    assert "16686:16686" in jaeger["ports"], "the trace viewer is reachable from the host"
