"""The interview API, the notifications API and a consumer between them, wired
for the notifications end-to-end tests; each command waits until the consumer
has committed its event, so what a test reads next already reflects it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from services.common.consumer import ConsumerSpec
from services.common.runner.embedded import embedded_runner
from services.common.runner.loop import ConsumerRunner
from services.interviews.bootstrap import InterviewsContainer
from services.interviews.feed import InterviewEventFeed, wake_on_interview_events
from tests.jobs import register_job

Token = Callable[[str, str], dict[str, str]]


class Platform:
    """The interview API, the notifications API and the embedded consumer, wired."""

    def __init__(self, commands: TestClient, inbox: TestClient, token: Token) -> None:
        self.commands, self.inbox, self.token = commands, inbox, token
        self.applied = 0
        self.changed = threading.Condition()

    def on_committed(self, position: int) -> None:
        with self.changed:
            self.applied = max(self.applied, position)
            self.changed.notify_all()

    def wait_for(self, position: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.applied >= position, timeout=30)

    def do(self, user: str, role: str, path: str, body: Any = None) -> dict[str, Any]:
        """A command as ``user``; an invitation registers its job for them first."""
        if path == "/interviews":
            register_job(self.commands, body["job_id"], user)
        answer = self.commands.post(path, json=body, headers=self.token(user, role))
        assert answer.status_code in (200, 201), answer.text
        result: dict[str, Any] = answer.json()
        self.wait_for(result["position"])
        return result

    def told(self, user: str) -> list[tuple[str, str]]:
        """(type, job) of each notification of ``user``, oldest first."""
        role = "client" if user.startswith("c") else "freelancer"
        items = self.inbox.get(
            "/notifications", params={"limit": 200}, headers=self.token(user, role)
        ).json()["items"]
        return [(n["type"].removeprefix("interview."), n["job_id"]) for n in reversed(items)]


def report_commits(spec: ConsumerSpec, report: Callable[[int], None]) -> None:
    """After the spec's own ``on_committed``, ``report`` hears each committed position."""
    recorded = spec.on_committed

    def committed(position: int) -> None:
        if recorded is not None:
            recorded(position)
        report(position)

    spec.on_committed = committed


def store_runner(
    spec: ConsumerSpec, interviews: InterviewsContainer, registry: Any
) -> ConsumerRunner:
    """The runner ``interviewctl up`` builds: ``spec`` reading the event store's own log."""
    app = interviews.interviews()
    return embedded_runner(
        spec,
        InterviewEventFeed(app).read,
        wake_on_interview_events(app),
        registry=registry,
        max_position=app.max_position,
    )
