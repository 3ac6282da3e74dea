"""The composition root of the interview service: settings in, wired objects out."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import psycopg
import psycopg_pool
from eventsourcing.persistence import InterfaceError, OperationalError
from fastapi import FastAPI, Request

from ..common.web import (
    Metrics,
    health_router,
    install_error_handlers,
    install_observability,
)
from .application import InterviewsApplication, utcnow
from .settings import InterviewsSettings

log = logging.getLogger(__name__)


class DependencyUnavailableError(Exception):
    """The event store could not be reached."""


UNAVAILABLE: tuple[type[BaseException], ...] = (
    DependencyUnavailableError,
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg_pool.PoolTimeout,
    sqlite3.OperationalError,
)


class InterviewsContainer:
    """Builds the application lazily, so a service started while its database
    is down answers 503 and recovers by itself once the database is back."""

    def __init__(
        self,
        settings: InterviewsSettings | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings or InterviewsSettings()
        self.clock = clock
        self._app: InterviewsApplication | None = None
        self._lock = threading.Lock()

    def env(self) -> dict[str, str]:
        from ..common.settings import eventsourcing_env

        return eventsourcing_env(
            self.settings.database_url,
            self.settings.data_dir / "interviews.sqlite",
            POSTGRES_POOL_SIZE=str(self.settings.postgres_pool_size),
        )

    def interviews(self) -> InterviewsApplication:
        if self._app is not None:
            return self._app
        with self._lock:
            if self._app is None:
                try:
                    self._app = InterviewsApplication(
                        self.env(),
                        clock=self.clock,
                        invitation_ttl=timedelta(hours=self.settings.invitation_ttl_hours),
                        offer_ttl=timedelta(hours=self.settings.offer_ttl_hours),
                        max_batch=self.settings.max_commit_batch,
                    )
                except UNAVAILABLE as error:
                    raise DependencyUnavailableError(str(error)) from error
        return self._app

    def close(self) -> None:
        with self._lock:
            if self._app is not None:
                self._app.close()
                self._app = None


def create_app(container: InterviewsContainer) -> FastAPI:
    """The interviews HTTP app (commands, state, audit)."""
    from .entrypoints import api, audit_api

    metrics = Metrics("interviews")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        try:
            container.interviews()
        except DependencyUnavailableError as error:
            log.warning("event store unavailable at start-up, will retry on demand: %s", error)
        yield
        container.close()

    app = FastAPI(
        title="Interviews",
        version="1.0.0",
        description="Commands, authoritative state and audit of interviews.",
        lifespan=lifespan,
    )
    app.state.container = container
    app.state.auth_secret = container.settings.resolved_auth_secret()
    app.state.metrics = metrics
    install_error_handlers(app, UNAVAILABLE)
    install_observability(app, metrics)
    _install_domain_metrics(metrics, container)

    def ready(_: Request) -> None:
        container.interviews().check_ready()

    app.include_router(api.router)
    app.include_router(audit_api.router)
    app.include_router(health_router(metrics, ready))
    return app


def app_from_environment() -> FastAPI:
    """The uvicorn factory of ``interviewctl serve interviews --workers N``: every
    worker process builds its own container from the environment."""
    from ..common.web import configure_logging

    container = InterviewsContainer()
    configure_logging(container.settings.log_level)
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
        return float(container._app.events_appended) if container._app else 0.0

    def _batches() -> float:
        return float(container._app.committer.batches) if container._app else 0.0

    appended.set_function(_appended)
    batches.set_function(_batches)
