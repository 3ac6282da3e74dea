"""``interviewctl``: run, operate and audit the interview platform.

Exit codes (``services/common/cli_errors.py``): 0 done, 1 a check found a
problem, 2 a usage or user error, 3 a dependency is down, 70 an internal error.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import Annotated, Any

import typer

from .common.cli_errors import CliError, run, tool_app
from .common.cli_options import DataDirOpt, apply_data_dir, check_database_urls
from .dlq_cli import consumer_app, dlq_app
from .interviews.entrypoints.audit_cli import audit_app
from .interviews.entrypoints.deadlines_cli import deadlines_app
from .interviews.entrypoints.keys_cli import check_key_encryption_key, keys_app
from .interviews.entrypoints.process_cli import relay, serve_scheduler

app = tool_app("Run, operate and audit the interview platform.")
serve_app = tool_app("Run one service on its own.")
app.add_typer(serve_app, name="serve")
app.add_typer(dlq_app, name="dlq")
app.add_typer(consumer_app, name="consumer")
app.add_typer(audit_app, name="audit")
app.add_typer(deadlines_app, name="deadlines")
app.add_typer(keys_app, name="keys")

HostOpt = Annotated[str, typer.Option(metavar="HOST", help="Interface to listen on")]
PortOpt = Annotated[int, typer.Option(metavar="PORT", min=1, max=65535, help="TCP port")]


def _check_key_service(service: str) -> None:
    """A consumer run as its own process on Kafka opens sealed texts through the
    interviews service's key API: without KEY_SERVICE_URL it refuses to start."""
    from .common.key_client import KeyServiceConfigError, require_key_service_url
    from .common.settings import CommonSettings

    if not CommonSettings().kafka_bootstrap_servers:
        return  # embedded: no consumer in this process (``interviewctl up`` runs it)
    try:
        require_key_service_url(os.environ.get("KEY_SERVICE_URL"), service)
    except KeyServiceConfigError as error:
        raise CliError(str(error)) from None


def _check_can_listen(host: str, port: int) -> None:
    """A port in use or a host that is not ours: one line now, not a server log later."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as error:
        raise CliError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


def _check_schemas(*services: str) -> None:
    """Before a service starts: its database migrated (``AUTO_MIGRATE``, under a lock)
    or checked. A database newer than the code, or behind it with AUTO_MIGRATE=false,
    is one line and exit 2 now. A database that does not answer is left to the
    service, which answers 503 and migrates once it is back."""
    from .common.db import DATABASE_OUTAGES
    from .databases import migrate_databases

    try:
        migrate_databases(services)
    except DATABASE_OUTAGES + (OSError,):
        return


# uvicorn's httptools protocol, writing each response to the socket once.
HTTP_PROTOCOL = "services.common.http_protocol:OneWriteHttpToolsProtocol"
# In-flight requests get this long to finish after SIGTERM; open streams end
# within a second of it (``services.common.shutdown``).
GRACEFUL_SHUTDOWN_S = 10


def _run(
    asgi_app: str | Callable[..., Any],
    host: str,
    port: int,
    service: str,
    workers: int = 1,
    on_ready: Callable[[], Coroutine[Any, Any, None]] | None = None,
) -> None:
    """Serve ``asgi_app``; several worker processes need it as a factory's import string.

    ``on_ready`` runs as a task once the server listens and every lifespan has
    started (single process only)."""
    import uvicorn

    from .common.logs import configure_logging
    from .common.settings import CommonSettings
    from .common.shutdown import begin_shutdown
    from .common.tracing import setup_tracing

    level = CommonSettings().log_level
    configure_logging(level, service=service)
    setup_tracing(service)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": level.lower(),
        "log_config": None,  # uvicorn's lines go through ours (text or JSON)
        "access_log": False,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
        # Each response's headers and body in one write (an import string: the
        # worker processes import it).
        "http": HTTP_PROTOCOL,
    }
    if workers > 1:
        # The supervisor passes SIGTERM on to each worker (the interviews API: no streams).
        uvicorn.run(asgi_app, workers=workers, factory=True, **options)
        return

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            begin_shutdown()
            super().handle_exit(sig, frame)

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if on_ready is not None and self.started and not self.should_exit:
                self._announce: asyncio.Task[None] = asyncio.create_task(on_ready())

    def stopped_on_request(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    # After a graceful stop uvicorn raises the signal again under the handler
    # found at start: a stop that was asked for and done exits 0.
    signal.signal(signal.SIGTERM, stopped_on_request)
    Server(uvicorn.Config(asgi_app, **options)).run()


@app.command()
def up(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    data_dir: DataDirOpt = None,
) -> None:
    """Run every service in one process (embedded default: SQLite, no broker)."""
    apply_data_dir(data_dir)
    check_database_urls()
    check_key_encryption_key()
    _check_can_listen(host, port)
    _check_schemas("interviews", "projections", "notifications")
    from .platform import create_platform_app

    platform = create_platform_app()
    url = f"http://{_url_host(host)}:{port}"
    typer.echo(f"starting the interview platform on {url} ...")
    _run(platform, host, port, "platform", on_ready=lambda: _announce_ready(platform, url))


def _url_host(host: str) -> str:
    """The host to put in a URL for this listening address."""
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


READY_TIMEOUT_S = 60.0


async def _announce_ready(app: Any, url: str) -> None:
    """Prints ``ready: URL`` on stdout once ``/readyz`` says every service is ready.

    Asked in-process once the server accepts connections, so the line means that a
    request sent now is served. A platform still not ready after ``READY_TIMEOUT_S``
    says so on stderr and keeps asking."""
    import httpx

    transport = httpx.ASGITransport(app=app)
    deadline = time.monotonic() + READY_TIMEOUT_S
    warned = False
    async with httpx.AsyncClient(transport=transport, base_url=url) as client:
        while True:
            try:
                status = (await client.get("/readyz")).status_code
            except Exception:  # not ready yet, whatever the reason
                status = 0
            if status == 200:
                print(f"ready: {url}  (API docs: {url}/docs)", flush=True)
                return
            if not warned and time.monotonic() > deadline:
                warned = True
                print(
                    f"not ready after {READY_TIMEOUT_S:.0f} s; see {url}/readyz",
                    file=sys.stderr,
                    flush=True,
                )
            await asyncio.sleep(0.1)


@serve_app.command("interviews")
def serve_interviews(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8001,
    data_dir: DataDirOpt = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            metavar="N",
            help="Worker processes sharing the port. One process spends its CPU on HTTP "
            "and Python; more use more cores. Each has its own connection pool and "
            "group committer; optimistic concurrency keeps them consistent.",
        ),
    ] = 1,
) -> None:
    """The interview command API alone."""
    apply_data_dir(data_dir)
    check_database_urls()
    check_key_encryption_key()
    _check_can_listen(host, port)
    _check_schemas("interviews")
    if workers > 1:
        _run(
            "services.interviews.bootstrap:app_from_environment", host, port, "interviews", workers
        )
        return
    from .interviews.bootstrap import InterviewsContainer, create_app

    _run(create_app(InterviewsContainer()), host, port, "interviews")


@serve_app.command("notifications")
def serve_notifications(
    host: HostOpt = "127.0.0.1", port: PortOpt = 8003, data_dir: DataDirOpt = None
) -> None:
    """The notifications API with its delivery worker and, when KAFKA_BOOTSTRAP_SERVERS
    is set, its consumer (group "notifications")."""
    apply_data_dir(data_dir)
    check_database_urls()
    _check_key_service("notifications")
    _check_can_listen(host, port)
    _check_schemas("notifications")
    from .notifications.bootstrap import NotificationsContainer, create_app

    _run(create_app(NotificationsContainer(), workers=True), host, port, "notifications")


serve_app.command("scheduler")(serve_scheduler)
app.command()(relay)


@serve_app.command("projections")
def serve_projections(
    host: HostOpt = "127.0.0.1", port: PortOpt = 8002, data_dir: DataDirOpt = None
) -> None:
    """The projections API and dashboard, with its consumer (group "projections")
    when KAFKA_BOOTSTRAP_SERVERS is set."""
    apply_data_dir(data_dir)
    check_database_urls()
    _check_key_service("projections")
    _check_can_listen(host, port)
    _check_schemas("projections")
    from .projections.bootstrap import ProjectionsContainer, create_app

    _run(create_app(ProjectionsContainer(), workers=True), host, port, "projections")


@app.command()
def migrate(data_dir: DataDirOpt = None) -> None:
    """Bring every configured database to the code's schema and say what was done.

    The interviews database (DATABASE_URL, else DATA_DIR/interviews.sqlite: the
    service's tables and the event store's), the projections database
    (PROJECTIONS_DATABASE_URL) and the notifications database
    (NOTIFICATIONS_DATABASE_URL), each with the consumer runner's tables where a
    consumer writes. Runs whatever AUTO_MIGRATE says; safe while services run
    (one migrator at a time, under a lock). Exit 2 when a database is newer than
    this code, 3 when one does not answer."""
    apply_data_dir(data_dir)
    check_database_urls()
    from .databases import migrations

    for where, report in migrations(auto=True, event_store=True):
        typer.echo(f"{where}:")
        for line in report.lines():
            typer.echo(f"  {line}")


@app.command()
def replay(
    data_dir: DataDirOpt = None,
    source: Annotated[
        str,
        typer.Option(
            metavar="auto|kafka|log",
            help="kafka: the topic from its beginning; log: the event store's log; "
            "auto: kafka when KAFKA_BOOTSTRAP_SERVERS is set, else log",
        ),
    ] = "auto",
    batch: Annotated[
        int | None, typer.Option(metavar="N", min=1, help="Events per transaction")
    ] = None,
) -> None:
    """Rebuild every projection from the start into fresh tables, then swap them in.

    The views keep answering from the old tables until the swap; the live
    consumer keeps running. Shows a progress bar (events/s, ETA)."""
    apply_data_dir(data_dir)
    from .common.db import require_database
    from .common.logs import configure_logging
    from .projections.bootstrap import ProjectionsContainer
    from .projections.rebuild import Progress, RebuildRunningError
    from .projections.settings import ProjectionsSettings

    if source not in ("auto", "kafka", "log"):
        raise typer.BadParameter("--source must be auto, kafka or log")
    check_database_urls()
    settings = ProjectionsSettings()
    configure_logging("WARNING", service="replay")
    if batch is not None:
        settings = settings.model_copy(update={"rebuild_batch": batch})
    interviews = None
    if source == "log" or (source == "auto" and settings.embedded):
        from .common.privacy import InMemoryKeys, KeyService
        from .interviews.adapters.key_encryption import KeyEncryptionKeyError
        from .interviews.bootstrap import InterviewsContainer
        from .interviews.feed import InterviewEventFeed

        # The source must exist: a replay from nothing would create an empty store.
        interviews = InterviewsContainer(create_tables=False)
        require_database(
            interviews.settings.database_url,
            interviews.sqlite_path,
            [interviews.events_table],
            "interview event store to replay",
        )
        store = interviews.interviews()
        try:
            keys: KeyService = interviews.key_store()
        except KeyEncryptionKeyError:
            # A store from before sealing has no key-encryption key and no sealed text.
            keys = InMemoryKeys()
        container = ProjectionsContainer(
            settings,
            log_reader=InterviewEventFeed(store).read,
            log_head=store.max_position,
            # Sealed texts are opened with the key store beside the log (erased: null).
            key_service=keys,
        )
    else:
        from .common.kafka import topic_exists

        if not settings.kafka_bootstrap_servers:
            raise typer.BadParameter("--source kafka needs KAFKA_BOOTSTRAP_SERVERS")
        if not topic_exists(settings.kafka_bootstrap_servers, settings.topic):
            raise CliError(
                f"no topic {settings.topic!r} to replay on {settings.kafka_bootstrap_servers}"
            )
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
    sub: Annotated[str, typer.Option(metavar="ID", help="The user id (JWT 'sub')")],
    role: Annotated[
        str, typer.Option(metavar="ROLE", help="client, freelancer, auditor, admin or service")
    ],
    ttl: Annotated[int, typer.Option(metavar="SECONDS", min=1, help="Lifetime in seconds")] = 24
    * 3600,
    data_dir: DataDirOpt = None,
) -> None:
    """Print a development token signed with the configured secret."""
    apply_data_dir(data_dir)
    from .common.auth import check_claims, mint_token
    from .common.settings import CommonSettings

    try:
        check_claims(sub, role, ttl)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    typer.echo(mint_token(CommonSettings().resolved_auth_secret(), sub, role, ttl))


def main() -> None:
    sys.exit(run(app))


if __name__ == "__main__":
    main()
