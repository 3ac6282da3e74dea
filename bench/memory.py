"""Resident memory of each service after a run (issue 8): goal ≤ 200 MB.

The whole system is deployed as in production, each service its own process
on PostgreSQL (fresh databases) and Kafka (a fresh topic): ``interviewctl
serve interviews --workers N``, ``interviewctl relay``, ``interviewctl serve
projections`` (API and consumer) and ``interviewctl serve notifications``
(API, consumer and delivery worker). The hiring flow is driven through the
interviews API by 16 clients for the usual repetition windows; after each
window, and once more when the projections have caught up, the resident set
(VmRSS) of every process is read. A service's figure is its largest process
after the run (the goal applies per process); for a service with several
worker processes the total is reported too. The spread is over the samples.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from .common import (
    ROOT,
    Context,
    delete_topics,
    figure,
    free_port,
    fresh_database,
    print_figure,
    python,
    rss_mb,
    service_bearer,
    stop_process,
    wait_ready,
)
from .loadgen import Connection, run_load

GOAL_MB = 200.0
CLIENTS = 16


def run(ctx: Context) -> list[dict[str, Any]]:
    admin_url = ctx.require_database()
    bootstrap = ctx.require_kafka()
    from services.common.auth import mint_token

    secret = secrets.token_urlsafe(32)
    topic = f"bench.memory.{uuid.uuid4().hex[:8]}"
    samples: dict[str, list[list[float]]] = {}
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        stack.callback(delete_topics, bootstrap, [topic, f"{topic}.dlq"])
        events_url = stack.enter_context(fresh_database(admin_url, "bench_mem_events"))
        views_url = stack.enter_context(fresh_database(admin_url, "bench_mem_views"))
        inbox_url = stack.enter_context(fresh_database(admin_url, "bench_mem_inbox"))
        env = {
            "DATABASE_URL": events_url,
            "PROJECTIONS_DATABASE_URL": views_url,
            "NOTIFICATIONS_DATABASE_URL": inbox_url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "EVENTS_TOPIC": topic,
            "PROJECTIONS_CONSUMER_GROUP": f"bench-mem-{uuid.uuid4().hex[:8]}",
            "NOTIFICATIONS_CONSUMER_GROUP": f"bench-mem-{uuid.uuid4().hex[:8]}",
            "AUTH_SECRET": secret,
            "DATA_DIR": str(tmp),
            "LOG_LEVEL": "WARNING",
            "RELAY_METRICS_PORT": "0",
        }
        ports = {name: free_port() for name in ("interviews", "projections", "notifications")}
        # The consumers open the events' sealed texts through the interviews API's key API.
        env["KEY_SERVICE_URL"] = f"http://127.0.0.1:{ports['interviews']}"
        services = {
            "interviews": (
                ["serve", "interviews", "--port", str(ports["interviews"])]
                + ["--workers", str(ctx.workers)],
                {"KAFKA_BOOTSTRAP_SERVERS": ""},
            ),
            "relay": (["relay"], {}),
            "projections": (["serve", "projections", "--port", str(ports["projections"])], {}),
            "notifications": (
                ["serve", "notifications", "--port", str(ports["notifications"])],
                {},
            ),
        }
        procs: dict[str, subprocess.Popen[bytes]] = {}
        for name, (args, extra) in services.items():
            log = stack.enter_context(open(tmp / f"{name}.log", "wb"))
            procs[name] = subprocess.Popen(
                [python(), "-m", "services.cli", *args],
                env=os.environ | env | extra,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            stack.callback(stop_process, procs[name])
        for name, port in ports.items():
            wait_ready(port, procs[name], tmp / f"{name}.log")

        def bearer(sub: str, role: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {mint_token(secret, sub, role, 3600)}"}

        clients = [bearer(f"mem-client-{k}", "client") for k in range(CLIENTS)]
        freelancers = [bearer(f"mem-freelancer-{k}", "freelancer") for k in range(CLIENTS)]
        offer = {"amount": "1200.00", "currency": "EUR", "rate_type": "fixed"}
        run_id = uuid.uuid4().hex[:6]
        last_position = [0]

        service = service_bearer(secret)

        async def hiring(conn: Connection, k: int, n: int) -> None:
            job = f"mem-{run_id}-{k}-{n}"
            await conn.call("PUT", f"/jobs/{job}", {"client_id": f"mem-client-{k}"}, service)
            invited = await conn.call(
                "POST",
                "/interviews",
                {"job_id": job, "freelancer_id": f"mem-freelancer-{k}"},
                clients[k],
            )
            base = f"/interviews/{invited['id']}"
            await conn.call("POST", base + "/accept", None, freelancers[k])
            await conn.call("POST", base + "/offer", offer, clients[k])
            answer = await conn.call("POST", base + "/offer/accept", None, freelancers[k])
            last_position[0] = max(last_position[0], answer["position"])

        def sample() -> None:
            for name, proc in procs.items():
                samples.setdefault(name, []).append(rss_mb(proc.pid))

        for _ in range(ctx.repetitions):
            run_load("127.0.0.1", ports["interviews"], CLIENTS, hiring, 0, ctx.seconds, 1)
            sample()
        caught_up = _wait_for_views(ports["projections"], last_position[0], bearer("mem", "admin"))
        print(
            f"  (projections {'caught up with' if caught_up else 'still behind'} position "
            f"{last_position[0]:,}; RSS read after each of {ctx.repetitions} windows and after)",
            flush=True,
        )
        time.sleep(1.0)  # the notifications consumer, a little behind the projections
        sample()

    figures: list[dict[str, Any]] = []
    for name, series in samples.items():
        largest = [max(s) if s else 0.0 for s in series]
        f = figure(
            f"rss_{name}",
            largest,
            "MB",
            goal=GOAL_MB,
            higher_is_better=False,
            goal_text=f"≤ {GOAL_MB:g} MB per process",
            value=largest[-1],
        )
        print_figure(f)
        figures.append(f)
        if max(len(s) for s in series) > 1:
            totals = [sum(s) for s in series]
            f = figure(f"rss_{name}_all_processes", totals, "MB", value=totals[-1])
            print_figure(f)
            figures.append(f)
    return figures


def _wait_for_views(port: int, position: int, headers: dict[str, str]) -> bool:
    """Until the projections have applied ``position`` (their min_position wait)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/views/stats?min_position={position}", headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as r:
                if r.status == 200:
                    return True
        except (urllib.error.HTTPError, OSError):
            time.sleep(0.5)
    return False
