"""The reliability suite's tools (no tests here): the services as real OS processes,
a load of HTTP commands that survives their deaths, readers of the event store,
the topic and the consumers' databases, and the tally behind the summary line."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import sqlalchemy as sa

from services.common.auth import mint_token
from services.common.kafka import UNLIMITED_RETENTION, ensure_topics
from services.contracts import EventEnvelope
from tests.conftest import TEST_SECRET
from tests.jobs import service_headers
from tests.support.waiting import WaitTimeout, wait_until

ROOT = Path(__file__).resolve().parents[2]

# ------------------------------------------------------------------ the tally


@dataclass
class Tally:
    """What the whole suite did and found; printed as one line at the end."""

    faults: int = 0
    acknowledged: int = 0
    lost: int = 0
    duplicates: int = 0
    bad_inputs: int = 0
    server_errors: int = 0
    unauthorized: int = 0
    poison_accepted: int = 0  # accepted commands whose events were parked or stopped a worker
    touched: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            self.touched = True
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def line(self) -> str:
        return (
            f"reliability: faults injected {self.faults}, commands acknowledged "
            f"{self.acknowledged}, events lost {self.lost}, duplicate effects "
            f"{self.duplicates}, bad inputs tried {self.bad_inputs}, server errors "
            f"{self.server_errors}, unauthorized successes {self.unauthorized}, "
            f"poison accepted {self.poison_accepted}"
        )


TALLY = Tally()


def bearer(sub: str, role: str, secret: str = TEST_SECRET, ttl: int = 3600) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(secret, sub, role, ttl)}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------ processes


class Service:
    """One service as a real OS process: started, SIGKILLed, restarted, stopped.

    Its output goes to ``log`` (appended across restarts) so a failing test can
    show it; ``port`` is set for HTTP services, which are ready once /healthz answers.
    """

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], log: Path, port: int | None = None
    ) -> None:
        self.name, self.argv, self.env, self.log, self.port = name, argv, env, log, port
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0
        self.starts = 0

    @property
    def url(self) -> str:
        assert self.port is not None, f"{self.name} is not an HTTP service"
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Service:
        with self.log.open("ab") as out:
            out.write(f"---- start {self.starts + 1} of {self.name}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [sys.executable, *self.argv],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        if self.port is None:
            return

        def healthy() -> bool:
            if not self.alive():
                raise AssertionError(f"{self.name} exited at start-up:\n{self.tail()}")
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200

        try:
            wait_until(
                healthy, timeout, what=f"{self.name} to be healthy", ignoring=(httpx.HTTPError,)
            )
        except WaitTimeout as timed_out:
            raise AssertionError(f"{timed_out}:\n{self.tail()}") from None

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind; counted as an injected fault."""
        assert self.proc is not None and self.proc.poll() is None, f"{self.name} is not running"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.kills += 1
        TALLY.add(faults=1)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(text[-lines:])

    def unhandled_errors(self) -> int:
        """Requests that ended in an unhandled exception (uvicorn logs each 500 so)."""
        try:
            return self.log.read_text(errors="replace").count("Exception in ASGI application")
        except FileNotFoundError:
            return 0


@contextlib.contextmanager
def fresh_databases() -> Iterator[Callable[[str], str]]:
    """``make("views")`` -> the URL of a new, empty PostgreSQL database; all of them
    are dropped afterwards (each service owns its database, as in production)."""
    from tests.conftest import create_database, drop_database, require_postgres

    admin = require_postgres()
    names: list[str] = []

    def make(prefix: str) -> str:
        names.append(f"rel_{prefix}_{uuid.uuid4().hex[:10]}")
        return create_database(admin, names[-1])

    try:
        yield make
    finally:
        for name in names:
            # PostgreSQL may be down after a failed outage test.
            with contextlib.suppress(Exception):
                drop_database(admin, name)


def unique_name(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


class Platform:
    """The services of one test, each its own process, on a topic, consumer groups
    and PostgreSQL databases of their own (so runs never collide)."""

    def __init__(
        self, tmp: Path, bootstrap: str, databases: Callable[[str], str], name: str = "rel"
    ) -> None:
        self.tmp = tmp
        self.bootstrap = bootstrap
        self.topic = unique_name(f"{name}-events")
        self.interviews_db = databases("interviews")
        self.views_db = databases("views")
        self.notifications_db = databases("notifications")
        tag = uuid.uuid4().hex[:8]
        self.projections_group = f"projections-{tag}"
        self.notifications_group = f"notifications-{tag}"
        self.services: dict[str, Service] = {}
        self.extra_env: dict[str, str] = {}  # applied last, to every service
        # The first interviews API's port, known before it starts: the consumers open
        # sealed texts through its internal key API (KEY_SERVICE_URL).
        self.interviews_port = free_port()
        # Right after a broker restart (an earlier test's) creating a topic can fail
        # for a few seconds: try again for up to a minute.
        wait_until(
            lambda: ensure_topics(bootstrap, {self.topic: (6, UNLIMITED_RETENTION)}) or True,
            60,
            1,
            what=f"topic {self.topic} to be created",
            ignoring=(Exception,),
        )

    # -- environment

    def base_env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.endswith("_DATABASE_URL") and not k.startswith(("RELAY_", "DELIVERY_"))
        }
        return (
            env
            | {
                "AUTH_SECRET": TEST_SECRET,
                "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                "EVENTS_TOPIC": self.topic,
                "DATA_DIR": str(self.tmp / "data"),
                "LOG_LEVEL": "WARNING",
                "PYTHONUNBUFFERED": "1",
                "KEY_SERVICE_URL": f"http://127.0.0.1:{self.interviews_port}",
            }
            | self.extra_env
        )

    def interviews_env(self) -> dict[str, str]:
        return (
            self.base_env()
            | {
                "DATABASE_URL": self.interviews_db,
                "RELAY_METRICS_PORT": "0",
                "RELAY_MAX_BACKOFF_SECONDS": "2",
            }
            | self.extra_env
        )

    def projections_env(self) -> dict[str, str]:
        return (
            self.base_env()
            | {
                "DATABASE_URL": self.views_db,
                "PROJECTIONS_DATABASE_URL": self.views_db,
                "PROJECTIONS_CONSUMER_GROUP": self.projections_group,
                "MIN_POSITION_TIMEOUT_S": "0.5",
                "STREAM_LIFETIME_S": "0.3",
            }
            | self.extra_env
        )

    def notifications_env(self) -> dict[str, str]:
        return (
            self.base_env()
            | {
                "DATABASE_URL": self.notifications_db,
                "NOTIFICATIONS_DATABASE_URL": self.notifications_db,
                "NOTIFICATIONS_CONSUMER_GROUP": self.notifications_group,
                # A SIGKILLed worker's claimed deliveries come back after the lease.
                "DELIVERY_LEASE_SECONDS": "2",
                "DELIVERY_POLL_SECONDS": "0.2",
                "DELIVERY_BACKOFF_BASE_SECONDS": "0.5",
                "DELIVERY_BACKOFF_MAX_SECONDS": "2",
                "DELIVERY_CONCURRENCY": "4",
                "DELIVERY_BATCH_SIZE": "20",
                "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",  # the test receivers listen on loopback
            }
            | self.extra_env
        )

    # -- the services

    def _add(
        self, name: str, argv: list[str], env: dict[str, str], http: bool, port: int | None = None
    ) -> Service:
        port = port or (free_port() if http else None)
        if port is not None:
            argv = [*argv, "--port", str(port)]
        service = Service(name, argv, env, self.tmp / f"{name}.log", port)
        self.services[name] = service
        return service

    def interviews_api(self, name: str = "interviews-api") -> Service:
        argv = ["-m", "services.cli", "serve", "interviews"]
        port = self.interviews_port if name == "interviews-api" else None
        return self._add(name, argv, self.interviews_env(), http=True, port=port)

    def relay(self) -> Service:
        return self._add("relay", ["-m", "services.cli", "relay"], self.interviews_env(), False)

    def projections_consumer(self) -> Service:
        argv = ["-m", "services.projections.entrypoints.worker"]
        return self._add("projections-consumer", argv, self.projections_env(), http=False)

    def projections_api(self, *, consumer: bool) -> Service:
        """``serve projections``: with ``consumer`` it also runs the Kafka consumer."""
        env = self.projections_env()
        if not consumer:
            env.pop("KAFKA_BOOTSTRAP_SERVERS")
        argv = ["-m", "services.cli", "serve", "projections"]
        return self._add("projections-api", argv, env, http=True)

    def notifications_consumer(self) -> Service:
        argv = ["-m", "services.notifications.entrypoints.worker", "--no-delivery"]
        return self._add("notifications-consumer", argv, self.notifications_env(), http=False)

    def delivery_worker(self) -> Service:
        argv = ["-m", "services.notifications.entrypoints.worker", "--no-consumer"]
        return self._add("delivery-worker", argv, self.notifications_env(), http=False)

    def notifications_api(self, *, workers: bool) -> Service:
        """``serve notifications``: with ``workers`` also its consumer and delivery worker."""
        env = self.notifications_env()
        if not workers:
            env.pop("KAFKA_BOOTSTRAP_SERVERS")
        argv = ["-m", "services.cli", "serve", "notifications"]
        return self._add("notifications-api", argv, env, http=True)

    def start(self) -> None:
        """Starts every service added so far (in parallel) and waits for the HTTP ones."""
        for service in self.services.values():
            if not service.alive():
                service.start()
        for service in self.services.values():
            service.wait_ready()

    def start_everything(self) -> dict[str, str]:
        """The interviews API, the relay, the projections API with its consumer and
        the notifications API with its workers, started; each API's base URL."""
        apis = {
            "interviews": self.interviews_api(),
            "projections": self.projections_api(consumer=True),
            "notifications": self.notifications_api(workers=True),
        }
        self.relay()
        self.start()
        return {name: service.url for name, service in apis.items()}

    def __getitem__(self, name: str) -> Service:
        return self.services[name]

    def server_errors(self) -> int:
        return sum(s.unhandled_errors() for s in self.services.values())

    def logs(self, lines: int = 40) -> str:
        return "\n".join(f"==== {s.name}\n{s.tail(lines)}" for s in self.services.values())

    def close(self) -> None:
        for service in self.services.values():
            service.stop()
        delete_topics(self.bootstrap, self.topic, f"{self.topic}.dlq")

    def __enter__(self) -> Platform:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if error is not None and not isinstance(error, KeyboardInterrupt):
            print(self.logs())
        self.close()


# ------------------------------------------------------------------ the load


@dataclass(frozen=True)
class Ack:
    """A command the API acknowledged (2xx)."""

    action: str
    interview_id: str
    version: int
    position: int
    status: str
    at: float


class CommandFailedError(AssertionError):
    pass


class HttpCommands:
    """A random mix of valid commands over HTTP from several threads.

    Every command carries an ``Idempotency-Key`` and is sent again with the same
    key until the API answers it: the API may be down, killed mid-request or
    without its database for a while. Each thread owns its interviews, so its
    commands are valid in the state it knows; any refusal is a finding.
    """

    TRANSIENT = (503,)

    def __init__(
        self,
        base_url: str | Callable[[], str],
        *,
        threads: int = 6,
        seed: int = 1,
        clients: int = 8,
        freelancers: int = 24,
        patience: float = 120.0,
        tag: str | None = None,
    ) -> None:
        self.base_url = base_url if callable(base_url) else (lambda: base_url)
        self.threads = threads
        self.seed = seed
        self.tag = tag or uuid.uuid4().hex[:6]
        self.clients = [f"client-{self.tag}-{i}" for i in range(clients)]
        self.freelancers = [f"freelancer-{self.tag}-{i}" for i in range(freelancers)]
        self.patience = patience
        self.acks: list[Ack] = []
        self.answers: Counter[int] = Counter()  # every HTTP status seen, retries included
        self.transport_errors = 0
        self.failures: list[str] = []
        self.sent = 0
        self.stopped = threading.Event()
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], dict[str, str]] = {}

    @property
    def users(self) -> list[str]:
        return self.clients + self.freelancers

    def headers(self, sub: str, role: str) -> dict[str, str]:
        key = (sub, role)
        if key not in self._tokens:
            self._tokens[key] = bearer(sub, role, ttl=6 * 3600)
        return self._tokens[key]

    # -- running

    def run(self, total: int, per_second: float | None = None) -> None:
        """Sends ``total`` commands (paced at ``per_second`` overall) and returns."""
        shares = [total // self.threads + (i < total % self.threads) for i in range(self.threads)]
        rate = per_second / self.threads if per_second else None
        workers = [
            threading.Thread(target=self._worker, args=(i, n, rate), daemon=True)
            for i, n in enumerate(shares)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    def in_background(self, total: int, per_second: float | None = None) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(total, per_second), daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.stopped.set()

    def acks_between(self, start: float, end: float) -> int:
        with self._lock:
            return sum(start <= a.at <= end for a in self.acks)

    def _worker(self, index: int, count: int, rate: float | None) -> None:
        rng = random.Random(self.seed * 1000 + index)
        state = _WorkerState(index, rng)
        started = time.monotonic()
        with httpx.Client(timeout=15) as client:
            for i in range(count):
                if self.stopped.is_set():
                    return
                if rate:
                    delay = started + i / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                try:
                    self._step(client, state)
                except CommandFailedError as error:
                    with self._lock:
                        self.failures.append(str(error))
                    if len(self.failures) > 20:
                        self.stopped.set()

    def _step(self, client: httpx.Client, s: _WorkerState) -> None:
        """One command, valid in the state this thread knows its interview is in.

        The walk covers DESIGN's whole table: offers from ``accepted`` or
        ``in_progress``, declined or withdrawn back to that state, and
        reschedules by either party of a started interview (open offer or not).
        """
        rng = s.rng
        if len(s.open) < 5 or rng.random() < 0.25:
            s.jobs += 1
            c, f = rng.choice(self.clients), rng.choice(self.freelancers)
            job = f"job-{self.tag}-{s.index}-{s.jobs}"
            self.register_job(client, job, c)
            body = {"job_id": job, "freelancer_id": f, "message": f"hello {f}"}
            ack = self.send(client, "invite", "/interviews", body, (c, "client"))
            s.open[ack.interview_id] = _Walk("invited", c, f)
            s.job_of[ack.interview_id] = job
            return
        interview_id = rng.choice(list(s.open))
        walk = s.open[interview_id]
        base = f"/interviews/{interview_id}"
        client_, freelancer = (walk.client, "client"), (walk.freelancer, "freelancer")
        state = walk.state
        roll = rng.random()
        if roll < 0.015:  # the client closes the job: its one interview is cancelled
            self.close_job(client, s.job_of[interview_id], walk.client)
            state = "closed"
        elif roll < 0.06:
            who = client_ if roll < 0.03 else freelancer
            self.send(client, "cancel", f"{base}/cancel", {"reason": "plans changed"}, who)
            state = "closed"
        elif state == "invited":
            if roll < 0.15:
                self.send(client, "decline", f"{base}/decline", {"reason": "busy"}, freelancer)
                state = "closed"
            else:
                self.send(client, "accept", f"{base}/accept", None, freelancer)
                state = "accepted"
        elif walk.started and state in ("in_progress", "offer_extended") and roll < 0.25:
            who = client_ if roll < 0.15 else freelancer
            walk.moves += 1
            body = {"scheduled_at": _meeting_time(walk.moves)}
            if roll < 0.1:
                body |= {"duration_minutes": rng.choice([15, 45, 90, 240]), "reason": "a clash"}
            self.send(client, "reschedule", f"{base}/reschedule", body, who)
        elif state == "accepted" and roll < 0.8:
            who = client_ if roll < 0.5 else freelancer
            body = {"scheduled_at": _meeting_time(0)} if roll < 0.3 else {}
            if roll < 0.15:
                body["duration_minutes"] = rng.choice([15, 30, 60, 120])
            self.send(client, "start", f"{base}/start", body, who)
            walk.started = True
            state = "in_progress"
        elif state in ("accepted", "in_progress"):
            terms = {"amount": str(rng.choice([500, 1200, 3000])), "currency": "EUR",
                     "rate_type": rng.choice(["fixed", "hourly"])}  # fmt: skip
            self.send(client, "offer", f"{base}/offer", terms, client_)
            walk.before_offer = state
            state = "offer_extended"
        elif state == "offer_extended":
            if roll < 0.4:
                body = {"reason": "too low"}
                self.send(client, "offer/decline", f"{base}/offer/decline", body, freelancer)
                state = walk.before_offer
            elif roll < 0.55:
                body = {"reason": "re-scoped"} if roll < 0.5 else {}
                self.send(client, "offer/withdraw", f"{base}/offer/withdraw", body, client_)
                state = walk.before_offer
            else:
                self.send(client, "offer/accept", f"{base}/offer/accept", None, freelancer)
                state = "closed"
        if state == "closed":
            del s.open[interview_id]
            s.job_of.pop(interview_id, None)
        else:
            walk.state = state

    def register_job(self, client: httpx.Client, job_id: str, client_id: str) -> None:
        """Registers the job as the marketplace's job service would (registering
        it again is a no-op, so a retry is safe)."""
        body = {"client_id": client_id}
        self._until_answered(client, "PUT", f"/jobs/{job_id}", body, service_headers())

    def close_job(self, client: httpx.Client, job_id: str, client_id: str) -> None:
        """The job's client closes it (closing again is a no-op, so a retry is safe).
        Not an :class:`Ack`: the answer names the job, not one interview's version;
        the invariants check what it recorded (and ``sent`` counts acknowledged
        kinds of command only)."""
        headers = self.headers(client_id, "client")
        self._until_answered(client, "POST", f"/jobs/{job_id}/close", {}, headers)

    def _until_answered(
        self,
        client: httpx.Client,
        method: str,
        path: str,
        body: dict[str, Any],
        headers: dict[str, str],
    ) -> httpx.Response:
        """Sends until a final answer, like :meth:`send`; anything but 2xx fails."""
        deadline = time.monotonic() + self.patience
        while True:
            if time.monotonic() > deadline:
                raise CommandFailedError(f"{method} {path}: no answer within {self.patience}s")
            try:
                response = client.request(
                    method, self.base_url() + path, json=body, headers=headers
                )
            except httpx.TransportError:
                with self._lock:
                    self.transport_errors += 1
                time.sleep(0.1)
                continue
            with self._lock:
                self.answers[response.status_code] += 1
            if response.status_code in self.TRANSIENT:
                time.sleep(0.2)
                continue
            if not 200 <= response.status_code < 300:
                raise CommandFailedError(
                    f"{method} {path}: {response.status_code} {response.text[:300]}"
                )
            return response

    def send(
        self,
        client: httpx.Client,
        action: str,
        path: str,
        body: dict[str, Any] | None,
        who: tuple[str, str],
    ) -> Ack:
        """POSTs until answered; returns the acknowledgement or raises CommandFailedError."""
        headers = self.headers(*who) | {"Idempotency-Key": uuid.uuid4().hex}
        deadline = time.monotonic() + self.patience
        with self._lock:
            self.sent += 1
        while True:
            if time.monotonic() > deadline:
                raise CommandFailedError(f"{action} {path}: no answer within {self.patience}s")
            try:
                response = client.post(self.base_url() + path, json=body, headers=headers)
            except httpx.TransportError:
                with self._lock:
                    self.transport_errors += 1
                time.sleep(0.1)
                continue
            with self._lock:
                self.answers[response.status_code] += 1
            if response.status_code in self.TRANSIENT:
                time.sleep(0.2)
                continue
            if response.status_code >= 300:
                raise CommandFailedError(
                    f"{action} {path} as {who}: {response.status_code} {response.text[:300]}"
                )
            answer = response.json()
            ack = Ack(
                action,
                answer["id"],
                answer["version"],
                answer["position"],
                answer["status"],
                time.monotonic(),
            )
            with self._lock:
                self.acks.append(ack)
            return ack


@dataclass
class _Walk:
    """What a load thread knows of one of its open interviews."""

    state: str
    client: str
    freelancer: str
    started: bool = False
    before_offer: str = "in_progress"  # the state an open offer returns to
    moves: int = 0  # reschedules so far: each picks a time no earlier one had


def _meeting_time(moves: int) -> str:
    """A meeting time in the coming weeks, a different one for every move."""
    day = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    return (day + timedelta(days=2 + moves % 40, minutes=15 * (moves // 40))).isoformat()


@dataclass
class _WorkerState:
    index: int
    rng: random.Random
    open: dict[str, _Walk] = field(default_factory=dict)
    job_of: dict[str, str] = field(default_factory=dict)  # interview -> its job (one each)
    jobs: int = 0


# ------------------------------------------------------------------ reading state


def store_envelopes(
    database_url: str, data_dir: Path, *, opened: bool = False
) -> list[EventEnvelope]:
    """Every interview event of the event store, as the relay would publish it (sealed
    texts sealed), or with ``opened`` as the views show them (in clear)."""
    from services.common.privacy import reveal
    from services.interviews.bootstrap import InterviewsContainer
    from services.interviews.feed import InterviewEventFeed
    from services.interviews.settings import InterviewsSettings

    container = InterviewsContainer(
        InterviewsSettings(database_url=database_url, data_dir=data_dir, auth_secret=TEST_SECRET)
    )
    try:
        feed = InterviewEventFeed(container.interviews())
        out: list[EventEnvelope] = []
        while batch := feed.read(out[-1].position if out else 0, 2000):
            out.extend(batch)
        if opened:
            keys = container.key_store()
            out = [e.model_copy(update={"data": reveal(e.type, e.data, keys)[0]}) for e in out]
        return out
    finally:
        container.close()


def read_topic(bootstrap: str, topic: str, timeout: float = 60) -> list[Any]:
    """Every message of ``topic`` up to its end offsets at the time of the call."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","),
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
    )
    try:
        partitions = None
        deadline = time.monotonic() + timeout
        while not partitions and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                time.sleep(0.2)
        assert partitions, f"topic {topic} has no partitions"
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        messages: list[Any] = []
        while any(consumer.position(tp) < end[tp] for tp in tps):
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for records in consumer.poll(timeout_ms=1000).values():
                messages.extend(records)
        return messages
    finally:
        consumer.close()


def delete_topics(bootstrap: str, *topics: str) -> None:
    from kafka import KafkaAdminClient

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), request_timeout_ms=10_000)
    except Exception:  # clean-up only (the broker may be down)
        return
    try:
        doomed = [t for t in topics if t in set(admin.list_topics())]
        if doomed:
            admin.delete_topics(doomed)
    except Exception:
        pass
    finally:
        admin.close()


class Db:
    """A small pooled engine for the test's own reads of a service's database."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(
            url.replace("postgresql://", "postgresql+psycopg://", 1),
            pool_size=2,
            pool_pre_ping=True,
            connect_args={"connect_timeout": 3},
        )

    def scalar(self, sql: str, **params: Any) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.text(sql), params).scalar() or 0)

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params).all())

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Db:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
