"""Schema migrations: one Alembic history per kind of database, run by one function.

Every table the project owns belongs to exactly one *history*, and each history
keeps its revision in a version table of its own (``alembic_version_<name>``),
so several histories can share one PostgreSQL database:

- ``interviews``: the interview service's own tables beside the event store
  (relay position, deadlines, scheduler positions and leases, audit
  checkpoints) and ``event_store_schema``, which records the version of
  ``eventsourcing`` whose tables the store holds (those tables are the
  library's, created by it);
- ``projections``: the fixed tables of the read models (the generation
  pointer and the generations). The view tables of each generation are built
  by the rebuild mechanism, which versions them itself;
- ``notifications``: inbox, webhooks, deliveries, reminders, preferences;
- ``runner``: the consumer runner's bookkeeping (processed events, offsets,
  positions, parked events), applied to every database a consumer writes to.

``migrate`` is the one entry point, used on start (``AUTO_MIGRATE``), by
``interviewctl migrate`` and by tests. It holds a lock while it works (a
PostgreSQL advisory lock; an exclusive lock on a file beside an SQLite
database) so processes starting together migrate once; ``schema_lock`` is that
lock, for schema changes made outside Alembic (the event store's tables). The env.py and the
revisions live inside the package: no ``alembic.ini`` is read.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError

log = logging.getLogger(__name__)


class SchemaError(Exception):
    """The database's schema does not fit this code (a service must not start)."""


class DatabaseNewerThanCodeError(SchemaError):
    """The database was migrated by a newer release than this code."""


class SchemaBehindError(SchemaError):
    """The database needs migrating and ``AUTO_MIGRATE`` is off."""


@dataclass(frozen=True)
class History:
    """One migration history: its revisions (a package of this project), the
    models its revisions must produce, and the tables of the first release."""

    name: str
    package: str  # holds env.py and versions/
    metadata: sa.MetaData | tuple[sa.MetaData, ...]
    # Tables whose presence, without a version table, marks a first-release database.
    first_release_tables: tuple[str, ...]

    @property
    def version_table(self) -> str:
        return f"alembic_version_{self.name}"

    @property
    def location(self) -> str:
        module = import_module(self.package)
        assert module.__file__ is not None
        return str(Path(module.__file__).parent)

    @property
    def metadatas(self) -> tuple[sa.MetaData, ...]:
        return self.metadata if isinstance(self.metadata, tuple) else (self.metadata,)

    def owns(self, name: str | None) -> bool:
        """compare_metadata looks only at the history's own tables (a database may
        hold several histories, the event store and the view generations)."""
        return name is not None and any(name in m.tables for m in self.metadatas)

    def config(self, connection: sa.Connection | None = None) -> Config:
        """Alembic configured in code (no alembic.ini)."""
        config = Config()
        config.set_main_option("script_location", self.location)
        config.attributes["history"] = self
        config.attributes["connection"] = connection
        return config

    def script(self) -> ScriptDirectory:
        return ScriptDirectory.from_config(self.config())

    def head(self) -> str:
        head = self.script().get_current_head()
        assert head is not None
        return head


@dataclass(frozen=True)
class Step:
    """What ``migrate`` did (or found) for one history of one database."""

    database: str
    history: str
    before: str | None
    after: str
    adopted: bool = False  # a first-release database without a version table

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def describe(self) -> str:
        if not self.changed:
            return f"{self.database}: {self.history} is current ({self.after})"
        if self.adopted:
            return (
                f"{self.database}: {self.history} had the first release's tables and no "
                f"version: adopted at the baseline, now at {self.after}"
            )
        if self.before is None:
            return f"{self.database}: {self.history} created at {self.after}"
        return f"{self.database}: {self.history} upgraded {self.before} -> {self.after}"


@dataclass
class Report:
    """What ``migrate`` did to one database: a step per history, and notes (the
    event store's recorded version)."""

    steps: list[Step]
    notes: list[str]

    @property
    def changed(self) -> bool:
        return any(step.changed for step in self.steps) or bool(self.notes)

    def lines(self) -> list[str]:
        return [step.describe() for step in self.steps] + self.notes


Hook = Callable[[sa.Connection, bool], list[str]]


def migrate(
    engine: sa.Engine,
    histories: Sequence[History],
    *,
    auto: bool = True,
    database: str = "database",
    after: Hook | None = None,
) -> Report:
    """Brings ``histories`` in the database of ``engine`` to their heads, under a lock.

    ``auto=False`` (``AUTO_MIGRATE=false``) changes nothing and raises
    ``SchemaBehindError`` when a history is behind. A revision this code does
    not know (a newer release migrated the database) raises
    ``DatabaseNewerThanCodeError`` in either case. ``after(conn, auto)`` runs
    last under the same lock (the event store's version check) and returns
    lines to report.
    """
    steps: list[Step] = []
    notes: list[str] = []
    with schema_lock(engine) as conn:
        for history in histories:
            steps.append(_migrate_one(conn, history, auto=auto, database=database))
        if after is not None:
            notes = [f"{database}: {note}" for note in after(conn, auto)]
            conn.commit()
    report = Report(steps, notes)
    for line in report.lines():
        if "is current" not in line:
            log.info("%s", line)
    return report


def current_revision(conn: sa.Connection, history: History) -> str | None:
    context = MigrationContext.configure(conn, opts={"version_table": history.version_table})
    return context.get_current_revision()


def _migrate_one(conn: sa.Connection, history: History, *, auto: bool, database: str) -> Step:
    script = history.script()
    head = script.get_current_head()
    assert head is not None
    before = current_revision(conn, history)
    conn.commit()
    if before is not None:
        try:
            known = script.get_revision(before) is not None
        except CommandError:
            known = False
        if not known:
            raise DatabaseNewerThanCodeError(
                f"the {database} is at {history.name} migration {before!r}, which this code "
                f"does not know (its newest is {head!r}): a newer release migrated it; "
                "run that release, or a newer one"
            )
    if before == head:
        return Step(database, history.name, before, head)
    if not auto:
        raise SchemaBehindError(
            f"the {database} is at {history.name} migration {before or 'none'}, this code "
            f"needs {head!r} and AUTO_MIGRATE is false: run `interviewctl migrate`"
        )
    present = set(sa.inspect(conn).get_table_names())
    conn.commit()
    adopted = before is None and any(t in present for t in history.first_release_tables)
    # A first-release database has some or all of the baseline's tables and no
    # version table: the baseline creates only the tables it lacks (IF NOT EXISTS),
    # which records it at the baseline; the later revisions then run as usual.
    command.upgrade(history.config(conn), "head")
    conn.commit()
    return Step(database, history.name, before, head, adopted=adopted)


def run_env() -> None:
    """The body of every history's env.py: online, on the connection ``migrate`` holds."""
    from alembic import context

    config = context.config
    history: History = config.attributes["history"]
    connection: sa.Connection | None = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through services.common.migrations.migrate")
    context.configure(
        connection=connection,
        target_metadata=list(history.metadatas),
        version_table=history.version_table,
        include_name=_include_name(history),
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _include_name(history: History) -> Callable[..., bool]:
    def include(name: str | None, type_: str, parent_names: Any) -> bool:
        if type_ == "table":
            return history.owns(name)
        return True

    return include


def compare(engine: sa.Engine, history: History) -> list[Any]:
    """Differences between the models and the database (none once migrated)."""
    from alembic.autogenerate import compare_metadata

    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "version_table": history.version_table,
                "include_name": _include_name(history),
                "compare_type": True,
                "target_metadata": list(history.metadatas),
            },
        )
        # alembic compares against every MetaData of a list (its AutogenContext takes
        # MetaData | Sequence[MetaData]), though compare_metadata's hint names one.
        metadatas: Any = list(history.metadatas)
        return list(compare_metadata(context, metadatas))


# ------------------------------------------------------------------ the lock


LOCK_KEY = int.from_bytes(hashlib.sha256(b"interviews.migrations").digest()[:8], "big", signed=True)


@contextmanager
def schema_lock(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection held while this process alone changes the database's schema:
    every migration, and any table a library creates itself (the event store's),
    happens under it, so processes starting together never race on CREATE TABLE."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            key = LOCK_KEY
            conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            conn.commit()
            try:
                yield conn
            finally:
                conn.rollback()
                conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()
        return
    path = engine.url.database
    if not path or path == ":memory:" or path.startswith("file:"):
        with engine.connect() as conn:
            yield conn
        return
    # A file of its own: closing a descriptor of the database file itself would drop
    # SQLite's own POSIX locks held by this process.
    lock_path = Path(f"{path}.migrate-lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            with engine.connect() as conn:
                yield conn
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
