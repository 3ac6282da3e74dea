"""The composition root of the interview service: settings in, wired objects out.

- ``InterviewsContainer``: the application (event store, use cases), opened lazily;
- ``create_app(container)``: the HTTP app (commands, state, audit);
- ``RelayProcess`` / ``start_relay(container)``: the outbox relay to Kafka;
- ``start_scheduler(container)``: the deadline scheduler.

The processes that run them alone are in ``entrypoints/processes.py``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import psycopg_pool
import sqlalchemy as sa
from fastapi import FastAPI, Request

from ..common.db import DATABASE_UNAVAILABLE, DependencyUnavailableError, create_engine
from ..common.health import health_router
from ..common.loop_threads import LoopThreads
from ..common.migrations import Report, migrate, schema_lock
from ..common.privacy import CachingKeys, KeyServiceUnavailable
from ..common.web import Metrics, service_app
from ..contracts.envelope import ERASURES_TOPIC
from .adapters.audit_store import AuditStore
from .adapters.database_watch import DatabaseWatch
from .adapters.erasure_publisher import ErasurePublisher
from .adapters.group_commit import GroupCommitter
from .adapters.kafka_publisher import EventPublisher, KafkaPublisher
from .adapters.key_encryption import KeyEncryptionKeyError, warn_if_file_kek
from .adapters.key_store import SqlKeyStore, build_key_store
from .adapters.pg_listen import PostgresWakeUp
from .adapters.relay_position import PositionStore, fenced_lease
from .application import InterviewsApplication, utcnow
from .erasure_feed import ErasureFeed
from .feed import InterviewMessageFeed, unhook, wake_on_interview_events
from .migrations import HISTORY, check_event_store
from .relay import Relay, RelayCollector
from .scheduler import Scheduler
from .settings import InterviewsSettings, RelaySettings

log = logging.getLogger(__name__)


UNAVAILABLE: tuple[type[Exception], ...] = (
    DependencyUnavailableError,
    # The key store's database failing while a command seals or a read reveals words.
    KeyServiceUnavailable,
    *DATABASE_UNAVAILABLE,
)


# Commands in flight at once: every one waiting on the group commit joins its batch.
COMMAND_THREADS = 40


class InterviewsContainer:
    """Builds the application lazily, so a service started while its database
    is down answers 503 and recovers by itself once the database is back."""

    def __init__(
        self,
        settings: InterviewsSettings | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
        create_tables: bool = True,
    ) -> None:
        """``create_tables=False``: a reader (the audit CLI) of a store that must exist."""
        self.settings = settings or InterviewsSettings()
        self.clock = clock
        self.create_tables = create_tables
        self._app: InterviewsApplication | None = None
        self._keys: SqlKeyStore | None = None
        self._migrated = False
        self._lock = threading.Lock()
        self.watch: DatabaseWatch | None = None  # started by the HTTP app (PostgreSQL only)
        # Where the HTTP routes run the use cases (they block on the store): a
        # pool of their own, as many threads as the framework's, each hop a
        # fraction of the framework's CPU. Its threads start on demand.
        self.command_threads = LoopThreads(COMMAND_THREADS, "command")

    def env(self) -> dict[str, str]:
        from ..common.settings import eventsourcing_env

        return eventsourcing_env(
            self.settings.database_url,
            self.sqlite_path,
            create=self.create_tables,
            POSTGRES_POOL_SIZE=str(self.settings.postgres_pool_size),
        )

    @property
    def sqlite_path(self) -> Path:
        return self.settings.sqlite_path

    @property
    def events_table(self) -> str:
        """Where the event store keeps events (eventsourcing's names)."""
        return "interviews_events" if self.settings.database_url else "stored_events"

    def interviews(self) -> InterviewsApplication:
        if self._app is not None:
            return self._app
        with self._lock:
            if self._app is None:
                try:
                    self._app = self._open()
                except UNAVAILABLE as error:
                    raise DependencyUnavailableError(str(error)) from error
                pool = _pool_of(self._app)
                if pool is not None:
                    # Give up a failing reconnection after seconds, not psycopg_pool's
                    # five minutes of doubling delays: the pool then grows again on
                    # demand, at once, so it recovers as soon as PostgreSQL is back.
                    pool.reconnect_timeout = 5.0
                    # Wait at most a second for a connection: the recorder tries ten
                    # times, so a request caught by an outage fails within about 12 s
                    # (queries take milliseconds; 16 connections).
                    pool.timeout = 1.0
        return self._app

    def migrate(self, *, auto: bool | None = None) -> Report:
        """The service's own tables at the code's migration head (``AUTO_MIGRATE``;
        ``auto`` overrides it), the event store's ``eventsourcing`` version checked
        and recorded. Raises ``SchemaError`` when the database must not be used."""
        engine = create_engine(self.settings.database_url, self.sqlite_path)
        try:
            steps = migrate(
                engine,
                [HISTORY],
                auto=self.settings.auto_migrate if auto is None else auto,
                database="interviews database",
                after=check_event_store,
            )
        finally:
            engine.dispose()
        self._migrated = True
        return steps

    def _open(self) -> InterviewsApplication:
        if self.create_tables and not self._migrated:
            self.migrate()
        keys: SqlKeyStore | None = None
        try:
            keys = self.key_store()
        except KeyEncryptionKeyError:
            if self.create_tables:
                raise
            # A reader (the audit CLI) of a store never given a key: nothing to reveal,
            # and no key file created.
        if keys is not None and self._migrated:
            keys.check_kek()
        if not self.create_tables:
            return self._application(keys)
        # The API, the relay and the scheduler often start together on a new database,
        # and PostgreSQL's CREATE TABLE IF NOT EXISTS is not safe against a concurrent
        # one (duplicate pg_type rows): the event store's tables are created under the
        # lock the migrations of the service's own tables hold.
        engine = create_engine(self.settings.database_url, self.sqlite_path)
        try:
            with schema_lock(engine):
                return self._application(keys)
        finally:
            engine.dispose()

    def _application(self, keys: SqlKeyStore | None) -> InterviewsApplication:
        return InterviewsApplication(
            self.env(),
            clock=self.clock,
            invitation_ttl=timedelta(hours=self.settings.invitation_ttl_hours),
            offer_ttl=timedelta(hours=self.settings.offer_ttl_hours),
            audit_store=AuditStore,
            committer=partial(GroupCommitter, max_batch=self.settings.max_commit_batch),
            keys=keys,
            reader=CachingKeys(keys, self.settings.key_cache_ttl_seconds) if keys else None,
        )

    def key_store(self) -> SqlKeyStore:
        """The data keys of this service's database (built once)."""
        if self._keys is None:
            self._keys = build_key_store(
                self.settings, sqlite_path=self.sqlite_path, create=self.create_tables
            )
        return self._keys

    @property
    def opened(self) -> InterviewsApplication | None:
        """The application if it has been opened, without opening it."""
        return self._app

    def check_available(self) -> None:
        """Raises DependencyUnavailableError while the database watch sees it down."""
        if self.watch is not None and self.watch.down:
            raise DependencyUnavailableError("the event store's database is unreachable")

    def refresh_pool(self) -> None:
        """The database is back: replace the pool's broken connections now."""
        pool = _pool_of(self._app) if self._app is not None else None
        if pool is not None:
            try:
                pool.check()
            except Exception:  # the pool recovers on demand anyway
                log.debug("checking the connection pool failed", exc_info=True)

    def close(self) -> None:
        # Commands in flight finish first; a later start gets threads of its own.
        threads, self.command_threads = (
            self.command_threads,
            LoopThreads(COMMAND_THREADS, "command"),
        )
        threads.shutdown()
        with self._lock:
            if self._app is not None:
                self._app.close()
                self._app = None
            if self._keys is not None:
                self._keys.engine.dispose()
                self._keys = None


P = TypeVar("P", KafkaPublisher, ErasurePublisher)


def _with_topic(publisher: P) -> P:
    """``publisher`` once its topic exists (created if missing); closed if that fails."""
    try:
        publisher.ensure_topic()
    except Exception:
        publisher.close(timeout=0)
        raise
    return publisher


def erasure_relay(app: InterviewsApplication, settings: RelaySettings, engine: sa.Engine) -> Relay:
    """The relay of erasures: ``subject.erased`` on ``privacy.erasures``, from the
    same log, with its own position and lease (it polls: erasures are rare)."""
    own = settings.model_copy(update={"topic": ERASURES_TOPIC})

    def connect() -> Any:
        return _with_topic(
            ErasurePublisher(
                settings.kafka_bootstrap_servers or "",
                ERASURES_TOPIC,
                layout=settings.topic_layout(),
            )
        )

    feed = ErasureFeed(app)
    positions = PositionStore(engine, ERASURES_TOPIC)
    lease = fenced_lease(positions, own, feed.max_position)
    return Relay(feed, positions, connect, settings=own, lease=lease)


class RelayProcess:
    """A relay wired from settings: feed, position table, producer, wake-ups, metrics;
    beside it the erasure relay (``privacy.erasures``) on its own thread."""

    def __init__(
        self,
        app: InterviewsApplication,
        settings: RelaySettings,
        *,
        registry: Any = None,
    ) -> None:
        if not settings.kafka_bootstrap_servers:
            raise ValueError("the relay needs KAFKA_BOOTSTRAP_SERVERS")
        self.app = app
        self.settings = settings
        # Every statement of the relays and their leases is a transaction of its own:
        # in autocommit, each is one round trip (no BEGIN, COMMIT or ROLLBACK around
        # it), and no ping before it. A connection broken by an outage fails its
        # statement, the pool drops all its connections, and the relay backs off and
        # starts again from its checkpoint.
        hot_path = (
            {"pool_pre_ping": False, "isolation_level": "AUTOCOMMIT"}
            if settings.database_url
            else {}
        )
        self.engine = create_engine(
            settings.database_url, settings.data_dir / "interviews.sqlite", **hot_path
        )
        bootstrap = settings.kafka_bootstrap_servers

        def connect() -> EventPublisher:
            return _with_topic(
                KafkaPublisher(
                    bootstrap,
                    settings.topic,
                    layout=settings.topic_layout(),
                    linger_ms=settings.linger_ms,
                )
            )

        self.wake = wake_on_interview_events(app)
        self.listener = (
            PostgresWakeUp(app.recorder, self.wake)
            if hasattr(app.recorder, "channel_name")
            else None
        )
        feed = InterviewMessageFeed(app)
        positions = PositionStore(self.engine, settings.topic)
        self.relay = Relay(
            feed,
            positions,
            connect,
            wake=self.wake,
            settings=settings,
            lease=fenced_lease(positions, settings, feed.max_position),
        )
        if registry is not None:
            registry.register(RelayCollector(self.relay))
        self._thread: threading.Thread | None = None
        self.erasures = erasure_relay(app, settings, self.engine)
        self._erasures_thread = threading.Thread(
            target=self.erasures.run, name="erasure-relay", daemon=True
        )

    def run(self) -> None:
        if self.listener is not None:
            self.listener.start()
        self._erasures_thread.start()
        try:
            self.relay.run()
        finally:
            self.erasures.stop()
            self._erasures_thread.join(15.0)
            self.close()

    def start(self) -> RelayProcess:
        """Runs in a background thread (inside ``interviewctl up``)."""
        self._thread = threading.Thread(target=self.run, name="relay", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self.erasures.stop()
        self.relay.stop()
        if self._thread is not None:
            self._thread.join(timeout)

    def close(self) -> None:
        if self.listener is not None:
            self.listener.stop()
        unhook(self.app, self.wake)
        self.engine.dispose()


def start_relay(container: InterviewsContainer, registry: Any = None) -> RelayProcess | None:
    """With KAFKA_BOOTSTRAP_SERVERS set, the relay on a thread of this process, on the
    container's event store (``interviewctl up``); else None."""
    settings = RelaySettings()
    if not settings.kafka_bootstrap_servers:
        return None
    settings = settings.model_copy(
        update={
            "database_url": container.settings.database_url,
            "data_dir": container.settings.data_dir,
        }
    )
    return RelayProcess(container.interviews(), settings, registry=registry).start()


def start_scheduler(
    container: InterviewsContainer, registry: Any = None, **options: Any
) -> Scheduler:
    """The deadline scheduler on a background thread of this process; ``stop()`` it
    before the container closes. Its metrics go to ``registry`` (the interviews app's);
    ``options`` go to ``Scheduler`` (e.g. ``min_wake_interval``)."""
    return Scheduler(container, registry=registry, **options).start()


def create_app(container: InterviewsContainer) -> FastAPI:
    """The interviews HTTP app (commands, state, audit)."""
    from .entrypoints import api, audit_api, privacy_api

    metrics = Metrics("interviews")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        settings = container.settings
        warn_if_file_kek(
            settings.key_encryption_key, settings.data_dir, postgres=bool(settings.database_url)
        )
        try:
            container.interviews()
        except DependencyUnavailableError as error:
            log.warning("event store unavailable at start-up, will retry on demand: %s", error)
        if container.settings.database_url and container.watch is None:
            container.watch = DatabaseWatch(
                container.settings.database_url, container.refresh_pool
            ).start()
        yield
        if container.watch is not None:
            container.watch.stop()
            container.watch = None
        container.close()

    app = service_app(
        title="Interviews",
        description="Commands, authoritative state and audit of interviews.",
        lifespan=lifespan,
        container=container,
        auth_secret=container.settings.resolved_auth_secret(),
        metrics=metrics,
        unavailable=UNAVAILABLE,
        front=api.direct_front,
    )
    _install_domain_metrics(metrics, container)

    def ready(_: Request) -> None:
        container.check_available()
        container.interviews().check_ready()

    app.include_router(api.router)
    app.include_router(audit_api.router)
    app.include_router(privacy_api.router)
    app.include_router(health_router(metrics, ready))
    return app


def app_from_environment() -> FastAPI:
    """The uvicorn factory of ``interviewctl serve interviews --workers N``: every
    worker process builds its own container from the environment."""
    from ..common.logs import configure_logging

    container = InterviewsContainer()
    configure_logging(container.settings.log_level, service="interviews")
    return create_app(container)


def _install_domain_metrics(metrics: Metrics, container: InterviewsContainer) -> None:
    from prometheus_client import Gauge

    appended = Gauge(
        "interview_events_appended_total",
        "Events appended to the event store by this process",
        registry=metrics.registry,
    )
    batches = Gauge(
        "interview_commit_batches_total",
        "Transactions written by the group committer",
        registry=metrics.registry,
    )

    def _appended() -> float:
        app = container.opened
        return float(app.events_appended) if app else 0.0

    def _batches() -> float:
        app = container.opened
        return float(app.committer.batches) if app else 0.0

    appended.set_function(_appended)
    batches.set_function(_batches)


def _pool_of(app: InterviewsApplication) -> psycopg_pool.ConnectionPool[Any] | None:
    """The psycopg connection pool of a PostgreSQL event store (None on SQLite)."""
    datastore = getattr(app.recorder, "datastore", None)
    pool = getattr(datastore, "pool", None)
    return pool if isinstance(pool, psycopg_pool.ConnectionPool) else None
