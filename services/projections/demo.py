"""A small hiring marketplace as the events it would publish: the dashboard's
demo data (``scripts/screenshots.py``) and its browser tests.

Times are relative to ``now``, so deadlines are always ahead and meetings
always coming up. Every state appears: invited, accepted, in progress, offer
extended, hired, declined, cancelled and expired. Three clients, so each
role's page can be checked for what it must not show.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..common.runner.embedded import embedded_runner
from ..contracts import SCHEMA_VERSIONS, EventEnvelope
from .bootstrap import ProjectionsContainer, consumer_spec, create_app
from .settings import ProjectionsSettings

NAMESPACE = uuid.UUID("5b0c8a57-55f2-4e0e-9a51-4f3d2a1c7e90")
# Who records each event (an interview may be started by either party; the demo's clients do).
ACTOR_SIDE = {
    "invited": "client",
    "accepted": "freelancer",
    "declined": "freelancer",
    "started": "client",
    "rescheduled": "client",
    "offer_extended": "client",
    "offer_accepted": "freelancer",
    "offer_declined": "freelancer",
    "offer_withdrawn": "client",
    "cancelled": "client",
    "expired": "system",
}

Step = tuple[str, timedelta, dict[str, Any]]


@dataclass
class DemoLog:
    """Collects interviews as steps and publishes them as ordered envelopes."""

    now: datetime
    steps: list[tuple[datetime, uuid.UUID, str, str, str, str, dict[str, Any]]] = field(
        default_factory=list
    )

    def at(
        self, days: float = 0, hour: int | None = None, minute: int = 0, *, hours: float = 0
    ) -> datetime:
        """``now`` moved by ``days`` (and ``hours``), to the nearest quarter of an
        hour; at ``hour:minute`` UTC of that day when given."""
        moment = self.now + timedelta(days=days, hours=hours)
        if hour is not None:
            return moment.replace(hour=hour, minute=minute, second=0, microsecond=0)
        return _quarter(moment + timedelta(minutes=7, seconds=30))  # the nearest quarter

    def interview(self, job: str, client: str, freelancer: str, *steps: Step) -> uuid.UUID:
        interview_id = uuid.uuid5(NAMESPACE, f"{job}/{client}/{freelancer}")
        for kind, ago, data in steps:
            when = _quarter(self.now - ago)  # never after now
            self.steps.append((when, interview_id, kind, job, client, freelancer, data))
        return interview_id

    def events(self) -> list[EventEnvelope]:
        ordered = sorted(self.steps, key=lambda s: (s[0], str(s[1])))
        versions: dict[uuid.UUID, int] = {}
        out = []
        for position, (at, interview_id, kind, job, client, freelancer, data) in enumerate(
            ordered, start=1
        ):
            versions[interview_id] = version = versions.get(interview_id, 0) + 1
            side = ACTOR_SIDE[kind]
            actor = {"client": client, "freelancer": freelancer, "system": "scheduler"}[side]
            if kind == "cancelled" and data.get("cancelled_by") == "freelancer":
                side, actor = "freelancer", freelancer
            event_type = f"interview.{kind}"
            out.append(
                EventEnvelope.model_validate(
                    {
                        "id": uuid.uuid5(interview_id, str(version)),
                        "type": event_type,
                        "schema_version": SCHEMA_VERSIONS[event_type],
                        "interview_id": interview_id,
                        "version": version,
                        "position": position,
                        "occurred_at": at,
                        "actor": {"id": actor, "role": side},
                        "job_id": job,
                        "client_id": client,
                        "freelancer_id": freelancer,
                        "correlation_id": f"demo-{position}",
                        "causation_id": f"demo-{position}",
                        "data": {k: _json(v) for k, v in data.items()},
                    }
                )
            )
        return out


def _quarter(moment: datetime) -> datetime:
    """``moment`` rounded down to a quarter of an hour, as people write times."""
    return moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def d(days: float = 0, hours: float = 0) -> timedelta:
    """How long ago a step happened."""
    return timedelta(days=days, hours=hours)


def demo_log(now: datetime) -> DemoLog:
    """The demo marketplace: client ``northwind`` (three jobs, every state),
    ``acme-studio`` and ``globex`` (one job each); freelancer ``ana.souza`` has
    interviews with all three."""
    log = DemoLog(now)
    at = log.at

    def invited(ago: timedelta, expires_at: datetime | None = None, msg: str | None = None) -> Step:
        data: dict[str, Any] = {"message": msg}
        if expires_at is not None:
            data["expires_at"] = expires_at
        return ("invited", ago, data)

    def accepted(ago: timedelta) -> Step:
        return ("accepted", ago, {})

    def started(ago: timedelta, scheduled_at: datetime | None, minutes: int = 45) -> Step:
        return ("started", ago, {"scheduled_at": scheduled_at, "duration_minutes": minutes})

    def offered(ago: timedelta, amount: str, currency: str, rate: str, expires: datetime) -> Step:
        return (
            "offer_extended",
            ago,
            {
                "amount": amount,
                "currency": currency,
                "rate_type": rate,
                "start_date": None,
                "message": "We would love to have you on the team.",
                "expires_at": expires,
            },
        )

    nw = "northwind"
    job = "brand-refresh-designer"
    log.interview(
        job, nw, "ana.souza",
        invited(d(1), at(hours=5), "Loved your portfolio, can we talk?"),
    )  # fmt: skip
    log.interview(job, nw, "li.wei", invited(d(3), at(4)), accepted(d(2)))
    log.interview(
        job, nw, "marta.kowalska",
        invited(d(6)), accepted(d(5)), started(d(4), at(1, 14)),
    )  # fmt: skip
    log.interview(
        job, nw, "omar.haddad",
        invited(d(8)), accepted(d(7)), started(d(6), at(-3, 10)),
        offered(d(1), "4800", "EUR", "fixed", at(hours=30)),
    )  # fmt: skip
    log.interview(
        job, nw, "jon.berg",
        invited(d(10)), ("declined", d(9), {"reason": "Fully booked until March."}),
    )  # fmt: skip

    job = "backend-api-engineer"
    log.interview(
        job, nw, "priya.nair",
        invited(d(14)), accepted(d(13)), started(d(12), at(-10, 9)),
        offered(d(5), "85", "EUR", "hourly", at(3)), ("offer_accepted", d(2), {}),
    )  # fmt: skip
    log.interview(
        job, nw, "tom.okafor",
        invited(d(9)), accepted(d(8)), started(d(5), at(2, 10, 30), 60),
        ("rescheduled", d(1), {
            "scheduled_at": at(3, 13), "duration_minutes": 60,
            "previous_scheduled_at": at(2, 10, 30), "reason": "A clash with a client workshop.",
        }),
    )  # fmt: skip
    log.interview(
        job, nw, "sara.lind",
        invited(d(5), at(-1)), ("expired", d(1), {"what": "invitation"}),
    )  # fmt: skip
    log.interview(job, nw, "kenji.mori", invited(d(2), at(4)))
    log.interview(
        job, nw, "lucas.brandt",
        invited(d(10)), accepted(d(9)), started(d(8), at(-5, 15)),
        offered(d(3), "70", "EUR", "hourly", at(4)),
        ("offer_declined", d(2), {"reason": "The rate is below my minimum.",
                                  "status": "in_progress"}),
    )  # fmt: skip

    job = "mobile-app-audit"
    log.interview(
        job, nw, "elena.rossi",
        invited(d(3)), accepted(d(2)),
        ("cancelled", d(1), {"reason": "Project postponed to next quarter.",
                             "cancelled_by": "client", "job_closed": False}),
    )  # fmt: skip
    log.interview(job, nw, "david.kim", invited(d(1), at(hours=40)))
    log.interview(
        job, nw, "nina.petrova",
        invited(d(2)), accepted(d(1)), started(d(0, 3), at(hours=2), 30),
    )  # fmt: skip

    log.interview(
        "data-pipeline", "acme-studio", "ana.souza",
        invited(d(6)), accepted(d(5)), started(d(4), at(-2, 16)),
        offered(d(1), "6200", "USD", "fixed", at(3)),
    )  # fmt: skip
    log.interview(
        "data-pipeline", "acme-studio", "ravi.shah",
        invited(d(7)), accepted(d(6)), offered(d(4), "5500", "USD", "fixed", at(2)),
        ("offer_accepted", d(3), {}),
    )  # fmt: skip
    log.interview(
        "logo-sprint", "globex", "ana.souza",
        invited(d(4)), accepted(d(3)), started(d(2), at(2, 9), 30),
    )  # fmt: skip
    log.interview(
        "landing-page", "globex", "ana.souza",
        invited(d(20)), ("declined", d(19), {"reason": "Not my kind of project."}),
    )  # fmt: skip
    return log


@contextlib.contextmanager
def serve(
    data_dir: Path,
    events: list[EventEnvelope],
    *,
    auth_secret: str,
    port: int = 0,
) -> Iterator[tuple[str, Callable[[EventEnvelope], None]]]:
    """The projections app on ``127.0.0.1`` (SQLite under ``data_dir``) with its
    consumer reading ``events`` as the embedded platform reads the event store.

    Yields the base URL and ``publish(event)``, which appends one more event
    to the log (for live updates)."""
    import uvicorn

    log = list(events)
    lock = threading.Lock()
    wake = threading.Event()

    def read(after: int, limit: int) -> list[EventEnvelope]:
        with lock:
            return [e for e in log if e.position > after][:limit]

    def head() -> int:
        with lock:
            return log[-1].position if log else 0

    def publish(event: EventEnvelope) -> None:
        with lock:
            log.append(event)
        wake.set()

    container = ProjectionsContainer(
        ProjectionsSettings(
            database_url=None,
            projections_database_url=None,
            kafka_bootstrap_servers=None,
            data_dir=data_dir,
            auth_secret=auth_secret,
            stream_interval_s=0.05,
        ),
        log_reader=read,
        log_head=head,
    )
    runner = embedded_runner(
        consumer_spec(container),
        read,
        wake,
        registry=container.metrics.registry,
        max_position=head,
        poll_timeout=0.2,
    ).start()
    if port == 0:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(container),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=2,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not (
            server.started and container.watch.position >= head()
        ):
            time.sleep(0.05)
        if not server.started:
            raise RuntimeError("the projections app did not start")
        yield f"http://127.0.0.1:{port}", publish
    finally:
        server.should_exit = True
        thread.join(10)
        runner.stop()
        runner.join(10)
        container.close()
