"""``interviewctl dlq list|retry|skip``: parked events of a consumer group.

A consumer that keeps failing on a well-formed event parks it, and every later
event of the same interview, in the consumer's own database. ``list`` shows
them, ``retry`` re-applies them in order through the group's spec (after
the bug or the data is fixed), ``skip`` drops them for good. Poison messages
(malformed) are not here: they are on the ``interviews.events.dlq`` topic.
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .common.cli_errors import CliError, tool_app

if TYPE_CHECKING:
    import sqlalchemy as sa

    from .common.consumer import ConsumerSpec

SERVICES = ("projections", "notifications")

dlq_app = tool_app("Show and resolve parked events of a consumer group.")

GroupOpt = Annotated[
    str,
    typer.Option(
        "--group",
        "-g",
        metavar="GROUP",
        help="Consumer group: projections, notifications, or the name configured in "
        "PROJECTIONS_CONSUMER_GROUP / NOTIFICATIONS_CONSUMER_GROUP",
    ),
]
SpecOpt = Annotated[
    str | None,
    typer.Option(
        "--spec",
        metavar="MODULE:FUNCTION",
        help="Returns the group's ConsumerSpec (default: the service's own)",
    ),
]
DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        metavar="URL",
        help="The consumer's database, postgresql:// or sqlite:/// (default: the service's own)",
    ),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", metavar="DIR", help="Where SQLite files live (DATA_DIR)"),
]
InterviewOpt = Annotated[
    str | None, typer.Option("--interview", metavar="ID", help="Only this interview")
]


def configured_groups() -> dict[str, str]:
    """Consumer group name -> the service that consumes with it: DESIGN's names and
    the ones configured (``PROJECTIONS_CONSUMER_GROUP``, ``NOTIFICATIONS_CONSUMER_GROUP``)."""
    from .notifications.settings import NotificationsSettings
    from .projections.settings import ProjectionsSettings

    return {
        "projections": "projections",
        "notifications": "notifications",
        ProjectionsSettings().projections_consumer_group: "projections",
        NotificationsSettings().notifications_consumer_group: "notifications",
    }


def _service_of(group: str) -> str:
    groups = configured_groups()
    if group not in groups:
        names = ", ".join(sorted(groups))
        raise typer.BadParameter(
            f"unknown consumer group {group!r}: one of {names} "
            "(or name its database with --database-url, or its spec with --spec)"
        )
    return groups[group]


def _require_group_database(group: str, database_url: str | None) -> None:
    """The group's own database must exist already: nothing here creates one."""
    from .common.db import require_database
    from .common.runner.tables import parked_events, processed_events

    if database_url and database_url.startswith("sqlite:///"):
        url, sqlite_path = None, Path(database_url.removeprefix("sqlite:///"))
    elif database_url:
        url, sqlite_path = database_url, Path("unused")
    elif _service_of(group) == "projections":
        from .projections.settings import ProjectionsSettings

        views = ProjectionsSettings()
        url, sqlite_path = views.view_database_url, views.sqlite_path
    else:
        from .notifications.settings import NotificationsSettings

        inbox = NotificationsSettings()
        url, sqlite_path = inbox.resolved_database_url(), inbox.sqlite_path
    require_database(
        url,
        sqlite_path,
        [processed_events.name, parked_events.name],
        f"database of consumer group {group}",
    )


def _spec(group: str, spec: str | None) -> ConsumerSpec:
    if spec:
        module, _, name = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError):
            raise typer.BadParameter(f"--spec {spec!r}: no such module:function") from None
        built: ConsumerSpec = factory()
    else:
        _require_group_database(group, None)
        from .platform import consumer_spec

        # The service's spec, whichever of its names the parked rows carry.
        return dataclasses.replace(consumer_spec(_service_of(group)), group=group)
    if built.group != group:
        raise typer.BadParameter(f"--spec builds group {built.group!r}, not {group!r}")
    return built


def _engine(
    group: str, spec: str | None, database_url: str | None, data_dir: Path | None
) -> sa.Engine:
    """The group's database: ``--database-url``, else its spec's (``--spec``, else the
    service's settings, under ``--data-dir``)."""
    _apply_data_dir(data_dir)
    if database_url:
        from .common.db import create_engine

        _require_group_database(group, database_url)
        return create_engine(database_url, Path("unused"))
    return _spec(group, spec).engine


def _apply_data_dir(data_dir: Path | None) -> None:
    import os

    if data_dir is not None:
        os.environ["DATA_DIR"] = str(data_dir)


@dlq_app.command("list")
def list_(
    group: GroupOpt,
    interview: InterviewOpt = None,
    spec: SpecOpt = None,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Parked events, oldest first, with the error that parked them."""
    from .common.runner.parked import list_parked

    parked = list_parked(_engine(group, spec, database_url, data_dir), group, interview)
    typer.echo(f"{len(parked)} parked event(s) in group {group}")
    current = None
    for event in parked:
        if event.interview_id != current:
            current = event.interview_id
            typer.echo(f"interview {current}")
        typer.echo(
            f"  v{event.version} {event.type} event={event.event_id} position={event.position}"
            f" attempts={event.attempts} parked_at={event.parked_at:%Y-%m-%dT%H:%M:%S}"
            f"{' source=' + event.source if event.source else ''}"
        )
        typer.echo(f"    error: {event.error}")


@dlq_app.command()
def retry(
    group: GroupOpt,
    interview: InterviewOpt = None,
    spec: SpecOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Re-apply parked events in order through the group's handlers."""
    _apply_data_dir(data_dir)
    from .common.runner.parked import retry_parked

    report = retry_parked(_spec(group, spec), interview)
    typer.echo(f"applied {len(report.applied)} event(s)")
    if report.still_parked:
        typer.echo(f"still parked: {len(report.still_parked)} interview(s)")
        for interview_id, error in report.still_parked.items():
            typer.echo(f"  {interview_id}: {error}")


@dlq_app.command()
def skip(
    group: GroupOpt,
    event: Annotated[
        str | None, typer.Option("--event", metavar="ID", help="Skip this event only")
    ] = None,
    interview: InterviewOpt = None,
    spec: SpecOpt = None,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Drop parked events without applying them (they count as processed)."""
    if not event and not interview:
        raise CliError("dlq skip: name --event ID or --interview ID")
    from .common.runner.parked import skip_parked

    skipped = skip_parked(
        _engine(group, spec, database_url, data_dir), group, event_id=event, interview_id=interview
    )
    typer.echo(f"skipped {len(skipped)} event(s)")


consumer_app = tool_app("Housekeeping of a consumer group's own tables.")


@consumer_app.command()
def prune(
    group: GroupOpt,
    keep: Annotated[
        int,
        typer.Option(
            "--keep",
            min=1000,
            metavar="N",
            help="Keep the processed ids of the newest N log positions (at least 1,000)",
        ),
    ] = 1_000_000,
    spec: SpecOpt = None,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Forget old processed event ids (the table grows by one row per event)."""
    from .common.runner.parked import prune_processed

    removed = prune_processed(_engine(group, spec, database_url, data_dir), group, keep)
    typer.echo(f"forgot {removed} processed event id(s) of group {group}")
