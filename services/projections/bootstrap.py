"""The composition root of the projections service: settings in, wired objects out.

``create_app(container)`` is the query API and dashboard;
``consumer_spec(container)`` is what the consumer runner needs to keep the
views (group ``projections``). ``container.rebuild(...)`` is ``interviewctl
replay``. A process that runs the API and the consumer shares one container,
so commits wake read-your-writes waiters and live streams at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from sqlalchemy import event as sa_event

from ..common.consumer import ConsumerSpec
from ..common.db import DATABASE_UNAVAILABLE, create_engine
from ..common.erasure_worker import ErasureWorker
from ..common.health import health_router
from ..common.key_client import KeyServiceHealth, install_key_metrics, key_service_for
from ..common.migrations import Report, migrate
from ..common.privacy import CachingKeys, KeyService
from ..common.runner.kafka_source import service_kafka_runner
from ..common.runner.loop import ConsumerRunner
from ..common.runner.metrics import RunnerMetrics
from ..common.runner.tables import RUNNER_HISTORY, consumer_positions, parked_events
from ..common.web import Metrics, error_response, service_app
from .adapters.live import LiveWriter
from .adapters.schema import VIEW_SCHEMAS
from .adapters.sources import KafkaTopicSource, LogReader, LogSource, RebuildSource
from .adapters.store import (
    ApplyResult,
    Generation,
    current_generation,
    drop_generations,
    ensure_generation,
    ensure_schema,
)
from .application import ProjectionViews, ViewBehindError, ViewsNotReadyError
from .erasure import redact_views
from .metrics import ProjectionMetrics
from .migrations import HISTORY as PROJECTIONS_HISTORY
from .rebuild import Progress, RebuildReport, RebuildRunningError, rebuild
from .settings import ProjectionsSettings
from .watch import PositionWatch

log = logging.getLogger(__name__)

UNAVAILABLE: tuple[type[Exception], ...] = (*DATABASE_UNAVAILABLE,)


class ProjectionsContainer:
    """Builds engines and collaborators lazily, so the service starts while its
    database is down (answering 503) and recovers once it is back.

    ``log_reader`` (embedded default): ``read(after, limit)`` over the event
    store's log, for rebuilds without Kafka; ``log_head`` gives its highest
    position (for the progress bar's ETA).
    """

    def __init__(
        self,
        settings: ProjectionsSettings | None = None,
        *,
        log_reader: LogReader | None = None,
        log_head: Callable[[], int] | None = None,
        view_schemas: Mapping[str, int] | None = None,
        key_service: KeyService | None = None,
    ) -> None:
        self.settings = settings or ProjectionsSettings()
        # The view schema versions this code writes; another only to run two
        # releases side by side in one process (rolling-upgrade tests).
        self.view_schemas: Mapping[str, int] = view_schemas or VIEW_SCHEMAS
        self.log_reader = log_reader
        self.log_head = log_head
        self.watch = PositionWatch()
        self.metrics = Metrics("projections")
        self._engine: sa.Engine | None = None
        self._read_engine: sa.Engine | None = None
        self._writer: LiveWriter | None = None
        self._views: ProjectionViews | None = None
        self._schema_ready = False
        self._lock = threading.RLock()
        self.rebuild_thread: threading.Thread | None = None
        # The consumer runner of this process, if it runs one (its readiness counts).
        self.consumer: ConsumerRunner | None = None
        self.last_rebuild: RebuildReport | None = None
        self.rebuild_progress: Progress | None = None
        self.count_result: Callable[[ApplyResult], None] = ProjectionMetrics(
            self.metrics.registry,
            position=lambda: float(self.watch.position),
            rebuild_rate=lambda: self.rebuild_progress.rate if self.rebuild_progress else 0.0,
        ).count
        # Sealed personal texts are opened through the key service (in-process when
        # embedded, KEY_SERVICE_URL otherwise) behind a short-TTL cache.
        self.key_health = KeyServiceHealth()
        self.key_service = key_service_for(
            self.settings, "projections", key_service, self.key_health
        )
        self.keys = CachingKeys(self.key_service, self.settings.key_cache_ttl_seconds)
        self._erasures: ErasureWorker | None = None
        install_key_metrics(self.metrics.registry, self.key_health)

    # ----------------------------------------------------------- resources

    @property
    def embedded(self) -> bool:
        return not self.settings.kafka_bootstrap_servers

    def engine(self) -> sa.Engine:
        with self._lock:
            if self._engine is None:
                engine = create_engine(
                    self.settings.view_database_url,
                    self.settings.sqlite_path,
                    **self._pool_options(),
                )
                if engine.dialect.name == "postgresql":
                    # Batch multi-row INSERTs into a few statements (SQLAlchemy's
                    # "insertmanyvalues", on by default only with RETURNING for
                    # psycopg 3): a consumer batch is then a handful of round trips.
                    engine.dialect.use_insertmanyvalues_wo_returning = True
                self._engine = engine
            return self._engine

    def _pool_options(self) -> dict[str, Any]:
        if self.settings.view_database_url:
            return {"pool_size": self.settings.postgres_pool_size}
        return {}

    def read_engine(self) -> sa.Engine:
        """Reads see one snapshot per request: REPEATABLE READ on PostgreSQL; on
        SQLite a real BEGIN (the driver would otherwise run each SELECT alone)."""
        with self._lock:
            if self._read_engine is None:
                engine = self.engine()
                if engine.dialect.name == "sqlite":
                    reader = create_engine(None, self.settings.sqlite_path)

                    @sa_event.listens_for(reader, "connect")
                    def _manual(dbapi_conn: Any, _record: Any) -> None:
                        dbapi_conn.isolation_level = None

                    @sa_event.listens_for(reader, "begin")
                    def _begin(conn: sa.Connection) -> None:
                        conn.exec_driver_sql("BEGIN")

                    self._read_engine = reader
                else:
                    self._read_engine = engine.execution_options(isolation_level="REPEATABLE READ")
            return self._read_engine

    def migrate(self, *, auto: bool | None = None) -> Report:
        """The projections database's fixed tables (and the runner's) at the code's
        migration heads (``AUTO_MIGRATE``; ``auto`` overrides it). The view tables
        are the generations': a rebuild makes them when their schema changes."""
        engine = create_engine(self.settings.view_database_url,
                               self.settings.sqlite_path)  # fmt: skip
        try:
            return migrate(
                engine,
                [PROJECTIONS_HISTORY, RUNNER_HISTORY],
                auto=self.settings.auto_migrate if auto is None else auto,
                database="projections database",
            )
        finally:
            engine.dispose()

    def ensure_schema(self) -> Generation:
        """The database migrated (once per container) and its current generation."""
        if self._schema_ready:
            return ensure_generation(self.engine(), self.view_schemas)
        generation = ensure_schema(
            self.engine(), self.view_schemas, auto_migrate=self.settings.auto_migrate
        )
        self._schema_ready = True
        if generation.matches(self.view_schemas):
            drop_generations(self.engine())
        return generation

    def writer(self) -> LiveWriter:
        with self._lock:
            if self._writer is None:
                self._writer = LiveWriter(
                    on_result=self.count_result, schemas=self.view_schemas, keys=self.keys
                )
            return self._writer

    def views(self) -> ProjectionViews:
        with self._lock:
            if self._views is None:
                self._views = ProjectionViews(
                    self.read_engine(),
                    self.watch,
                    ordered_source=self.embedded,
                    wait_timeout=self.settings.min_position_timeout_s,
                    schemas=self.view_schemas,
                )
            return self._views

    def consumer_health(self) -> dict[str, Any]:
        """What the views' consumer knows about itself: how far behind it is, and
        how many events it parked (handler failures) or dead-lettered (poison).

        Lag comes from the runner of this process (Kafka: messages behind, per
        partition, summed), else from the event store's head and the stored
        position (embedded); ``None`` when neither is known here. Dead letters
        are counted since this process started."""
        group = self.settings.projections_consumer_group
        engine = self.engine()
        parked, stored = 0, None
        inspector = sa.inspect(engine)
        with engine.connect() as conn:
            if inspector.has_table(parked_events.name):
                parked = int(
                    conn.execute(
                        sa.select(sa.func.count()).where(parked_events.c.group == group)
                    ).scalar()
                    or 0
                )
            if inspector.has_table(consumer_positions.name):
                stored = conn.execute(
                    sa.select(consumer_positions.c.position).where(
                        consumer_positions.c.group == group
                    )
                ).scalar()
        metrics = RunnerMetrics.existing(self.metrics.registry)
        lag = metrics.group_lag(group) if metrics is not None else None
        if lag is None and self.embedded and self.log_head is not None:
            lag = max(self.log_head() - int(stored or 0), 0)
        return {
            "group": group,
            "source": "event store" if self.embedded else "kafka",
            "lag": lag,
            "parked": parked,
            "dead_lettered": metrics.group_dead_letters(group) if metrics is not None else None,
        }

    def erasure_worker(self) -> ErasureWorker:
        """The projections' erasure worker (``start()`` it; one per container)."""
        with self._lock:
            self._erasures = self._erasures or ErasureWorker.for_service(
                "projections",
                self.settings,
                self.key_service,
                self.keys,
                self.redact,
                registry=self.metrics.registry,
            )
            return self._erasures

    def redact(self, key_ids: Sequence[str]) -> int:
        """Every view text sealed with ``key_ids`` becomes NULL and is marked erased."""
        self.ensure_schema()
        return redact_views(self.engine(), key_ids)

    def on_committed(self, max_position: int) -> None:
        """The runner committed a batch: wake waiters and live streams."""
        self.watch.advance(max_position)

    # -------------------------------------------------------------- rebuild

    def rebuild_source(self) -> RebuildSource:
        """The event store's log when a reader was given, else the Kafka topic."""
        if self.log_reader is not None:
            return LogSource(self.log_reader, self.log_head)
        if self.settings.kafka_bootstrap_servers:
            return KafkaTopicSource(self.settings.kafka_bootstrap_servers, self.settings.topic)
        raise RuntimeError("no Kafka and no event store log reader: nothing to rebuild from")

    def rebuild(
        self,
        source: RebuildSource | None = None,
        progress: Callable[[Progress], None] | None = None,
    ) -> RebuildReport:
        """``interviewctl replay``: every view from the start, swapped in atomically."""
        self.ensure_schema()
        source = source or self.rebuild_source()

        def track(p: Progress) -> None:
            self.rebuild_progress = p
            if progress is not None:
                progress(p)

        try:
            report = rebuild(
                self.engine(),
                source,
                batch=self.settings.rebuild_batch,
                progress=track,
                schemas=self.view_schemas,
                keys=self.keys,
            )
        finally:
            source.close()
        self.last_rebuild = report
        self.watch.advance(report.position)
        return report

    def needs_rebuild(self) -> bool:
        self.ensure_schema()
        with self.engine().begin() as conn:
            generation = current_generation(conn)
        return generation is not None and not generation.matches(self.view_schemas)

    def start_rebuild_if_needed(self) -> threading.Thread | None:
        """A view's schema changed: rebuild in the background while the API
        keeps answering from the old generation."""
        if not self.settings.rebuild_on_start or not self.needs_rebuild():
            return None

        def run() -> None:
            try:
                self.rebuild()
            except RebuildRunningError:
                log.info("schema-change rebuild: another process is rebuilding")
            except Exception:
                log.exception("schema-change rebuild failed; the old views stay in place")

        log.warning("view schemas changed: rebuilding every view in the background")
        self.rebuild_thread = threading.Thread(target=run, name="projections-rebuild", daemon=True)
        self.rebuild_thread.start()
        return self.rebuild_thread

    def close(self) -> None:
        with self._lock:
            self._writer = None
            if self._read_engine is not None and self._read_engine is not self._engine:
                self._read_engine.dispose()
            self._read_engine = None
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
            self._views = None


def consumer_spec(container: ProjectionsContainer) -> ConsumerSpec:
    """What the consumer runner needs to keep the views (group ``projections``).

    ``LiveWriter.apply`` folds each batch into the views in the runner's
    transaction; ``on_committed`` wakes ``min_position`` waiters and live
    streams of this process."""
    container.ensure_schema()
    return ConsumerSpec(
        group=container.settings.projections_consumer_group,
        engine=container.engine(),
        apply=container.writer().apply,
        read_ahead=container.writer().read_ahead,
        on_committed=container.on_committed,
        histories=(PROJECTIONS_HISTORY,),
        auto_migrate=container.settings.auto_migrate,
    )


class ConsumerWorker:
    """Starts the Kafka runner at once, or in the background once the database answers."""

    def __init__(
        self, container: ProjectionsContainer, *, registry: Any = None, **runner_options: Any
    ) -> None:
        self.container = container
        self.registry = registry
        self.runner_options = runner_options
        self.runner: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ConsumerWorker:
        self._thread = threading.Thread(target=self._start, name="projections-start", daemon=True)
        self._thread.start()
        return self

    def _start(self) -> None:
        settings = self.container.settings
        assert settings.kafka_bootstrap_servers, "the consumer worker reads Kafka"
        delay = 0.5
        while not self._stop.is_set():
            try:
                spec = consumer_spec(self.container)
                break
            except UNAVAILABLE as error:
                log.warning("views database unavailable (%s); consumer starts later", error)
            except Exception:  # never leave the process up without its consumer
                log.exception("cannot start the projections consumer yet; retrying")
            self._stop.wait(delay)
            delay = min(delay * 2, 10.0)
        else:
            return
        self.container.start_rebuild_if_needed()
        self.runner = service_kafka_runner(
            spec, settings, registry=self.registry, **self.runner_options
        ).start()
        self.container.consumer = self.runner

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        if self.runner is not None:
            self.runner.stop()
            self.runner.join(30)


def create_app(container: ProjectionsContainer, *, workers: bool = False) -> FastAPI:
    """The projections HTTP app: views, live stream, dashboard.

    With ``workers=True`` (``interviewctl serve projections``) its lifespan also
    runs the Kafka consumer when ``KAFKA_BOOTSTRAP_SERVERS`` is set; mounted in
    ``interviewctl up`` the platform runs the consumer instead.
    """
    from .entrypoints import api, dashboard

    metrics = container.metrics

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        worker: ConsumerWorker | None = None
        try:
            container.ensure_schema()
            container.start_rebuild_if_needed()
        except UNAVAILABLE as error:
            log.warning("views database unavailable at start-up, will retry on demand: %s", error)
        erasures: ErasureWorker | None = None
        if workers and container.settings.kafka_bootstrap_servers:
            worker = ConsumerWorker(container, registry=metrics.registry).start()
        if workers:
            erasures = container.erasure_worker().start()
        yield
        if erasures is not None:
            erasures.stop()
        if worker is not None:
            worker.stop()
        container.close()

    app = service_app(
        title="Projections",
        description="Read models of interviews: summaries, candidate boards, statistics, "
        "a live dashboard.",
        lifespan=lifespan,
        container=container,
        auth_secret=container.settings.resolved_auth_secret(),
        metrics=metrics,
        unavailable=UNAVAILABLE,
    )

    @app.exception_handler(ViewBehindError)
    async def _behind(_: Request, exc: ViewBehindError) -> Any:
        return error_response(
            503,
            "view_behind",
            str(exc),
            position=exc.position,
            min_position=exc.wanted,
            headers={"Retry-After": "1", api.POSITION_HEADER: str(exc.position)},
        )

    @app.exception_handler(ViewsNotReadyError)
    async def _not_ready(_: Request, exc: ViewsNotReadyError) -> Any:
        return error_response(503, "view_not_ready", str(exc), headers={"Retry-After": "2"})

    def ready(_: Request) -> None:
        container.ensure_schema()
        container.views().position()
        if container.consumer is not None:
            container.consumer.check_ready()
        container.key_health.check_ready()
        if container._erasures is not None:
            container._erasures.check_ready()

    app.include_router(api.router)
    app.include_router(dashboard.router)
    app.include_router(health_router(metrics, ready))
    return app
