"""``interviewctl up``: every service in one process, on one path space.

The three services stay separate apps with their own containers, each built
by its own ``bootstrap.py``; this module only mounts their routes together and
starts their workers. It is the one place that knows all services, and no
service imports another. Everything it runs is imported when it is: a service
that cannot be imported stops ``interviewctl up`` at once, never a worker
silently left out.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from .asgi_mux import PathMux
from .common.consumer import ConsumerSpec
from .common.readiness import ReadinessRules
from .common.runner.embedded import SharedLog, embedded_runner
from .common.runner.loop import ConsumerRunner
from .common.settings import CommonSettings
from .common.tracing import setup_tracing
from .contracts import EventEnvelope
from .interviews.application import InterviewsApplication
from .interviews.bootstrap import InterviewsContainer, create_app, start_relay, start_scheduler
from .interviews.feed import InterviewEventFeed, wake_on_interview_events
from .notifications.bootstrap import NotificationsContainer
from .notifications.bootstrap import consumer_spec as notifications_spec
from .notifications.bootstrap import create_app as create_notifications_app
from .projections.bootstrap import ProjectionsContainer
from .projections.bootstrap import consumer_spec as projections_spec
from .projections.bootstrap import create_app as create_projections_app

log = logging.getLogger(__name__)


def create_platform_app() -> PathMux:
    """Interviews, projections and notifications on one path space, with their workers.

    Embedded default (no ``KAFKA_BOOTSTRAP_SERVERS``): the consumers read the
    event store's log directly. With Kafka: the relay runs in this process and
    the consumers read the topic, exactly as the separate services would.
    """
    setup_tracing("platform")
    collect_young_garbage_less_often()
    interviews = InterviewsContainer()
    with_kafka = bool(interviews.settings.kafka_bootstrap_servers)
    feed: dict[str, Any] = {}

    def read_log(after: int, limit: int) -> list[EventEnvelope]:
        if "read" not in feed:
            feed["read"], feed["wake"] = embedded_feed(interviews.interviews())
        return feed["read"](after, limit)

    # The consumers open sealed texts with the interviews service's key store, in-process.
    keys = interviews.key_store()
    projections = ProjectionsContainer(
        log_reader=None if with_kafka else read_log,
        log_head=lambda: interviews.interviews().max_position(),
        key_service=keys,
    )
    notifications = NotificationsContainer(key_service=keys)

    @functools.cache
    def shared_log() -> SharedLog:
        """The one reading of the log both embedded consumers follow (each event
        converted once), made when the first of them starts."""
        return embedded_log(interviews.interviews())

    def embedded_factory(spec: ConsumerSpec, registry: Any) -> ConsumerRunner:
        return embedded_runner_for(interviews.interviews(), spec, registry, shared_log())

    interviews_app = create_app(interviews)
    projections_app = create_projections_app(projections, workers=with_kafka)
    notifications_app = create_notifications_app(
        notifications, workers=True, runner_factory=None if with_kafka else embedded_factory
    )

    @contextlib.asynccontextmanager
    async def background() -> AsyncIterator[None]:
        """The platform's own workers: the relay (Kafka) or the embedded projections
        consumer, and the deadline scheduler."""
        started: list[Any] = []
        try:
            if with_kafka:
                relay = start_relay(interviews)
                if relay is not None:
                    started.append(relay)
            else:
                runner = embedded_runner_for(
                    interviews.interviews(),
                    projections_spec(projections),
                    projections.metrics.registry,
                    shared_log(),
                ).start()
                projections.consumer = runner
                started.append(runner)
                # With Kafka the projections app's lifespan runs it (workers=True).
                started.append(projections.erasure_worker().start())
            started.append(
                start_scheduler(
                    interviews,
                    interviews_app.state.metrics.registry,
                    min_wake_interval=EMBEDDED_SCHEDULER_WAKE_SECONDS,
                )
            )
            yield
        finally:
            for worker in reversed(started):
                try:
                    worker.stop()
                except Exception:  # keep stopping the others
                    log.exception("stopping %s failed", worker)
            for worker in started:
                # A consumer thread commits the batch in hand before it ends.
                if isinstance(worker, ConsumerRunner):
                    worker.join(10)

    return PathMux(
        routes=[
            ("/views", projections_app),
            ("/dashboard", projections_app),
            ("/notifications", notifications_app),
            ("/webhooks", notifications_app),
            ("/me", notifications_app),
        ],
        default=interviews_app,
        background=[background],
    )


# Objects allocated, net, between two collections of the youngest generation.
YOUNG_GENERATION_THRESHOLD = 20_000


def collect_young_garbage_less_often() -> None:
    """Raises the collector's youngest threshold (700 by default) for this process.

    One process serves the API and applies every event twice (projections and
    notifications): a request or a consumed batch allocates thousands of objects
    that live a few milliseconds. With a young generation of 700 the collector
    scans most of them while they are still alive; with
    ``YOUNG_GENERATION_THRESHOLD`` most are gone before it looks. The older
    generations keep their ratios, and the garbage cycles that can pile up between
    two collections are a few megabytes."""
    young, older, oldest = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG_GENERATION_THRESHOLD), older, oldest)


# ------------------------------------------------------------ embedded consumers

# How long an embedded consumer waits, while events stream in, before it reads the
# next batch (``EmbeddedSource.linger``): the consumers share the process, its one
# GIL and its CPU with the API, and each batch costs both of them about 8 ms of
# fixed work (their transaction and bookkeeping, the notifications' delivery and
# reminder rounds after it), so under load a batch should hold hundreds of events,
# not tens. A lone event (fewer than ``linger_from`` found) is still applied at once;
# a view trails a stream of commands by at most this much.
EMBEDDED_LINGER_SECONDS = 0.5

# The deadline scheduler, woken by commits of invitations and offers, ticks at most
# this often here (0.2 s in the interviews service): in this process each tick's
# reading of the log and writing of its index takes the API's GIL, and a deadline
# is hours or days away, so a second later changes nothing a user sees.
EMBEDDED_SCHEDULER_WAKE_SECONDS = 1.0


def embedded_feed(
    app: InterviewsApplication,
) -> tuple[Callable[[int, int], list[EventEnvelope]], threading.Event]:
    """What an ``EmbeddedSource`` needs: ``read(after, limit)`` and a wake-up flag.

    ``read`` turns the event store's interview events into the published
    envelopes (the relay's own conversion); the flag is set after every
    committed batch that recorded an interview event (SQLite has no
    LISTEN/NOTIFY, so this is the in-process wake-up; the runner also polls
    slowly as a fallback).
    """
    return InterviewEventFeed(app).read, wake_on_interview_events(app)


def embedded_log(app: InterviewsApplication) -> SharedLog:
    """The event store's interview events as published envelopes, read once for
    every embedded consumer that follows it (``SharedLog``)."""
    return SharedLog(InterviewEventFeed(app).read_from_head)


def embedded_runner_for(
    app: InterviewsApplication,
    spec: ConsumerSpec,
    registry: Any = None,
    shared: SharedLog | None = None,
) -> ConsumerRunner:
    """A consumer of ``spec`` fed directly by the event store's log (no Kafka),
    through ``shared`` when other consumers follow it too; its lag is measured
    against the head its reads found. While events stream in it reads at most every
    ``EMBEDDED_LINGER_SECONDS``."""
    store_log = shared or embedded_log(app)
    return embedded_runner(
        spec,
        store_log.read,
        wake_on_interview_events(app),
        registry=registry,
        max_position=lambda: store_log.head,
        readiness=app_readiness_rules(),
        linger=EMBEDDED_LINGER_SECONDS,
    )


def app_readiness_rules() -> ReadinessRules:
    """The ``CONSUMER_READY_*`` settings, for the embedded consumers."""
    return CommonSettings().readiness_rules()


def consumer_spec(service: str) -> ConsumerSpec:
    """The ``ConsumerSpec`` of a downstream service (for ``dlq``), with the group
    name its settings configure.

    Raises KeyError for an unknown service.
    """
    if service == "projections":
        return projections_spec(ProjectionsContainer())
    if service == "notifications":
        return notifications_spec(NotificationsContainer())
    raise KeyError(service)
