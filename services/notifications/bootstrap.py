"""The composition root of the notifications service: settings in, wired objects out.

- ``NotificationsContainer``: the engine, the inbox queries, the consumer
  handler (inbox entries and the reminders' deadline index), the delivery
  worker and the reminder worker, built lazily from ``NotificationsSettings``.
- ``consumer_spec(container)``: what the consumer runner needs (group
  ``notifications``, this service's engine, one handler per event type, tables).
- ``Workers``: starts and stops the consumer, the delivery and the reminder worker;
- ``create_app(container)``: the HTTP API (routes, health, metrics), and the workers.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request

from ..common.consumer import Batch, ConsumerSpec
from ..common.db import DATABASE_UNAVAILABLE, DependencyUnavailableError, create_engine
from ..common.erasure_worker import ErasureWorker
from ..common.health import health_router
from ..common.key_client import KeyServiceHealth, install_key_metrics, key_service_for
from ..common.migrations import Report, migrate
from ..common.privacy import CachingKeys, KeyService
from ..common.revealed import reveal_batch
from ..common.runner.kafka_source import service_kafka_runner
from ..common.runner.loop import ConsumerRunner
from ..common.runner.tables import RUNNER_HISTORY
from ..common.web import Metrics, service_app
from .application import Inbox
from .delivery import BackoffPolicy, DeliveryWorker, Sender
from .erasure import redact_notifications
from .metrics import install_notification_metrics
from .migrations import HISTORY as NOTIFICATIONS_HISTORY
from .preferences import Preferences
from .recorder import NotificationRecorder
from .reminders import ReminderIndex, ReminderWorker
from .settings import NotificationsSettings
from .webhook_urls import Resolver, UrlGuard, system_resolver

log = logging.getLogger(__name__)


UNAVAILABLE: tuple[type[Exception], ...] = (DependencyUnavailableError, *DATABASE_UNAVAILABLE)


def utcnow() -> datetime:
    return datetime.now(UTC)


class NotificationsContainer:
    """Builds the engine lazily, so the API started while its database is down
    answers 503 and recovers by itself once the database is back."""

    def __init__(
        self,
        settings: NotificationsSettings | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
        senders: dict[str, Sender] | None = None,
        rng: random.Random | None = None,
        resolver: Resolver = system_resolver,
        key_service: KeyService | None = None,
    ) -> None:
        self.settings = settings or NotificationsSettings()
        # Sealed personal texts are opened through the key service (in-process when
        # embedded, KEY_SERVICE_URL otherwise) behind a short-TTL cache.
        self.key_health = KeyServiceHealth()
        self.key_service = key_service_for(
            self.settings, "notifications", key_service, self.key_health
        )
        self.keys = CachingKeys(self.key_service, self.settings.key_cache_ttl_seconds)
        self._erasures: ErasureWorker | None = None
        self.clock = clock
        # One URL policy for registration and delivery (tests inject the resolver).
        self.url_guard = UrlGuard(self.settings.allowed_webhook_hosts, resolver)
        self._senders = senders
        self._rng = rng
        self._engine: sa.Engine | None = None
        self._inbox: Inbox | None = None
        self._preferences: Preferences | None = None
        self._worker: DeliveryWorker | None = None
        # The consumer runner of this process, if it runs one (its readiness counts).
        self.consumer: ConsumerRunner | None = None
        self._reminders: ReminderWorker | None = None
        self.recorder = NotificationRecorder(
            clock, self.settings.email_domain if self.settings.email_enabled else None
        )
        self.reminder_index = ReminderIndex(
            clock,
            timedelta(hours=self.settings.reminder_lead_hours),
            timedelta(minutes=self.settings.meeting_reminder_lead_minutes),
        )
        self._lock = threading.RLock()
        if self.settings.smtp_host and not self.settings.email_domain:
            log.warning("SMTP_HOST is set but EMAIL_DOMAIN is not: e-mail stays off")

    def engine(self) -> sa.Engine:
        if self._engine is not None:
            return self._engine
        with self._lock:
            if self._engine is None:
                engine = create_engine(
                    self.settings.resolved_database_url(), self.settings.sqlite_path
                )
                try:
                    self._migrate(engine, self.settings.auto_migrate)
                except UNAVAILABLE as error:
                    engine.dispose()
                    raise DependencyUnavailableError(str(error)) from error
                self._engine = engine
        return self._engine

    def migrate(self, *, auto: bool | None = None) -> Report:
        """The notifications database (and the runner's tables in it) at the code's
        migration heads (``AUTO_MIGRATE``; ``auto`` overrides it)."""
        engine = create_engine(self.settings.resolved_database_url(), self.settings.sqlite_path)
        try:
            return self._migrate(engine, self.settings.auto_migrate if auto is None else auto)
        finally:
            engine.dispose()

    def _migrate(self, engine: sa.Engine, auto: bool) -> Report:
        return migrate(
            engine,
            [NOTIFICATIONS_HISTORY, RUNNER_HISTORY],
            auto=auto,
            database="notifications database",
        )

    def inbox(self) -> Inbox:
        if self._inbox is None:
            s = self.settings
            self._inbox = Inbox(
                self.engine(),
                self.clock,
                self.url_guard,
                max_webhooks=s.webhook_max_per_user,
                secret_grace=timedelta(hours=s.webhook_secret_grace_hours),
                on_queued=self._wake_delivery,
            )
        return self._inbox

    def preferences(self) -> Preferences:
        if self._preferences is None:
            self._preferences = Preferences(self.engine(), self.clock)
        return self._preferences

    def senders(self) -> dict[str, Sender]:
        if self._senders is not None:
            return self._senders
        from .adapters.webhooks import WebhookSender

        s = self.settings
        senders: dict[str, Sender] = {
            "webhook": WebhookSender(s.delivery_timeout_seconds, self.url_guard)
        }
        if s.smtp_host:
            from .adapters.email import SmtpSender

            senders["email"] = SmtpSender(
                s.smtp_host,
                s.smtp_port,
                s.sender_address(),
                username=s.smtp_username,
                password=s.smtp_password,
                starttls=s.smtp_starttls,
                timeout_seconds=max(s.delivery_timeout_seconds, 5.0),
            )
        return senders

    def policy(self) -> BackoffPolicy:
        s = self.settings
        return BackoffPolicy(
            base_seconds=s.delivery_backoff_base_seconds,
            factor=s.delivery_backoff_factor,
            max_seconds=s.delivery_backoff_max_seconds,
            jitter=s.delivery_backoff_jitter,
            max_attempts=s.delivery_max_attempts,
        )

    def delivery_worker(self) -> DeliveryWorker:
        """One per container; ``start()`` it to run on a thread, ``stop()`` on shutdown."""
        with self._lock:
            if self._worker is None:
                s = self.settings
                self._worker = DeliveryWorker(
                    self.engine(),
                    self.senders(),
                    clock=self.clock,
                    policy=self.policy(),
                    lease_seconds=s.delivery_lease_seconds,
                    batch_size=s.delivery_batch_size,
                    concurrency=s.delivery_concurrency,
                    poll_seconds=s.delivery_poll_seconds,
                    rng=self._rng,
                    disable_after_dead=s.webhook_disable_after_dead,
                    notify=self.recorder.record_notice,
                )
            return self._worker

    def reminder_worker(self) -> ReminderWorker:
        """One per container; ``start()`` it to run on a thread, ``stop()`` on shutdown.
        What it records goes through the consumer's recorder (same inbox, same outbox)."""
        with self._lock:
            if self._reminders is None:
                s = self.settings
                self._reminders = ReminderWorker(
                    self.engine(),
                    self.recorder,
                    clock=self.clock,
                    batch_size=s.reminder_batch_size,
                    max_sleep_seconds=s.reminder_max_sleep_seconds,
                    on_sent=self._wake_delivery,
                )
            return self._reminders

    def erasure_worker(self, registry: Any = None) -> ErasureWorker:
        """The notifications' erasure worker (``start()`` it; one per container)."""
        with self._lock:
            self._erasures = self._erasures or ErasureWorker.for_service(
                "notifications",
                self.settings,
                self.key_service,
                self.keys,
                self.redact,
                registry=registry,
            )
            return self._erasures

    def redact(self, key_ids: Sequence[str]) -> int:
        """Every inbox text quoting words sealed with ``key_ids`` loses them."""
        return redact_notifications(self.engine(), key_ids)

    def _wake_delivery(self) -> None:
        if self._worker is not None:
            self._worker.wake()

    def check_ready(self) -> None:
        with self.engine().connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        if self.consumer is not None:
            self.consumer.check_ready()
        self.key_health.check_ready()
        if self._erasures is not None:
            self._erasures.check_ready()

    def close(self) -> None:
        with self._lock:
            if self._erasures is not None:
                self._erasures.stop()
                self._erasures = None
            if self._reminders is not None:
                self._reminders.stop()
                self._reminders = None
            if self._worker is not None:
                self._worker.stop()
                self._worker = None
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
                self._inbox = None
                self._preferences = None


def consumer_spec(
    container: NotificationsContainer, on_committed: Callable[[int], None] | None = None
) -> ConsumerSpec:
    """Group ``notifications``: records inbox entries and pending deliveries, and
    keeps the reminders' deadline index, in the runner's transaction. After a batch
    that queued a delivery the in-process delivery worker (if one was built) is
    woken so webhooks and e-mails go out at once, and the reminder worker after one
    that opened a reminder due before its next round; otherwise they sleep on."""
    recorder, index = container.recorder, container.reminder_index
    queued = recorder.queued

    def apply(conn: sa.Connection, batch: Batch) -> None:
        # The batch's inbox rows, deliveries and deadlines in a few statements
        # rather than two or three per event.
        # Their sealed texts opened now: a key service that does not answer fails the
        # batch, which the runner replays (never parks, never skips).
        events = reveal_batch(batch, container.keys)
        # The index first: it folds the meetings' calendar sequences the e-mails carry.
        calendars = index.apply(conn, events)
        recorder.record_events(conn, events, calendars, batch.traceparents)

    def committed(position: int) -> None:
        nonlocal queued
        if container._worker is not None and recorder.queued != queued:
            queued = recorder.queued
            container._worker.wake()
        due = index.take_opened_due()
        if container._reminders is not None and due is not None:
            container._reminders.wake_for(due)
        if on_committed is not None:
            on_committed(position)

    return ConsumerSpec(
        group=container.settings.notifications_consumer_group,
        engine=container.engine(),
        apply=apply,
        on_committed=committed,
        histories=(NOTIFICATIONS_HISTORY,),
        auto_migrate=container.settings.auto_migrate,
    )


# A runner (not started) for the spec and the metrics registry: the platform's embedded one.
RunnerFactory = Callable[[ConsumerSpec, Any], Any]


class Workers:
    """Starts and stops the consumer runner, the delivery worker and the reminder
    worker of one container.

    The consumer is the runner ``runner_factory`` builds when one is given, else
    a Kafka runner when ``KAFKA_BOOTSTRAP_SERVERS`` is set, else none.
    """

    def __init__(
        self,
        container: NotificationsContainer,
        *,
        consumer: bool = True,
        delivery: bool = True,
        reminders: bool = True,
        registry: Any = None,
        runner_factory: RunnerFactory | None = None,
        **runner_options: Any,
    ) -> None:
        self.container = container
        self.runner_factory = runner_factory
        self.consumer = consumer
        self.delivery = delivery
        self.reminders = reminders
        self.registry = registry
        self.runner_options = runner_options
        self.runner: Any = None
        self._stop = threading.Event()
        self._starter: threading.Thread | None = None

    def start(self) -> Workers:
        """Starts at once, or (a database down) in the background as soon as it answers."""
        try:
            self._start()
        except Exception as error:  # ours or the runner factory's dependency
            log.warning(
                "cannot start the workers yet (%s: %s); retrying", type(error).__name__, error
            )
            self._starter = threading.Thread(target=self._start_later, daemon=True)
            self._starter.start()
        return self

    def _start_later(self) -> None:
        delay = 0.5
        while not self._stop.wait(delay):
            try:
                self._start()
                return
            except Exception as error:  # keep trying until stopped
                log.warning("workers still not started: %s: %s", type(error).__name__, error)
                delay = min(delay * 2, 10.0)

    def _start(self) -> None:
        settings = self.container.settings
        self.container.engine()
        if self.delivery:
            self.container.delivery_worker().start()
        if self.reminders:
            self.container.reminder_worker().start()
        if self.consumer:
            if self.runner_factory is not None:
                self.runner = self.runner_factory(consumer_spec(self.container), self.registry)
                self.runner.start()
            elif settings.kafka_bootstrap_servers:
                self.runner = service_kafka_runner(
                    consumer_spec(self.container),
                    settings,
                    registry=self.registry,
                    **self.runner_options,
                ).start()
            self.container.consumer = self.runner
            # The erasure worker goes with the consumer: it redacts what the consumer stored.
            self.container.erasure_worker(self.registry).start()
            if self.runner is None:
                log.warning(
                    "KAFKA_BOOTSTRAP_SERVERS is not set: no consumer here (in the embedded "
                    "default `interviewctl up` runs it on the event store's log)"
                )

    def stop(self) -> None:
        self._stop.set()
        if self._starter is not None:
            self._starter.join(15)
        if self.runner is not None:
            self.runner.stop()
            self.runner.join(15)
            self.runner = None
            self.container.consumer = None
        if self.consumer and self.container._erasures is not None:
            self.container._erasures.stop()
        if self.reminders and self.container._reminders is not None:
            self.container._reminders.stop()
        if self.delivery and self.container._worker is not None:
            self.container._worker.stop()


def create_app(
    container: NotificationsContainer,
    *,
    workers: bool = False,
    runner_factory: Callable[[ConsumerSpec, Any], Any] | None = None,
) -> FastAPI:
    """The notifications HTTP app (inbox and webhooks).

    With ``workers=True`` its lifespan also runs the delivery worker, the
    reminder worker and the consumer: the runner ``runner_factory(spec,
    registry)`` returns when given (``interviewctl up`` in the embedded default:
    the event store's log), else on Kafka when ``KAFKA_BOOTSTRAP_SERVERS`` is
    set. All stop before the container closes.
    """
    from .entrypoints import api
    from .entrypoints import preferences as preferences_api

    metrics = Metrics("notifications")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        running: Workers | None = None
        try:
            container.engine()
        except DependencyUnavailableError as error:
            log.warning("notifications database unavailable at start-up, will retry: %s", error)
        if workers:
            running = Workers(
                container, registry=metrics.registry, runner_factory=runner_factory
            ).start()
        yield
        if running is not None:
            running.stop()
        container.close()

    app = service_app(
        title="Notifications",
        description="Each party's inbox, webhooks and e-mail about interviews.",
        lifespan=lifespan,
        container=container,
        auth_secret=container.settings.resolved_auth_secret(),
        metrics=metrics,
        unavailable=UNAVAILABLE,
    )
    install_notification_metrics(
        metrics.registry,
        recorded=lambda: container.recorder.recorded,
        delivery=lambda: container._worker,
        reminders=lambda: container._reminders,
    )
    install_key_metrics(metrics.registry, container.key_health)

    def ready(_: Request) -> None:
        container.check_ready()

    app.include_router(api.router)
    app.include_router(preferences_api.router)
    app.include_router(health_router(metrics, ready))
    return app
