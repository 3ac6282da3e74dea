"""The interviews database's migration history (``alembic_version_interviews``).

It owns the service's tables beside the event store: the relay's position,
the scheduler's deadlines, positions and leases, the audit checkpoints, and
``event_store_schema``. The event store's own tables belong to
``eventsourcing``, which creates them; ``event_store_schema`` records which
version of the library they were written by, so that an upgrade can tell
(``check_event_store``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.metadata import version

import sqlalchemy as sa

from ...common.migrations import DatabaseNewerThanCodeError, History, SchemaError
from ..adapters import key_tables  # noqa: F401 - registers the key store's tables
from ..adapters.tables import EVENT_STORE_SCHEMA, metadata

HISTORY = History(
    name="interviews",
    package=__name__,
    metadata=metadata,
    first_release_tables=(
        "stored_events",  # the event store on SQLite
        "interviews_events",  # and on PostgreSQL
        "relay_position",
        "deadlines",
        "scheduler_positions",
        "scheduler_leases",
        "audit_checkpoints",
    ),
)

LIBRARY = "eventsourcing"


def check_event_store(conn: sa.Connection, auto: bool) -> list[str]:
    """Compares the recorded ``eventsourcing`` version with the installed one and
    records the installed one. A store written by a newer major version (another
    table layout) refuses this code; an older major one needs the library's own
    upgrade first. Returns what it recorded."""
    installed = version(LIBRARY)
    recorded = conn.execute(
        sa.select(EVENT_STORE_SCHEMA.c.version).where(EVENT_STORE_SCHEMA.c.library == LIBRARY)
    ).scalar()
    if recorded is not None:
        ours, theirs = _major(installed), _major(recorded)
        if theirs > ours:
            raise DatabaseNewerThanCodeError(
                f"the event store was written by {LIBRARY} {recorded}, newer than this "
                f"code's {installed}: run a release that uses it"
            )
        if theirs < ours:
            raise SchemaError(
                f"the event store was written by {LIBRARY} {recorded}; this code uses "
                f"{installed}, whose tables differ: upgrade the store as {LIBRARY}'s "
                "release notes say first"
            )
    if recorded == installed or not auto:
        return []
    now = datetime.now(UTC)
    if recorded is None:
        conn.execute(EVENT_STORE_SCHEMA.insert().values(library=LIBRARY, version=installed,
                                                        recorded_at=now))  # fmt: skip
        return [f"event store: recorded {LIBRARY} {installed}"]
    conn.execute(
        EVENT_STORE_SCHEMA.update()
        .where(EVENT_STORE_SCHEMA.c.library == LIBRARY)
        .values(version=installed, recorded_at=now)
    )
    return [f"event store: {LIBRARY} {recorded} -> {installed}"]


def _major(text: str) -> int:
    head = text.split(".", 1)[0]
    return int(head) if head.isdigit() else 0
