"""After the faults: what the suite checks about the whole system, counted (for the
summary line) before it is asserted.

- every acknowledged command is in the event store, at the acknowledged position;
- the set of event ids on the topic is the set in the store (republished copies allowed);
- every view equals an independent fold of the store's events;
- every notification rule fired exactly once per recipient, and every webhook
  delivery arrived (re-sends carry the same notification id);
- no accepted command's event was parked by a consumer, dead-lettered or
  isolated by the deadline scheduler ("poison accepted").
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from services.contracts import EventEnvelope
from services.notifications.rules import drafts_for_event
from tests.support.projections_reference import (
    all_interviews,
    assert_views_equal_reference,
    normalize_api_interview,
    reference_interviews,
    without,
)
from tests.support.waiting import holds_within

from .harness import TALLY, Ack, Db, Platform, bearer, read_topic, store_envelopes

AUDITOR = ("auditor-reliability", "auditor")


@dataclass
class Findings:
    """Counts per check; ``lost`` and ``duplicates`` feed the summary line."""

    lost: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    facts: dict[str, Any] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    poison_accepted: int = 0

    def note(self, text: str) -> None:
        if len(self.examples) < 20:
            self.examples.append(text)

    def record(self) -> None:
        TALLY.add(
            lost=sum(self.lost.values()),
            duplicates=sum(self.duplicates.values()),
            poison_accepted=self.poison_accepted,
        )

    def assert_clean(self) -> None:
        assert not +self.lost and not +self.duplicates and not self.poison_accepted, (
            f"lost {dict(+self.lost)}, duplicated {dict(+self.duplicates)}, poison accepted "
            f"{self.poison_accepted}, facts "
            f"{self.facts}, e.g.\n" + "\n".join(self.examples)
        )


# ------------------------------------------------------------------ store and topic


def check_acknowledged(store: list[EventEnvelope], acks: Iterable[Ack], found: Findings) -> None:
    """Every 2xx answer names an event that is in the store at that position."""
    positions = {(str(e.interview_id), e.version): e.position for e in store}
    n = 0
    for ack in acks:
        n += 1
        if positions.get((ack.interview_id, ack.version)) != ack.position:
            found.lost["acknowledged command not in the store"] += 1
            found.note(f"acknowledged {ack} not in the store")
    found.facts["acknowledged"] = n


def relay_caught_up(platform: Platform, store: list[EventEnvelope], timeout: float) -> bool:
    if not store:
        return True
    head = max(e.position for e in store)
    with Db(platform.interviews_db) as db:
        return holds_within(
            lambda: (
                db.scalar(
                    "SELECT coalesce(max(position), 0) FROM relay_position WHERE topic = :t",
                    t=platform.topic,
                )
                >= head
            ),
            timeout,
            0.2,
        )


def check_topic(platform: Platform, store: list[EventEnvelope], found: Findings) -> None:
    """The topic carries every event of the store (and nothing else)."""
    caught_up = relay_caught_up(platform, store, 120)
    found.facts["relay caught up"] = caught_up
    on_topic: Counter[str] = Counter()
    for message in read_topic(platform.bootstrap, platform.topic):
        try:
            on_topic[json.loads(message.value)["id"]] += 1
        except (ValueError, KeyError, TypeError):
            on_topic["<undecodable>"] += 1
    in_store = {str(e.id) for e in store}
    missing = in_store - set(on_topic)
    phantom = set(on_topic) - in_store
    found.lost["event in the store but not on the topic"] += len(missing)
    found.duplicates["event on the topic but not in the store"] += len(phantom)
    found.facts["events in the store"] = len(in_store)
    found.facts["messages on the topic"] = sum(on_topic.values())
    found.facts["republished by the relay"] = sum(on_topic.values()) - len(on_topic)
    for event_id in sorted(missing)[:5]:
        found.note(f"event {event_id} never reached the topic")


# ------------------------------------------------------------------ views


def compare_views(api: httpx.Client, store: list[EventEnvelope], found: Findings | None) -> int:
    """Interviews whose view differs from the fold of the store (0 = all equal)."""
    expected = reference_interviews(store)
    listed = {i["id"]: i for i in all_interviews(api, bearer(*AUDITOR))}
    wrong = 0
    for interview_id, want in expected.items():
        want = without(want, "timeline", "created_position")
        got = listed.get(interview_id)
        view = normalize_api_interview(got, None) if got is not None else None
        if view == want:
            continue
        wrong += 1
        if found is None:
            continue
        behind = want["version"] - (view["version"] if view else 0)
        if behind > 0:
            found.lost["event missing from the views"] += behind
        else:
            found.duplicates["view differs from the fold of the store"] += 1
        found.note(f"view of {interview_id}: {view} != fold {want}")
    phantom = set(listed) - set(expected)
    wrong += len(phantom)
    if found is not None:
        found.duplicates["interview in the views but not in the store"] += len(phantom)
    return wrong


def check_views(
    platform: Platform, api_url: str, store: list[EventEnvelope], found: Findings
) -> None:
    """Waits (bounded) until the views equal the fold of the store, then compares
    everything: summaries, timelines, statistics and candidate boards."""
    with Db(platform.views_db) as db:
        applied = holds_within(
            lambda: (
                db.scalar(
                    'SELECT count(*) FROM processed_events WHERE "group" = :g',
                    g=platform.projections_group,
                )
                >= len(store)
            ),
            120,
            0.3,
        )
        parked = db.scalar('SELECT count(*) FROM parked_events WHERE "group" = :g',
                           g=platform.projections_group)  # fmt: skip
    found.facts["projections parked"] = parked
    found.lost["event parked by the projections consumer"] += parked
    with httpx.Client(base_url=api_url, timeout=30) as api:
        patience = 60 if applied else 5
        converged = holds_within(lambda: compare_views(api, store, None) == 0, patience, 1)
        compare_views(api, store, found)
        if converged:
            assert_views_equal(api, store, details=80)


def assert_views_equal(api: httpx.Client, store: list[EventEnvelope], details: int) -> None:
    """Everything the views show equals the fold of the store: the list (in order),
    timelines, statistics and candidate boards (the projections tests' own check)."""
    assert_views_equal_reference(api, bearer, store, details=details, boards=10)


# ------------------------------------------------------------------ notifications


def check_notifications(
    platform: Platform,
    store: list[EventEnvelope],
    found: Findings,
    *,
    webhook_users: set[str],
    webhook_calls: list[Any] | None = None,
) -> None:
    """Each rule once per recipient in the inbox; each delivery made and arrived."""
    expected = {
        (str(d.id), str(d.event_id), d.recipient_id) for e in store for d in drafts_for_event(e)
    }
    with Db(platform.notifications_db) as db:
        group = platform.notifications_group
        holds_within(
            lambda: (
                db.scalar('SELECT count(*) FROM processed_events WHERE "group" = :g', g=group)
                >= len(store)
            ),
            120,
            0.3,
        )
        parked = db.scalar('SELECT count(*) FROM parked_events WHERE "group" = :g', g=group)
        found.lost["event parked by the notifications consumer"] += parked
        wanted_deliveries = {n for n, _, user in expected if user in webhook_users}
        holds_within(
            lambda: (
                db.scalar("SELECT count(*) FROM notification_deliveries WHERE status = 'delivered'")
                >= len(wanted_deliveries)
            ),
            120,
            0.3,
        )
        inbox = db.rows("SELECT id, event_id, recipient_id FROM notifications")
        deliveries = db.rows(
            "SELECT notification_id, webhook_id, status FROM notification_deliveries"
        )
    per_rule = Counter((r.event_id, r.recipient_id) for r in inbox)
    found.duplicates["notification recorded twice"] += sum(n - 1 for n in per_rule.values())
    got = {(r.id, r.event_id, r.recipient_id) for r in inbox}
    found.lost["notification never recorded"] += len(expected - got)
    found.duplicates["notification without a rule"] += len(got - expected)
    for item in sorted(expected - got)[:5]:
        found.note(f"notification {item} never recorded")
    found.facts["notifications"] = len(inbox)

    per_delivery = Counter((r.notification_id, r.webhook_id) for r in deliveries)
    found.duplicates["delivery recorded twice"] += sum(n - 1 for n in per_delivery.values())
    delivered = {r.notification_id for r in deliveries if r.status == "delivered"}
    found.lost["webhook delivery not delivered"] += len(wanted_deliveries - delivered)
    found.facts["deliveries"] = len(deliveries)
    if webhook_calls is not None:
        received = Counter(call.headers.get("X-Notification-Id") for call in webhook_calls)
        found.lost["webhook call never received"] += len(wanted_deliveries - set(received))
        found.duplicates["webhook call for no delivery"] += len(set(received) - wanted_deliveries)
        # At least once: a worker killed between sending and recording sends again,
        # with the same X-Notification-Id, so the receiver can tell.
        found.facts["webhook re-sends (same id)"] = sum(received.values()) - len(received)


# ------------------------------------------------------------------ poison accepted


def _rows_if_any(url: str, sql: str, **params: Any) -> list[Any]:
    """The rows, or none if the table was never created (that worker never ran)."""
    with Db(url) as db:
        try:
            return db.rows(sql, **params)
        except sa.exc.ProgrammingError:
            return []


def check_poison_accepted(
    platform: Platform, store: list[EventEnvelope], acks: Iterable[Ack] | None, found: Findings
) -> None:
    """Accepted commands whose events a worker could not take: parked by either
    consumer, on the dead-letter topic, or a deadline the scheduler isolated.
    ``acks`` None: every event of the store came from an accepted command."""
    if acks is None:
        accepted = {(str(e.interview_id), e.version) for e in store}
    else:
        accepted = {(a.interview_id, a.version) for a in acks}
    taken_badly: set[tuple[str, int]] = set()
    for url, group in (
        (platform.views_db, platform.projections_group),
        (platform.notifications_db, platform.notifications_group),
    ):
        parked = _rows_if_any(
            url, 'SELECT interview_id, version FROM parked_events WHERE "group" = :g', g=group
        )
        taken_badly |= {(str(r.interview_id), int(r.version)) for r in parked}
    isolated = _rows_if_any(
        platform.interviews_db, "SELECT interview_id, version FROM isolated_deadlines"
    )
    taken_badly |= {(str(r.interview_id), int(r.version)) for r in isolated}
    by_id = {str(e.id): (str(e.interview_id), e.version) for e in store}
    try:
        dead = read_topic(platform.bootstrap, f"{platform.topic}.dlq", timeout=5)
    except AssertionError:  # no dead-letter topic: no consumer ever dead-lettered
        dead = []
    for message in dead:
        try:
            event = by_id.get(json.loads(message.value)["id"])
        except (ValueError, KeyError, TypeError):
            continue
        if event is not None:
            taken_badly.add(event)
    poisoned = accepted & taken_badly
    found.poison_accepted = len(poisoned)
    found.facts["poison accepted"] = len(poisoned)
    for interview_id, version in sorted(poisoned)[:5]:
        found.note(
            f"accepted event {interview_id} v{version} was parked, dead-lettered or isolated"
        )


def check_everything(
    platform: Platform,
    acks: list[Ack],
    *,
    views_api: str | None,
    webhook_users: set[str] | None = None,
    webhook_calls: list[Any] | None = None,
) -> tuple[Findings, list[EventEnvelope]]:
    found = Findings()
    store = store_envelopes(platform.interviews_db, Path(platform.tmp) / "data")
    check_acknowledged(store, acks, found)
    check_topic(platform, store, found)
    if views_api is not None:
        opened = store_envelopes(platform.interviews_db, Path(platform.tmp) / "data", opened=True)
        check_views(platform, views_api, opened, found)
    if webhook_users is not None:
        check_notifications(
            platform, store, found, webhook_users=webhook_users, webhook_calls=webhook_calls
        )
    check_poison_accepted(platform, store, acks, found)
    found.record()
    return found, store
