"""Whether two trees' relays put the same messages on Kafka:
``python -m bench.relay_identity OTHER_TREE [--events N]``.

Not a figure of ``make bench``: a check for changes to the relay's hot path. It
fills one PostgreSQL event store (``bench.relay``'s interviews, plus every kind
of interview event with awkward texts, half of them carrying a trace), relays it
with OTHER_TREE's code (e.g. ``git -C /work/main archive HEAD | tar -x -C DIR``)
and with this tree's, each in its own process and to its own topic, and compares
the topics: per partition, in order, each message's key, value and headers.
Exits 1 when they differ.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from .common import delete_topics, fresh_database, python
from .relay import _application, _fill

HERE = Path(__file__).resolve().parent.parent
Message = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.relay_identity")
    parser.add_argument("other_tree", type=Path)
    parser.add_argument("--events", type=int, default=4000)
    args = parser.parse_args(argv)
    admin_url = os.environ.get("DATABASE_URL")
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not admin_url or not bootstrap:
        raise SystemExit("DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS are needed")
    with fresh_database(admin_url, "relay_identity") as url, TemporaryDirectory() as tmp:
        container = _application(url, Path(tmp))
        try:
            app = container.interviews()
            _fill(app, args.events)
            extra = _every_kind_of_event(app)
        finally:
            container.close()
        total = args.events + extra
        topics = []
        for tree in (args.other_tree.resolve(), HERE):
            topic = f"bench.identity.{uuid.uuid4().hex[:8]}"
            topics.append(topic)
            subprocess.run(
                [python(), "-c", RELAY_ALL, url, topic, str(total)], cwd=tree, check=True
            )
        try:
            theirs, ours = (_messages(bootstrap, topic) for topic in topics)
        finally:
            delete_topics(bootstrap, topics + [f"{t}.dlq" for t in topics])
    count = sum(len(m) for m in ours.values())
    same = theirs == ours and count == total
    print(f"{count} of {total} messages; identical to {args.other_tree}: {same}")
    return 0 if same else 1


def _every_kind_of_event(app: Any) -> int:
    """Each kind of interview event, stored as recorded, half with a trace."""
    from services.interviews.domain.interview import TRACE_CONTEXT
    from tests.support.interview_domain import CLIENT, FREELANCER, T0, ctx, extend, invite

    interview = invite(message='Zoë says "hi" \\ / — 面试 😀')
    interview.accept(ctx(FREELANCER))
    extend(interview)
    interview.withdraw_offer(ctx(CLIENT), "re-scoped")
    interview.start(ctx(CLIENT), scheduled_at=T0 + timedelta(days=2), duration_minutes=60)
    interview.reschedule(ctx(FREELANCER), T0 + timedelta(days=3), 90, "a clash\tnow")
    extend(interview)
    interview.decline_offer(ctx(FREELANCER), "too low")
    extend(interview)
    interview.accept_offer(ctx(FREELANCER))
    declined = invite()
    declined.decline(ctx(FREELANCER), "busy")
    cancelled = invite()
    cancelled.cancel(ctx(CLIENT), "filled")
    events = [*interview.collect_events(), *declined.collect_events()]
    events += cancelled.collect_events()
    for i, event in enumerate(events):
        if i % 2:
            traceparent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
            object.__setattr__(event, TRACE_CONTEXT, traceparent)
    app.recorder.insert_events([app.mapper.to_stored_event(e) for e in events])
    return len(events)


def _messages(bootstrap: str, topic: str) -> dict[int, list[Message]]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        ends = consumer.end_offsets(partitions)
        got: dict[int, list[Message]] = {tp.partition: [] for tp in partitions}
        while any(len(got[tp.partition]) < ends[tp] for tp in partitions):
            for tp, records in consumer.poll(1000).items():
                got[tp.partition] += [(r.key, r.value, list(r.headers)) for r in records]
        return got
    finally:
        consumer.close()


# Run by each tree's Python (``-c``, in the tree: its own ``services`` and ``bench``).
RELAY_ALL = """
import os, sys, time
from pathlib import Path
from tempfile import TemporaryDirectory
from bench.relay import _application, relay_process

url, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
with TemporaryDirectory() as tmp:
    container = _application(url, Path(tmp))
    try:
        process = relay_process(
            container.interviews(), url, Path(tmp), os.environ["KAFKA_BOOTSTRAP_SERVERS"], topic
        )
        process.start()
        deadline = time.monotonic() + 120
        while process.relay.stats.published < count and time.monotonic() < deadline:
            time.sleep(0.01)
        process.stop()
    finally:
        container.close()
"""


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
