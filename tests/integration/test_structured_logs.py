"""Structured logs: JSON lines with the request's and the event's ids, and never
a word a user wrote."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.common.db import create_engine
from services.common.logs import configure_logging
from services.contracts import EventEnvelope
from services.interviews.bootstrap import InterviewsContainer
from services.notifications.bootstrap import NotificationsContainer
from services.platform import create_platform_app, embedded_runner_for
from tests.conftest import TEST_SECRET
from tests.integration.eventflow import Workload, recording_spec
from tests.jobs import register_job
from tests.support.notifications import Interview, WebhookReceiver, apply
from tests.support.waiting import wait_until

SECRET_MESSAGE = "SECRET-WORDS-123"
SECRET_REASON = "SECRET-REASON-456"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every log line of the process, as JSON, at DEBUG (the most that could leak)."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    buffer = io.StringIO()
    configure_logging("DEBUG", "json", service="platform", stream=buffer)
    try:
        yield buffer
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_a_json_line_names_time_level_service_logger_and_message(captured: io.StringIO) -> None:
    logging.getLogger("tests.logs").warning("disk %s is %d%% full", "sda", 91)

    (line,) = [entry for entry in lines(captured) if entry["logger"] == "tests.logs"]
    assert line["level"] == "WARNING"
    assert line["service"] == "platform"
    assert line["message"] == "disk sda is 91% full"
    assert line["time"].endswith("+00:00")
    assert "correlation_id" not in line  # outside a request nothing is known


def test_no_free_text_a_user_wrote_reaches_the_logs_and_requests_carry_their_ids(
    captured: io.StringIO, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AUTH_SECRET", TEST_SECRET)
    from services.common.auth import mint_token

    def auth(sub: str, role: str) -> dict[str, str]:
        return {"Authorization": "Bearer " + mint_token(TEST_SECRET, sub, role, 600)}

    client, freelancer = auth("client-1", "client"), auth("freelancer-1", "freelancer")
    with TestClient(create_platform_app()) as http:
        register_job(http, "job-logs", "client-1")
        invited = http.post(
            "/interviews",
            json={"job_id": "job-logs", "freelancer_id": "freelancer-1", "message": SECRET_MESSAGE},
            headers={**client, "X-Correlation-Id": "corr-logs-1"},
        )
        assert invited.status_code == 201, invited.text
        interview = invited.json()["id"]
        cancelled = http.post(
            f"/interviews/{interview}/cancel",
            json={"reason": SECRET_REASON},
            headers={**client, "X-Correlation-Id": "corr-logs-2"},
        )
        assert cancelled.status_code == 200, cancelled.text
        position = cancelled.json()["position"]
        view = http.get(
            f"/views/interviews/{interview}", params={"min_position": position}, headers=client
        )
        assert view.json()["status"] == "cancelled"
        state = http.get(f"/interviews/{interview}", headers=client).json()
        assert (state["message"], state["closed_reason"]) == (SECRET_MESSAGE, SECRET_REASON)
        assert wait_until(
            lambda: (
                len(http.get("/notifications", headers=freelancer).json().get("items", [])) >= 2
            ),
            timeout=20,
        )

    output = captured.getvalue()
    entries = lines(captured)  # every line parses
    assert SECRET_MESSAGE not in output
    assert SECRET_REASON not in output
    requests = [e for e in entries if e["logger"] == "http" and e.get("route") == "/interviews"]
    assert [(e["method"], e["status"], e["correlation_id"]) for e in requests] == [
        ("POST", 201, "corr-logs-1")
    ]
    assert requests[0]["service"] == "interviews"
    commands = [e for e in entries if e["message"].startswith("command cancel")]
    assert [e["correlation_id"] for e in commands] == ["corr-logs-2"]


def test_a_consumer_log_line_carries_the_event_s_interview_and_correlation_ids(
    captured: io.StringIO, interviews_container: InterviewsContainer, tmp_path: Path
) -> None:
    app = interviews_container.interviews()
    log = logging.getLogger("tests.consumer")

    def handled(event: EventEnvelope) -> None:
        log.info("applied %s", event.type)

    engine = create_engine(None, tmp_path / "consumer.sqlite")
    spec = recording_spec(engine, "logs", on_handled=handled)
    workload = Workload(app)
    invited = workload.step()
    runner = embedded_runner_for(app, spec).start()
    try:
        assert wait_until(lambda: any(e["logger"] == "tests.consumer" for e in lines(captured)), 20)
    finally:
        runner.stop()
        runner.join(10)
        engine.dispose()

    (line,) = [e for e in lines(captured) if e["logger"] == "tests.consumer"]
    assert line["interview_id"] == str(invited)
    assert line["correlation_id"]  # the command's, as recorded on the event
    assert line["message"] == "applied interview.invited"


def test_a_poison_message_s_error_names_the_field_but_not_what_was_written() -> None:
    from services.contracts import UnsupportedEventError, decode_envelope

    raw = json.dumps(
        {"type": "interview.invited", "schema_version": 1, "interview_id": SECRET_MESSAGE}
    )
    with pytest.raises(UnsupportedEventError) as refused:
        decode_envelope(raw)

    assert "interview_id" in str(refused.value)
    assert SECRET_MESSAGE not in str(refused.value)


def test_a_dead_webhook_delivery_does_not_log_what_the_receiver_echoed(
    captured: io.StringIO, make_container: Callable[..., NotificationsContainer]
) -> None:
    # It answers 500, quoting the text it was sent.
    receiver = WebhookReceiver([500], b"cannot handle: " + SECRET_MESSAGE.encode()).start()
    try:
        container = make_container(delivery_max_attempts=1)
        container.inbox().register_webhook(
            "f-1", receiver.url, "whsec-" + "k" * 24, ["interview.invited"]
        )
        apply(
            container, Interview().event("interview.invited", "client", {"message": SECRET_MESSAGE})
        )
        assert container.delivery_worker().run_once() == 1
    finally:
        receiver.stop()

    assert any(SECRET_MESSAGE.encode() in r.body for r in receiver.received)  # it was sent
    dead = [e for e in lines(captured) if "is dead after" in e["message"]]
    assert len(dead) == 1 and "status 500" in dead[0]["message"]
    assert SECRET_MESSAGE not in captured.getvalue()
