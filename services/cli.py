"""``interviewctl``: run, operate and audit the interview platform."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from .dlq_cli import consumer_app, dlq_app
from .interviews.entrypoints.audit_cli import audit_app
from .interviews.entrypoints.deadlines_cli import deadlines_app

app = typer.Typer(help="Run, operate and audit the interview platform.", no_args_is_help=True)
serve_app = typer.Typer(help="Run one service on its own.", no_args_is_help=True)
app.add_typer(serve_app, name="serve")
app.add_typer(dlq_app, name="dlq")
app.add_typer(consumer_app, name="consumer")
app.add_typer(audit_app, name="audit")
app.add_typer(deadlines_app, name="deadlines")

HostOpt = Annotated[str, typer.Option(help="Interface to listen on")]
PortOpt = Annotated[int, typer.Option(help="TCP port")]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Where SQLite files live (DATA_DIR)")
]


def _apply_data_dir(data_dir: Path | None) -> None:
    if data_dir is not None:
        os.environ["DATA_DIR"] = str(data_dir)


def _run(asgi_app: object, host: str, port: int, workers: int = 1) -> None:
    """Serve ``asgi_app``; several worker processes need it as a factory's import string."""
    import uvicorn

    from .common.settings import CommonSettings
    from .common.web import configure_logging

    level = CommonSettings().log_level
    configure_logging(level)
    uvicorn.run(
        asgi_app,  # type: ignore[arg-type]
        host=host,
        port=port,
        log_level=level.lower(),
        access_log=False,
        workers=workers if workers > 1 else None,
        factory=isinstance(asgi_app, str),
    )


@app.command()
def up(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    data_dir: DataDirOpt = None,
) -> None:
    """Run every service in one process (embedded default: SQLite, no broker)."""
    _apply_data_dir(data_dir)
    from .platform import create_platform_app

    typer.echo(f"interview platform on http://{host}:{port}  (docs: http://{host}:{port}/docs)")
    _run(create_platform_app(), host, port)


@serve_app.command("interviews")
def serve_interviews(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8001,
    data_dir: DataDirOpt = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes sharing the port. One process spends its CPU on HTTP "
            "and Python; more use more cores. Each has its own connection pool and "
            "group committer; optimistic concurrency keeps them consistent.",
        ),
    ] = 1,
) -> None:
    """The interview command API alone."""
    _apply_data_dir(data_dir)
    if workers > 1:
        _run("services.interviews.bootstrap:app_from_environment", host, port, workers)
        return
    from .interviews.bootstrap import InterviewsContainer, create_app

    _run(create_app(InterviewsContainer()), host, port)


@serve_app.command("notifications")
def serve_notifications(
    host: HostOpt = "127.0.0.1", port: PortOpt = 8003, data_dir: DataDirOpt = None
) -> None:
    """The notifications API with its delivery worker and, when KAFKA_BOOTSTRAP_SERVERS
    is set, its consumer (group "notifications")."""
    _apply_data_dir(data_dir)
    from .notifications.bootstrap import NotificationsContainer, create_app

    _run(create_app(NotificationsContainer(), workers=True), host, port)


@serve_app.command("scheduler")
def serve_scheduler(data_dir: DataDirOpt = None) -> None:
    """The deadline scheduler alone: expires unanswered invitations and offers.

    Safe to run several (one leads, the others stand by); stops on SIGTERM or Ctrl-C."""
    _apply_data_dir(data_dir)
    import signal

    from .common.web import configure_logging
    from .interviews.bootstrap import InterviewsContainer
    from .interviews.scheduler import Scheduler

    container = InterviewsContainer()
    configure_logging(container.settings.log_level)
    # The signals wait here; the scheduler thread (which inherits the mask) never sees them.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    scheduler = Scheduler(container).start()
    try:
        received = signal.sigwait(stop_signals)
        typer.echo(f"deadline scheduler: {signal.Signals(received).name}, stopping", err=True)
    finally:
        scheduler.stop()
        container.close()


@app.command()
def relay(
    data_dir: DataDirOpt = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Port of /metrics (RELAY_METRICS_PORT, 0 = off)")
    ] = None,
) -> None:
    """Publish the event store's interview events to Kafka (KAFKA_BOOTSTRAP_SERVERS)."""
    _apply_data_dir(data_dir)
    from .common.settings import CommonSettings
    from .common.web import configure_logging
    from .interviews.relay import RelaySettings, serve

    configure_logging(CommonSettings().log_level)
    settings = RelaySettings()
    if metrics_port is not None:
        settings = settings.model_copy(update={"metrics_port": metrics_port})
    if not settings.kafka_bootstrap_servers:
        raise typer.BadParameter("set KAFKA_BOOTSTRAP_SERVERS: the relay publishes to Kafka")
    serve(settings)


@serve_app.command("projections")
def serve_projections(
    host: HostOpt = "127.0.0.1", port: PortOpt = 8002, data_dir: DataDirOpt = None
) -> None:
    """The projections API and dashboard, with its consumer (group "projections")
    when KAFKA_BOOTSTRAP_SERVERS is set."""
    _apply_data_dir(data_dir)
    from .projections.bootstrap import ProjectionsContainer, create_app

    _run(create_app(ProjectionsContainer(), workers=True), host, port)


@app.command()
def replay(
    data_dir: DataDirOpt = None,
    source: Annotated[
        str,
        typer.Option(
            help="kafka: the topic from its beginning; log: the event store's log; "
            "auto: kafka when KAFKA_BOOTSTRAP_SERVERS is set, else log"
        ),
    ] = "auto",
    batch: Annotated[int | None, typer.Option(help="Events per transaction")] = None,
) -> None:
    """Rebuild every projection from the start into fresh tables, then swap them in.

    The views keep answering from the old tables until the swap; the live
    consumer keeps running. Shows a progress bar (events/s, ETA)."""
    _apply_data_dir(data_dir)
    import sys

    from .common.web import configure_logging
    from .projections.bootstrap import ProjectionsContainer
    from .projections.rebuild import Progress, RebuildRunningError
    from .projections.settings import ProjectionsSettings

    if source not in ("auto", "kafka", "log"):
        raise typer.BadParameter("--source must be auto, kafka or log")
    settings = ProjectionsSettings()
    configure_logging("WARNING")
    if batch is not None:
        settings = settings.model_copy(update={"rebuild_batch": batch})
    interviews = None
    if source == "log" or (source == "auto" and settings.embedded):
        from .interviews.bootstrap import InterviewsContainer
        from .interviews.feed import InterviewEventFeed

        interviews = InterviewsContainer()
        store = interviews.interviews()
        container = ProjectionsContainer(
            settings, log_reader=InterviewEventFeed(store).read, log_head=store.max_position
        )
    else:
        if not settings.kafka_bootstrap_servers:
            raise typer.BadParameter("--source kafka needs KAFKA_BOOTSTRAP_SERVERS")
        container = ProjectionsContainer(settings)
    tty = sys.stderr.isatty()

    def show(progress: Progress) -> None:
        sys.stderr.write(("\r" if tty else "") + progress.render() + ("" if tty else "\n"))
        sys.stderr.flush()

    try:
        report = container.rebuild(progress=show)
    except RebuildRunningError as error:
        typer.echo(f"replay: {error}", err=True)
        raise typer.Exit(1) from None
    finally:
        container.close()
        if interviews is not None:
            interviews.close()
    if tty:
        sys.stderr.write("\n")
    typer.echo(
        f"rebuilt every view into generation {report.generation} (replacing "
        f"{report.replaced}): {report.events:,} events, {report.applied:,} applied, "
        f"{report.duplicates:,} duplicates, {report.gaps} gaps, {report.poison} poison, "
        f"{len(report.unfoldable)} unfoldable, "
        f"{report.seconds:.1f}s ({report.rate:,.0f} events/s)"
    )
    if report.unfoldable:
        typer.echo(
            f"replay: {len(report.unfoldable)} event(s) could not be folded and were left out "
            "of the views:",
            err=True,
        )
        for left in report.unfoldable:
            typer.echo(
                f"  {left.event_id} {left.type} interview {left.interview_id} "
                f"v{left.version} @{left.position}: {left.error}",
                err=True,
            )


@app.command()
def token(
    sub: Annotated[str, typer.Option(help="The user id (JWT 'sub')")],
    role: Annotated[str, typer.Option(help="client, freelancer, auditor or admin")],
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds")] = 24 * 3600,
    data_dir: DataDirOpt = None,
) -> None:
    """Print a development token signed with the configured secret."""
    _apply_data_dir(data_dir)
    from .common.auth import mint_token
    from .common.settings import CommonSettings

    try:
        typer.echo(mint_token(CommonSettings().resolved_auth_secret(), sub, role, ttl))
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
