"""``interviewctl relay`` and ``interviewctl serve scheduler``: their options and the
checks made before they start; ``processes.py`` runs them. (``services/cli.py``
adds both commands to ``interviewctl``.)

The processes are imported when a command runs, not with the CLI: ``interviewctl``
commands that need no database or broker import neither.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ...common.cli_options import DataDirOpt, apply_data_dir, check_database_urls
from .keys_cli import check_key_encryption_key


def _check_schema() -> None:
    """Before the process starts: the interviews database migrated (``AUTO_MIGRATE``,
    under a lock) or checked. A database newer than the code, or behind it with
    AUTO_MIGRATE=false, is one line and exit 2 now. A database that does not
    answer is left to the process, which waits for it."""
    import sqlalchemy as sa

    from ..bootstrap import InterviewsContainer

    try:
        InterviewsContainer().migrate()
    except (sa.exc.OperationalError, sa.exc.InterfaceError, OSError):
        return


def serve_scheduler(
    data_dir: DataDirOpt = None,
    metrics_port: Annotated[
        int,
        typer.Option(
            envvar="SCHEDULER_METRICS_PORT",
            help="Port of /metrics, /healthz and /readyz on 0.0.0.0 (0 = off)",
        ),
    ] = 0,
) -> None:
    """The deadline scheduler alone: expires unanswered invitations and offers.

    Safe to run several (one leads, the others stand by); stops on SIGTERM or Ctrl-C."""
    apply_data_dir(data_dir)
    check_database_urls()
    check_key_encryption_key()
    _check_schema()
    from .processes import serve_scheduler as run_scheduler

    run_scheduler(metrics_port)


def relay(
    data_dir: DataDirOpt = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            metavar="PORT", min=0, max=65535, help="Port of /metrics (RELAY_METRICS_PORT, 0 = off)"
        ),
    ] = None,
) -> None:
    """Publish the event store's interview events to Kafka (KAFKA_BOOTSTRAP_SERVERS)."""
    apply_data_dir(data_dir)
    check_database_urls()
    check_key_encryption_key()
    from ...common.logs import configure_logging
    from ...common.settings import CommonSettings
    from ...common.tracing import setup_tracing
    from ..settings import RelaySettings
    from .processes import serve_relay

    configure_logging(CommonSettings().log_level, service="relay")
    setup_tracing("relay")
    settings = RelaySettings()
    if metrics_port is not None:
        settings = settings.model_copy(update={"metrics_port": metrics_port})
    if not settings.kafka_bootstrap_servers:
        raise typer.BadParameter("set KAFKA_BOOTSTRAP_SERVERS: the relay publishes to Kafka")
    _check_schema()
    serve_relay(settings)
