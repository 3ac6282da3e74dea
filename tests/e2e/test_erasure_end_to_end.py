"""Crypto-shredding across both sides (#17), over HTTP against real processes.

A client invites freelancer f-1 with a message; f-1 declines one interview, declines
an offer and cancels another, each with their own words; f-2 declines a third. An
admin erases f-1 (``POST /admin/erasures``) and waits for ``done``. Then f-1's words
are in no row of any database, in no message of any topic, in no export and in no
log line; no file under DATA_DIR holds them (embedded); every API shows them as
null with ``erased_fields``; the history still verifies; everyone else's words stay.

Three deployments: ``interviewctl up`` embedded (SQLite, no broker); ``up`` with
PostgreSQL and Kafka; and separate processes (``serve interviews``, ``relay``,
``serve projections|notifications`` with KEY_SERVICE_URL) on PostgreSQL and Kafka.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from services.common.auth import mint_token
from tests.conftest import TEST_SECRET, create_database, drop_database
from tests.integration.erasure_support import files_containing, rows_containing

pytestmark = pytest.mark.e2e

FIONA = "f-1"
FIONA_WORDS = ("Fiona-booked-until-March", "Fiona-rate-too-low", "Fiona-moving-abroad")
OTHER_WORDS = ("Carla-invites-you-warmly", "Carla-offer-note", "Frank-not-my-field")
ROUTES = {  # the separate deployment: which process serves which path
    "/views": "projections",
    "/dashboard": "projections",
    "/notifications": "notifications",
    "/webhooks": "notifications",
    "/me": "notifications",
}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Deployment:
    name: str
    env: dict[str, str]
    data_dir: Path
    urls: dict[str, str]  # service -> base URL ("interviews" serves the rest)
    logs: list[Path] = field(default_factory=list)
    database_url: str | None = None
    kafka: str | None = None

    def url(self, path: str) -> str:
        service = next((s for p, s in ROUTES.items() if path.startswith(p)), "interviews")
        return self.urls.get(service, self.urls["interviews"]) + path

    def request(self, method: str, path: str, who: tuple[str, str], **kw: Any) -> httpx.Response:
        token = mint_token(TEST_SECRET, who[0], who[1])
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.request(method, self.url(path), headers=headers, timeout=15, **kw)


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", *args], env=env, stdout=out, stderr=out
    )


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.3)
    raise AssertionError(f"{url} did not start: {log.read_text()[-2000:]}")


@pytest.fixture(params=["embedded", "kafka", "separate"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "AUTH_SECRET", "KEY_SERVICE_URL")
    }
    data_dir = tmp_path / "data"
    env |= {
        "DATA_DIR": str(data_dir),
        "AUTH_SECRET": TEST_SECRET,
        "LOG_LEVEL": "INFO",
        "KEY_CACHE_TTL_SECONDS": "1",
    }
    admin_url, db_name, kafka = None, None, None
    if request.param != "embedded":
        admin_url = os.environ.get("DATABASE_URL")
        kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not admin_url or not kafka:
            pytest.skip("needs DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS")
        db_name = f"t_erasure_{uuid.uuid4().hex[:10]}"
        suffix = uuid.uuid4().hex[:8]
        env |= {
            "DATABASE_URL": create_database(admin_url, db_name),
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            "EVENTS_TOPIC": f"interviews.events.{suffix}",
            "PROJECTIONS_CONSUMER_GROUP": f"projections-{suffix}",
            "NOTIFICATIONS_CONSUMER_GROUP": f"notifications-{suffix}",
        }
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    urls: dict[str, str] = {}
    try:
        services = (
            [("interviews", ["up"])]
            if request.param != "separate"
            else [
                ("interviews", ["serve", "interviews"]),
                ("relay", ["relay"]),
                ("projections", ["serve", "projections"]),
                ("notifications", ["serve", "notifications"]),
            ]
        )
        for name, args in services:
            log = tmp_path / f"{name}.log"
            logs.append(log)
            if name == "relay":
                processes.append(_start(args, env, log))
                continue
            port = _free_port()
            urls[name] = f"http://127.0.0.1:{port}"
            if name in ("projections", "notifications"):
                env = env | {"KEY_SERVICE_URL": urls["interviews"]}
            processes.append(_start([*args, "--port", str(port)], env, log))
            _wait_ready(urls[name], processes[-1], log)
        yield Deployment(
            request.param,
            env,
            data_dir,
            urls,
            logs,
            env.get("DATABASE_URL"),
            kafka,
        )
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        if admin_url and db_name:
            drop_database(admin_url, db_name)


def _eventually(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


CLIENT = ("c-1", "client")
FIONA_P = (FIONA, "freelancer")
FRANK = ("f-2", "freelancer")
ADMIN = ("admin-1", "admin")
AUDITOR = ("auditor-1", "auditor")


def _story(d: Deployment) -> dict[str, str]:
    job = _ok(d.request("POST", "/jobs", CLIENT, json={"title": "Backend engineer"}), 201)
    ids: dict[str, str] = {}

    def invite(freelancer: str, message: str | None) -> str:
        body = {"job_id": job["job_id"], "freelancer_id": freelancer}
        if message:
            body["message"] = message
        return str(_ok(d.request("POST", "/interviews", CLIENT, json=body), 201)["id"])

    ids["a"] = invite(FIONA, OTHER_WORDS[0])
    _ok(d.request("POST", f"/interviews/{ids['a']}/decline", FIONA_P,
                  json={"reason": FIONA_WORDS[0]}))  # fmt: skip
    job2 = _ok(d.request("POST", "/jobs", CLIENT, json={"title": "Data engineer"}), 201)
    body = {"job_id": job2["job_id"], "freelancer_id": FIONA}
    ids["b"] = str(_ok(d.request("POST", "/interviews", CLIENT, json=body), 201)["id"])
    _ok(d.request("POST", f"/interviews/{ids['b']}/accept", FIONA_P))
    offer = {"amount": "1200.00", "currency": "EUR", "rate_type": "fixed",
             "message": OTHER_WORDS[1]}  # fmt: skip
    _ok(d.request("POST", f"/interviews/{ids['b']}/offer", CLIENT, json=offer))
    _ok(d.request("POST", f"/interviews/{ids['b']}/offer/decline", FIONA_P,
                  json={"reason": FIONA_WORDS[1]}))  # fmt: skip
    _ok(d.request("POST", f"/interviews/{ids['b']}/cancel", FIONA_P,
                  json={"reason": FIONA_WORDS[2]}))  # fmt: skip
    ids["c"] = invite("f-2", None)
    _ok(d.request("POST", f"/interviews/{ids['c']}/decline", FRANK,
                  json={"reason": OTHER_WORDS[2]}))  # fmt: skip
    return ids


def _all_databases(d: Deployment) -> list[sa.Engine]:
    if d.database_url:
        return [sa.create_engine(d.database_url.replace("postgresql://", "postgresql+psycopg://"))]
    return [sa.create_engine(f"sqlite:///{p}") for p in sorted(d.data_dir.glob("*.sqlite"))]


def _stored(d: Deployment, words: tuple[str, ...]) -> set[str]:
    found: set[str] = set()
    for engine in _all_databases(d):
        try:
            found |= {w for _, _, w in rows_containing(engine, words)}
        finally:
            engine.dispose()
    return found


def _on_topics(d: Deployment, words: tuple[str, ...]) -> set[str]:
    from tests.integration.eventflow import read_topic

    assert d.kafka is not None
    found: set[str] = set()
    for topic in (d.env["EVENTS_TOPIC"], "privacy.erasures"):
        for message in read_topic(d.kafka, topic, timeout=5):
            raw = (message.value or b"") + (message.key or b"")
            found |= {w for w in words if w.encode() in raw}
    return found


def test_an_erased_persons_words_are_gone_everywhere_and_the_history_still_verifies(
    deployment: Deployment, tmp_path: Path
) -> None:
    d = deployment
    ids = _story(d)

    def settled() -> bool:
        view = d.request("GET", f"/views/interviews/{ids['c']}", AUDITOR)
        inbox = d.request("GET", "/notifications", CLIENT)
        return (
            view.status_code == 200
            and view.json()["decline_reason"] == OTHER_WORDS[2]
            and FIONA_WORDS[2] in inbox.text
        )

    _eventually(settled, "the views and the inbox to show everything")
    assert _stored(d, FIONA_WORDS) == set(FIONA_WORDS)  # opened and kept, before the erasure

    # Erasure: admins only; bad input 422; then 202 pending, later done.
    body = {"subject_id": FIONA, "reason": "GDPR art. 17 request #4711"}
    assert d.request("POST", "/admin/erasures", CLIENT, json=body).status_code == 403
    assert d.request("POST", "/admin/erasures", ADMIN, json={"reason": "x"}).status_code == 422
    accepted = _ok(d.request("POST", "/admin/erasures", ADMIN, json=body), 202)
    assert accepted["status"] == "pending" and accepted["subject_id"] == FIONA

    def done() -> Any:
        state = _ok(d.request("GET", f"/admin/erasures/{accepted['id']}", ADMIN))
        return state if state["status"] == "done" else None

    state = _eventually(done, "the erasure to be done by every service", timeout=90)
    assert state["services"] == {
        "interviews": "done",
        "projections": "done",
        "notifications": "done",
    }
    assert state["reason"] == body["reason"] and state["requested_by"] == ADMIN[0]

    # Every API: null, listed in erased_fields; others' words stay.
    a = _ok(d.request("GET", f"/views/interviews/{ids['a']}", AUDITOR))
    assert a["decline_reason"] is None and "decline_reason" in a["erased_fields"]
    assert a["invitation_message"] == OTHER_WORDS[0]
    b = _ok(d.request("GET", f"/views/interviews/{ids['b']}", AUDITOR))
    assert b["cancellation"]["reason"] is None and "cancellation.reason" in b["erased_fields"]
    c = _ok(d.request("GET", f"/views/interviews/{ids['c']}", AUDITOR))
    assert c["decline_reason"] == OTHER_WORDS[2] and c["erased_fields"] == []
    authoritative = _ok(d.request("GET", f"/interviews/{ids['a']}", CLIENT))
    assert "reason" in str(authoritative.get("erased_fields"))
    inbox = _ok(d.request("GET", "/notifications", CLIENT))["items"]
    assert not any(w in str(inbox) for w in FIONA_WORDS)
    assert any(n["erased_fields"] for n in inbox)
    for interview in ids.values():
        assert _ok(d.request("GET", f"/audit/interviews/{interview}/verify", AUDITOR))["ok"]

    # No row of any database, no file (embedded), no topic message, no export, no log.
    assert _stored(d, FIONA_WORDS) == set()
    assert _stored(d, OTHER_WORDS) == set(OTHER_WORDS)
    if d.name == "embedded":
        assert files_containing(d.data_dir, FIONA_WORDS) == []
    if d.kafka:
        assert _on_topics(d, FIONA_WORDS) == set()
    export = tmp_path / "export.jsonl"
    subprocess.run(
        [sys.executable, "-m", "services.cli", "audit", "export", "--out", str(export)],
        env=d.env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert not any(w.encode() in export.read_bytes() for w in FIONA_WORDS)
    for log in d.logs:
        assert not any(w.encode() in log.read_bytes() for w in FIONA_WORDS), log.name

    # A rebuild after the erasure yields the same redacted views.
    replay = subprocess.run(
        [sys.executable, "-m", "services.cli", "replay"],
        env=d.env | ({"KEY_SERVICE_URL": d.urls["interviews"]} if d.kafka else {}),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert replay.returncode == 0, replay.stderr
    again = _ok(d.request("GET", f"/views/interviews/{ids['a']}", AUDITOR))
    assert again["decline_reason"] is None and again["erased_fields"] == a["erased_fields"]
    assert _stored(d, FIONA_WORDS) == set()
    if d.name == "embedded":
        assert files_containing(d.data_dir, FIONA_WORDS) == []

    # Erasing the same person again is fine.
    again_accepted = _ok(d.request("POST", "/admin/erasures", ADMIN, json=body), 202)
    assert again_accepted["subject_id"] == FIONA
