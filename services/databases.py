"""Every database of the platform, migrated in one place: ``interviewctl migrate``
and the checks the CLI makes before it starts a service."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from .common.db import redacted
from .common.migrations import Report

SERVICES = ("interviews", "projections", "notifications")


def where(database_url: str | None, sqlite_path: Path) -> str:
    return redacted(database_url) if database_url else str(sqlite_path)


def migrate_databases(
    services: Sequence[str] = SERVICES, *, auto: bool | None = None, event_store: bool = False
) -> list[tuple[str, Report]]:
    """Every database of ``services`` migrated (see ``migrations``)."""
    return list(migrations(services, auto=auto, event_store=event_store))


def migrations(
    services: Sequence[str] = SERVICES, *, auto: bool | None = None, event_store: bool = False
) -> Iterator[tuple[str, Report]]:
    """Migrates each service's database (``auto=None``: as ``AUTO_MIGRATE`` says).

    ``event_store``: the interviews database's event store tables are created too
    (by ``eventsourcing``, as the service would on start). Returns, per database,
    where it is and what was done, as each is done; raises ``SchemaError`` for a database this
    code must not use."""
    from .interviews.bootstrap import InterviewsContainer
    from .notifications.bootstrap import NotificationsContainer
    from .projections.bootstrap import ProjectionsContainer

    for service in services:
        if service == "interviews":
            interviews = InterviewsContainer()
            s = interviews.settings
            report = interviews.migrate(auto=auto)
            if event_store:
                try:
                    interviews.interviews()
                finally:
                    interviews.close()
                report.notes.append(
                    f"interviews database: event store tables ready ({interviews.events_table})"
                )
            yield ((where(s.database_url, interviews.sqlite_path), report))
        elif service == "projections":
            projections = ProjectionsContainer()
            p = projections.settings
            report = projections.migrate(auto=auto)
            yield ((where(p.view_database_url, p.sqlite_path), report))
        elif service == "notifications":
            notifications = NotificationsContainer()
            n = notifications.settings
            report = notifications.migrate(auto=auto)
            yield ((where(n.resolved_database_url(), n.sqlite_path), report))
        else:
            raise ValueError(f"no such service: {service}")
