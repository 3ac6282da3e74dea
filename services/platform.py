"""``interviewctl up``: every service in one process, on one path space.

The three services stay separate apps with their own containers; this module
only mounts their routes together and starts their workers. It is the one
place that knows all services, and no service imports another.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from .interviews.bootstrap import InterviewsContainer, create_app

if TYPE_CHECKING:
    from .common.consumer import ConsumerSpec
    from .common.runner import ConsumerRunner
    from .contracts import EventEnvelope
    from .interviews.application import InterviewsApplication
    from .interviews.relay import RelayProcess


def create_platform_app() -> FastAPI:
    return create_app(InterviewsContainer())


# ------------------------------------------------ embedded consumers and the relay


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
    from .interviews.feed import InterviewEventFeed, wake_on_interview_events

    return InterviewEventFeed(app).read, wake_on_interview_events(app)


def embedded_runner_for(
    app: InterviewsApplication, spec: ConsumerSpec, registry: Any = None
) -> ConsumerRunner:
    """A consumer of ``spec`` fed directly by the event store's log (no Kafka)."""
    from .common.runner import embedded_runner

    read, wake = embedded_feed(app)
    return embedded_runner(spec, read, wake, registry=registry, max_position=app.max_position)


def start_relay(container: InterviewsContainer, registry: Any = None) -> RelayProcess | None:
    """With KAFKA_BOOTSTRAP_SERVERS set, runs the relay in a thread of this process."""
    from .interviews.relay import RelayProcess, RelaySettings

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


def consumer_spec(group: str) -> ConsumerSpec:
    """The ``ConsumerSpec`` of a downstream service by its group name (for ``dlq``).

    Raises KeyError for an unknown group.
    """
    import importlib

    if group not in ("projections", "notifications"):
        raise KeyError(group)
    bootstrap = importlib.import_module(f".{group}.bootstrap", __package__)
    container = getattr(bootstrap, f"{group.capitalize()}Container")()
    return bootstrap.consumer_spec(container)  # type: ignore[no-any-return]
