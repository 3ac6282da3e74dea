"""The cost of sealing personal text (issue 17): command rate with encryption
against the same run without it.

One interviews application on a fresh PostgreSQL database, 16 threads running
the hiring flow through its use cases (every invitation and offer carries a
message, declines and cancellations a reason). Windows alternate: sealing off
(no key issuer: text recorded as written), then on (each author's data key,
AES-256-GCM), so both see the same database size and machine load. Goal: the
sealed rate is at least 95% of the plain one (a cost of at most 5%).
"""

from __future__ import annotations

import os
import random
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from services.interviews.adapters.key_encryption import encode_kek
from services.interviews.bootstrap import InterviewsContainer
from services.interviews.domain import Actor, CommandContext, DomainError
from services.interviews.settings import InterviewsSettings

from .common import Context, figure, fresh_database, print_figure

THREADS = 16
WARMUP = 2.0


def run(ctx: Context) -> list[dict[str, Any]]:
    admin_url = ctx.require_database()
    print(
        f"  ({THREADS} threads on the application, {ctx.repetitions * 3} x (plain, sealed) "
        f"windows of {ctx.seconds / 2:.1f}s)",
        flush=True,
    )
    with fresh_database(admin_url) as url, tempfile.TemporaryDirectory() as tmp:
        # Many short alternating windows: on a shared machine the load drifts
        # between windows by more than the cost measured.
        plain, sealed, cpu = sealing_rates(url, Path(tmp), ctx.seconds / 2, ctx.repetitions * 3)
    base = figure("commands_plain_text_pg", plain, "commands/s")
    print_figure(base)
    cost = figure(
        "commands_sealed_text_pg",
        sealed,
        "commands/s",
        baseline=base["name"],
        baseline_value=base["value"],
        goal=0.95,
        goal_text="≥ 95% of the same run without encryption",
    )
    print_figure(cost)
    # This process's CPU per command: steadier than a rate on a shared machine.
    cpu_plain = figure("cpu_per_command_plain_text", cpu[0], "ms")
    cpu_sealed = figure(
        "cpu_per_command_sealed_text",
        cpu[1],
        "ms",
        baseline=cpu_plain["name"],
        baseline_value=cpu_plain["value"],
        goal=1.05,
        higher_is_better=False,
        goal_text="≤ 105% of the same run without encryption",
    )
    print_figure(cpu_plain)
    print_figure(cpu_sealed)
    return [base, cost, cpu_plain, cpu_sealed]


def sealing_rates(
    url: str, tmp: Path, seconds: float, windows: int
) -> tuple[list[float], list[float], tuple[list[float], list[float]]]:
    """Commands per second in alternating windows without and with sealing, and
    this process's CPU milliseconds per command in each."""
    container = InterviewsContainer(
        InterviewsSettings(
            database_url=url,
            data_dir=tmp,
            auth_secret="bench" * 8,
            key_encryption_key=encode_kek(os.urandom(32)),
        )
    )
    try:
        app = container.interviews()
        keys = app.keys
        counter = [0]
        lock = threading.Lock()
        stop = threading.Event()
        threads = [
            threading.Thread(target=_flow, args=(app, k, counter, lock, stop), daemon=True)
            for k in range(THREADS)
        ]
        app.keys = None
        for t in threads:
            t.start()
        time.sleep(WARMUP)
        plain: list[float] = []
        sealed: list[float] = []
        cpu: dict[int, list[float]] = {id(plain): [], id(sealed): []}
        for i in range(windows):
            pair = ((None, plain), (keys, sealed))
            for issuer, rates in pair if i % 2 == 0 else pair[::-1]:
                app.keys = issuer
                with lock:
                    start, t0, c0 = counter[0], time.monotonic(), time.process_time()
                time.sleep(seconds)
                with lock:
                    done, t1, c1 = counter[0], time.monotonic(), time.process_time()
                rates.append((done - start) / (t1 - t0))
                cpu[id(rates)].append((c1 - c0) * 1000 / max(done - start, 1))
        stop.set()
        for t in threads:
            t.join(30)
        return plain, sealed, (cpu[id(plain)], cpu[id(sealed)])
    finally:
        container.close()


def _flow(
    app: Any, k: int, counter: list[int], lock: threading.Lock, stop: threading.Event
) -> None:
    """The hiring flow of bench.commands, on the use cases, until ``stop``."""
    rng = random.Random(k)
    client = Actor(f"bench-client-{k}", "client")
    service = Actor("bench-jobs", "service")
    run_id = uuid.uuid4().hex[:6]
    n = 0
    offer: dict[str, Any] = {"amount": Decimal("1200.00"), "currency": "EUR", "rate_type": "fixed"}

    def ctx(actor: Actor) -> CommandContext:
        return CommandContext(actor, datetime.now(UTC), "bench", "bench")

    def did(commands: int = 1) -> None:
        with lock:
            counter[0] += commands

    while not stop.is_set():
        n += 1
        freelancer = Actor(f"bench-fl-{k}-{n % 25}", "freelancer")
        job = f"job-{run_id}-{k}-{n}"
        try:
            app.register_job(ctx(service), job, client.id)
            iid = app.invite(
                ctx(client),
                job_id=job,
                freelancer_id=freelancer.id,
                message="We liked your profile; shall we talk about the job?",
            ).id
            did(2)
            x = rng.random()
            if x < 0.1:
                app.decline(ctx(freelancer), iid, "not available")
                did()
                continue
            if x < 0.2:
                app.cancel(ctx(client), iid, "position filled")
                did()
                continue
            app.accept(ctx(freelancer), iid)
            did()
            if x < 0.8:
                app.start(ctx(client), iid, datetime.now(UTC) + timedelta(days=30))
                did()
            app.extend_offer(ctx(client), iid, **offer, message="Welcome aboard, we hope")
            did()
            if x >= 0.8:
                app.decline_offer(ctx(freelancer), iid, "too low")
                app.extend_offer(ctx(client), iid, **{**offer, "amount": Decimal("1500.00")})
                did(2)
            app.accept_offer(ctx(freelancer), iid)
            did()
        except DomainError:
            continue  # a flow cut short by a deadline: start the next one
