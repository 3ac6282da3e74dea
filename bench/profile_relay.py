"""Where the relay's CPU goes: ``python -m bench.profile_relay``.

Not a figure of ``make bench``: a tool for the relay. It fills a fresh
PostgreSQL event store as ``bench.relay`` does (N interview events with the
jobs' events between them), then publishes them with ``RelayProcess`` to a
fresh topic while py-spy samples this process (``--gil``: the threads holding
the GIL, so the CPU picture of the relay thread, its prefetching reader and
kafka-python's sender thread together). Prints the publish rate and the
functions with the largest inclusive and exclusive shares of the samples.
``--threads`` splits the samples by thread; ``--raw`` measures B4's CPU per event
first; ``--tracing`` installs the tracer provider as ``interviewctl relay`` does
(a producer span per event; the bench itself runs without one).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from .common import delete_topics, fresh_database, python
from .profile_commands import print_samples
from .relay import PARTITIONS, _application, _fill, relay_process


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_relay")
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--py-spy", metavar="FILE", help="collapsed stacks to FILE")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--threads", action="store_true", help="one table per thread")
    parser.add_argument(
        "--raw", action="store_true", help="first the raw producer (B4) on the same messages"
    )
    parser.add_argument(
        "--tracing",
        action="store_true",
        help="with the tracer provider `interviewctl relay` sets up",
    )
    args = parser.parse_args(argv)
    admin_url = os.environ.get("DATABASE_URL")
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not admin_url or not bootstrap:
        raise SystemExit("DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS are needed")

    if args.tracing:
        from services.common.tracing import setup_tracing

        setup_tracing("relay")
    topic = f"bench.profile.{uuid.uuid4().hex[:8]}"
    with fresh_database(admin_url, "profile_relay") as url, TemporaryDirectory() as tmp:
        container = _application(url, Path(tmp))
        try:
            app = container.interviews()
            _fill(app, args.events)
            process = relay_process(app, url, Path(tmp), bootstrap, topic)
            if args.raw:
                raw_cpu_per_event(app, bootstrap, topic + ".raw")
            spy = None
            if args.py_spy:
                spy = subprocess.Popen(
                    [str(Path(python()).with_name("py-spy")), "record", "--gil", "--function",
                     "--format", "raw", "--rate", "250", "--pid", str(os.getpid()),
                     "--output", args.py_spy, *(["--threads"] if args.threads else [])],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                time.sleep(1.0)  # py-spy attaches
            cpu = time.process_time()
            started = time.perf_counter()
            process.start()
            while process.relay.stats.published < args.events:
                time.sleep(0.002)
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu
            if spy is not None:
                spy.send_signal(2)  # SIGINT: py-spy writes what it has
                spy.wait(30)
            process.stop()
        finally:
            container.close()
            delete_topics(bootstrap, [topic, f"{topic}.dlq", f"{topic}.raw"])
    print(
        f"{args.events / elapsed:,.0f} events/s, process CPU {cpu * 1e6 / args.events:.0f} µs"
        f" per event ({elapsed:.2f} s)",
        flush=True,
    )
    if args.py_spy:
        print_samples(Path(args.py_spy), args.top)
    return 0


def raw_cpu_per_event(app: Any, bootstrap: str, topic: str) -> None:
    """B4 of ``bench.relay`` on the same events: a plain producer sending them."""
    from kafka import KafkaProducer

    from services.common.kafka import ensure_topics, producer_settings
    from services.interviews.adapters.kafka_publisher import headers_for
    from services.interviews.feed import InterviewEventFeed

    feed = InterviewEventFeed(app)
    messages = []
    after = 0
    while batch := feed.read(after, 5000):
        after = batch[-1].position
        messages += [(str(e.interview_id).encode(), e.to_bytes(), headers_for(e)) for e in batch]
    ensure_topics(bootstrap, {topic: (PARTITIONS, {})})
    cpu = time.process_time()
    started = time.perf_counter()
    producer = KafkaProducer(**producer_settings(bootstrap, client_id="bench-raw"))
    for key, value, headers in messages:
        producer.send(topic, key=key, value=value, headers=headers)
    producer.flush()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    producer.close()
    print(
        f"raw producer: {len(messages) / elapsed:,.0f} events/s, process CPU"
        f" {cpu * 1e6 / len(messages):.0f} µs per event",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
