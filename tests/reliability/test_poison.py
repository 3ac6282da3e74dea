"""Poison on the topic: messages that are not events we know, between valid events,
read by both consumers running as their own processes. Each poison message lands
in the dead-letter topic (original bytes, error headers) once per consumer group,
and both consumers keep going: every valid event before and after takes effect.

One of them is a 1 MiB value. Kafka's default limit per message is about 1 MB
(``message.max.bytes`` 1,048,588), so the topic here is configured, as an
operator would, to take up to 2 MiB; the dead-letter topic must then take it too.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any

import pytest

from services.common.kafka import UNLIMITED_RETENTION, ensure_topics, producer_settings
from services.contracts import EventEnvelope
from tests.support.notifications import OFFER, Interview
from tests.support.waiting import holds_within

from .harness import TALLY, Db, Platform, read_topic

pytestmark = [pytest.mark.reliability, pytest.mark.kafka]

TOPIC_MAX_BYTES = 2 * 1024 * 1024
BIG = 1024 * 1024


def poison_messages(template: EventEnvelope) -> dict[str, bytes | None]:
    """Messages no consumer may apply, by what is wrong with them."""
    good: dict[str, Any] = json.loads(template.to_bytes())

    def variant(**changes: Any) -> bytes:
        body = {**good, "id": str(uuid.uuid4())}
        for key, value in changes.items():
            if value is None:
                body.pop(key, None)
            else:
                body[key] = value
        return json.dumps(body).encode()

    return {
        "not JSON": b"\xff\xfe<definitely not json>",
        "invalid UTF-8 in a JSON string": b'{"id": "\xc3\x28"}',
        "JSON, not an object": b"[1, 2, 3]",
        "empty": b"",
        "null (a tombstone)": None,
        "wrong types": variant(version="two", position={"at": 1}, occurred_at=12),
        "unknown event type": variant(type="interview.teleported"),
        "future schema_version": variant(schema_version=99),
        "schema_version not a number": variant(schema_version="1"),
        "missing interview_id": variant(interview_id=None),
        "missing data": variant(data=None),
        "data not valid for its type": variant(
            type="interview.offer_extended", data={"amount": "lots", "currency": "euro"}
        ),
        "unknown field": variant(sneaky="field"),
        "1 MiB value": variant(padding="x" * BIG),
    }


def test_poison_messages_go_to_the_dlq_once_per_group_and_the_consumers_keep_going(
    platform: Platform,
) -> None:
    from kafka import KafkaProducer

    topic = platform.topic
    # As an operator would for big messages: the topic (created by the platform with
    # the broker's default limit) accepts up to 2 MiB per message.
    _set_topic_config(platform.bootstrap, topic, {"max.message.bytes": str(TOPIC_MAX_BYTES)})
    projections = platform.projections_consumer()
    notifications = platform.notifications_consumer()
    views = platform.projections_api(consumer=False)

    first, second = Interview("job-p1", "c-p1", "f-p1"), Interview("job-p2", "c-p2", "f-p2")
    before = [
        first.event("interview.invited", "client", position=1),
        second.event("interview.invited", "client", position=2),
        first.event("interview.accepted", "freelancer", position=3),
    ]
    after = [
        second.event("interview.accepted", "freelancer", position=4),
        first.event("interview.started", "client", position=5),
        first.event("interview.offer_extended", "client", OFFER, position=6),
        second.event("interview.cancelled", "client",
                     {"reason": "filled", "cancelled_by": "client"}, position=7),
        first.event("interview.offer_accepted", "freelancer", position=8),
    ]  # fmt: skip
    poison = poison_messages(before[0])
    producer = KafkaProducer(
        **producer_settings(platform.bootstrap, client_id="poisoner", linger_ms=0)
        | {"max_request_size": TOPIC_MAX_BYTES}
    )
    try:
        platform.start()

        def send(key: bytes, value: bytes | None) -> None:
            producer.send(topic, key=key, value=value).get(timeout=30)

        for event in before:
            send(str(event.interview_id).encode(), event.to_bytes())
        for kind, value in poison.items():
            # Half on the partitions of the valid interviews, so they sit between them.
            owner = (first if len(kind) % 2 else second).id
            send(str(owner).encode(), value)
        for event in after:
            send(str(event.interview_id).encode(), event.to_bytes())

        valid = before + after
        groups = (
            (platform.views_db, platform.projections_group),
            (platform.notifications_db, platform.notifications_group),
        )
        processed = 'SELECT count(*) FROM processed_events WHERE "group" = :g'
        for url, group in groups:
            with Db(url) as db:
                assert holds_within(lambda db=db, g=group: db.scalar(processed, g=g) >= len(valid),
                                  90, 0.3), f"{group} stopped at a poison message"  # fmt: skip
                assert db.scalar(processed, g=group) == len(valid)
                parked = 'SELECT count(*) FROM parked_events WHERE "group" = :g'
                assert db.scalar(parked, g=group) == 0

        dead = read_topic(platform.bootstrap, f"{topic}.dlq")
        per_group = Counter(dict(m.headers)["group"].decode() for m in dead)
        TALLY.add(bad_inputs=len(poison))
        lost = sum(max(len(poison) - per_group[g], 0) for _, g in groups)
        twice = sum(max(per_group[g] - len(poison), 0) for _, g in groups)
        TALLY.add(lost=lost, duplicates=twice)
        assert per_group == {g: len(poison) for _, g in groups}, per_group
        originals = Counter(v for v in poison.values())
        for group in (g for _, g in groups):
            got = Counter(m.value for m in dead if dict(m.headers)["group"] == group.encode())
            assert got == originals, f"{group}: the DLQ does not hold the original bytes"
        for message in dead:
            headers = dict(message.headers)
            assert headers["error"] and headers["source_topic"] == topic.encode()
            assert int(headers["source_offset"]) >= 0

        # Still consuming: the views show the valid events' outcome, nothing else.
        import httpx

        from .harness import bearer

        auditor = bearer("auditor-poison", "auditor")
        listed = httpx.get(f"{views.url}/views/interviews", headers=auditor).json()["items"]
        assert {(i["id"], i["status"], i["version"]) for i in listed} == {
            (str(first.id), "hired", 5),
            (str(second.id), "cancelled", 3),
        }
        assert projections.alive() and notifications.alive()
        errors = platform.server_errors()
        TALLY.add(server_errors=errors)
        assert errors == 0
    finally:
        producer.close(timeout=5)


def _set_topic_config(bootstrap: str, topic: str, configs: dict[str, str]) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    ensure_topics(bootstrap, {topic: (6, UNLIMITED_RETENTION)})
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs=UNLIMITED_RETENTION | configs)]
        )
    finally:
        admin.close()
