"""Shared helpers and fixtures for the notifications tests: a real webhook
receiver and a real SMTP server on loopback, envelopes, a wired container.

``tests/conftest.py`` registers this module as a plugin, so its fixtures
(``receiver``, ``smtp``, ``make_container``) reach every test without an import."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from services.contracts import EventEnvelope
from services.notifications.bootstrap import NotificationsContainer
from services.notifications.settings import NotificationsSettings
from services.notifications.webhook_urls import Resolver
from tests.conftest import TEST_SECRET, FakeClock

# --------------------------------------------------------------------- webhooks


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """A tiny HTTP server on 127.0.0.1 that records every POST and answers
    ``statuses`` in turn (the last one repeats)."""

    statuses: list[int] = field(default_factory=lambda: [200])
    answer: bytes = b"ok"
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/hook"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.received.append(Received(self.path, dict(self.headers), body))
                    n = len(receiver.received)
                    status = receiver.statuses[min(n, len(receiver.statuses)) - 1]
                self.send_response(status)
                self.send_header("Content-Length", str(len(receiver.answer)))
                self.end_headers()
                self.wfile.write(receiver.answer)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def bodies(self) -> list[Any]:
        with self.lock:
            return [r.json() for r in self.received]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver().start()
    yield r
    r.stop()


# ------------------------------------------------------------------------- SMTP


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpSink:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[tuple[str, list[str], bytes]] = []
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                sink.messages.append(
                    (envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
                )
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def parsed(self) -> list[Any]:
        from email import message_from_bytes
        from email.policy import default

        return [message_from_bytes(raw, policy=default) for _, _, raw in self.messages]


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.controller.start()
    yield sink
    sink.controller.stop()


# -------------------------------------------------------------------- envelopes


class Interview:
    """Builds the envelopes of one interview's life, version by version."""

    def __init__(self, job: str = "job-1", client: str = "c-1", freelancer: str = "f-1") -> None:
        self.id = uuid4()
        self.job, self.client, self.freelancer = job, client, freelancer
        self.version = 0
        self.position = 0

    def event(
        self, type_: str, actor: str, data: dict[str, Any] | None = None, *, position: int = 0
    ) -> EventEnvelope:
        self.version += 1
        actor_id = {"client": self.client, "freelancer": self.freelancer}.get(actor, actor)
        return EventEnvelope.model_validate(
            {
                "id": uuid4(),
                "type": type_,
                "schema_version": 2 if type_ == "interview.cancelled" else 1,
                "interview_id": self.id,
                "version": self.version,
                "position": position or self.version,
                "occurred_at": datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
                "actor": {"id": actor_id, "role": actor},
                "job_id": self.job,
                "client_id": self.client,
                "freelancer_id": self.freelancer,
                "correlation_id": "corr",
                "causation_id": "cause",
                "data": data or {},
            }
        )


OFFER = {"amount": "900", "currency": "USD", "rate_type": "fixed"}


def apply(container: NotificationsContainer, *events: EventEnvelope) -> None:
    """What the runner does: each event's effects inside one transaction."""
    engine = container.engine()
    for event in events:
        with engine.begin() as conn:
            container.recorder(conn, event)


def settings_for(database_url: str | None, data_dir: Path, **over: Any) -> NotificationsSettings:
    # The receivers here listen on loopback, which only an allow-listed host may use.
    values: dict[str, Any] = {
        "delivery_concurrency": 1,
        "webhook_allowed_hosts": "127.0.0.1",
    } | over
    return NotificationsSettings(
        database_url=database_url, data_dir=data_dir, auth_secret=TEST_SECRET, **values
    )


@pytest.fixture
def make_container(
    database_url: str | None, tmp_path: Path, clock: FakeClock
) -> Iterator[Callable[..., NotificationsContainer]]:
    made: list[NotificationsContainer] = []

    def make(resolver: Resolver | None = None, **over: Any) -> NotificationsContainer:
        container = NotificationsContainer(
            settings_for(database_url, tmp_path, **over),
            clock=clock,
            **({"resolver": resolver} if resolver else {}),
        )
        made.append(container)
        return container

    yield make
    for c in made:
        c.close()


def inbox_of(container: NotificationsContainer, user: str) -> list[dict[str, Any]]:
    return container.inbox().list_notifications(user, unread=None, limit=200, cursor=None).items


def delete_topics(bootstrap: str, *topics: str) -> None:
    """Best effort: a test's own topics do not pile up on the local broker."""
    from kafka import KafkaAdminClient

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
        try:
            existing = set(admin.list_topics())
            names = [*topics, *(f"{t}.dlq" for t in topics)]
            doomed = [name for name in names if name in existing]
            if doomed:
                admin.delete_topics(doomed)
        finally:
            admin.close()
    except Exception:  # cleanup only
        pass


def ids(values: list[Any]) -> list[UUID]:
    return [UUID(str(v)) for v in values]


class FakeDns:
    """A resolver tests can re-point (DNS rebinding); unknown names do not resolve."""

    def __init__(self, names: dict[str, list[str]] | None = None) -> None:
        self.names = dict(names or {})
        self.asked: list[str] = []

    def point(self, name: str, *addresses: str) -> None:
        self.names[name] = list(addresses)

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.names:
            raise OSError(f"{host}: name or service not known")
        return self.names[host]
