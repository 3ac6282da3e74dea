"""The consumer handler on a real database: each transition of DESIGN's table
records exactly the inbox entries (and pending deliveries) of the rules table."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from services.notifications.adapters.tables import deliveries, notifications
from services.notifications.bootstrap import NotificationsContainer
from tests.support.notifications import OFFER, Interview, apply, inbox_of

pytestmark = pytest.mark.integration

Make = Callable[..., NotificationsContainer]


def told(container: NotificationsContainer, *events) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    before = container.recorder.recorded
    apply(container, *events)
    with container.engine().connect() as conn:
        rows = conn.execute(
            sa.select(notifications.c.recipient_id, notifications.c.type)
            .where(notifications.c.event_id.in_([str(e.id) for e in events]))
            .order_by(notifications.c.seq)
        ).all()
    assert container.recorder.recorded - before == len(rows)
    return sorted((r.recipient_id, r.type) for r in rows)


def test_each_transition_tells_exactly_the_parties_of_the_rules_table(make_container: Make) -> None:
    c = make_container()
    hired = Interview("job-1")
    assert told(c, hired.event("interview.invited", "client")) == [("f-1", "interview.invited")]
    assert told(c, hired.event("interview.accepted", "freelancer")) == [
        ("c-1", "interview.accepted")
    ]
    assert told(
        c, hired.event("interview.started", "client", {"scheduled_at": "2026-11-27T10:00:00Z"})
    ) == [("c-1", "interview.started"), ("f-1", "interview.started")]
    assert told(c, hired.event("interview.offer_extended", "client", OFFER)) == [
        ("f-1", "interview.offer_extended")
    ]
    assert told(c, hired.event("interview.offer_declined", "freelancer", {"reason": "low"})) == [
        ("c-1", "interview.offer_declined")
    ]
    assert told(c, hired.event("interview.offer_extended", "client", OFFER)) == [
        ("f-1", "interview.offer_extended")
    ]
    assert told(c, hired.event("interview.offer_accepted", "freelancer")) == [
        ("c-1", "interview.offer_accepted")
    ]

    declined = Interview("job-2")
    told(c, declined.event("interview.invited", "client"))
    assert told(c, declined.event("interview.declined", "freelancer")) == [
        ("c-1", "interview.declined")
    ]

    by_freelancer = Interview("job-3")
    told(c, by_freelancer.event("interview.invited", "client"))
    assert told(
        c,
        by_freelancer.event(
            "interview.cancelled", "freelancer", {"reason": "busy", "cancelled_by": "freelancer"}
        ),
    ) == [("c-1", "interview.cancelled")]

    by_client = Interview("job-4")
    told(c, by_client.event("interview.invited", "client"))
    assert told(
        c,
        by_client.event(
            "interview.cancelled", "client", {"reason": "filled", "cancelled_by": "client"}
        ),
    ) == [("f-1", "interview.cancelled")]

    expired_invitation = Interview("job-5")
    told(c, expired_invitation.event("interview.invited", "client"))
    assert told(
        c, expired_invitation.event("interview.expired", "system", {"what": "invitation"})
    ) == [("c-1", "interview.expired"), ("f-1", "interview.expired")]

    expired_offer = Interview("job-6")
    told(c, expired_offer.event("interview.invited", "client"))
    told(c, expired_offer.event("interview.accepted", "freelancer"))
    told(c, expired_offer.event("interview.offer_extended", "client", OFFER))
    assert told(c, expired_offer.event("interview.expired", "system", {"what": "offer"})) == [
        ("c-1", "interview.expired"),
        ("f-1", "interview.expired"),
    ]

    messages = {(n["type"], n["job_id"]): n["message"] for n in inbox_of(c, "f-1")}
    assert messages[("interview.started", "job-1")] == (
        "Your interview with client c-1 for job job-1 has started."
        " It is scheduled for Friday 27 November 2026 at 10:00 UTC. It lasts 30 minutes."
    )
    assert messages[("interview.cancelled", "job-4")] == (
        "Client c-1 cancelled the interview with you for job job-4. Reason: filled."
    )


def test_an_event_seen_twice_records_one_inbox_entry_per_recipient(make_container: Make) -> None:
    c = make_container()
    started = Interview().event("interview.started", "freelancer")
    apply(c, started)
    apply(c, started)  # a redelivery that got past the runner's dedupe
    assert Counter(n["type"] for n in inbox_of(c, "c-1")) == {"interview.started": 1}
    assert Counter(n["type"] for n in inbox_of(c, "f-1")) == {"interview.started": 1}
    assert c.recorder.recorded == 2


def test_a_rolled_back_transaction_leaves_no_inbox_entry(make_container: Make) -> None:
    c = make_container()
    event = Interview().event("interview.invited", "client")
    with pytest.raises(RuntimeError), c.engine().begin() as conn:
        c.recorder(conn, event)
        raise RuntimeError("the runner crashed before committing")
    assert inbox_of(c, "f-1") == []
    apply(c, event)
    assert len(inbox_of(c, "f-1")) == 1


def test_pending_deliveries_are_recorded_with_the_entry_for_subscribed_channels(
    make_container: Make,
) -> None:
    c = make_container(smtp_host="127.0.0.1", email_domain="example.test")
    inbox = c.inbox()
    hook = inbox.register_webhook("f-1", "http://127.0.0.1:9/a", "s" * 16, ["interview.invited"])
    inbox.register_webhook("f-1", "http://127.0.0.1:9/b", "s" * 16, ["interview.expired"])
    inbox.register_webhook("c-1", "http://127.0.0.1:9/c", "s" * 16, ["interview.invited"])
    interview = Interview()
    apply(c, interview.event("interview.invited", "client"))
    apply(c, interview.event("interview.accepted", "freelancer"))
    with c.engine().connect() as conn:
        rows = conn.execute(
            sa.select(
                deliveries.c.recipient_id,
                deliveries.c.channel,
                deliveries.c.webhook_id,
                deliveries.c.address,
                deliveries.c.status,
            )
        ).all()
    assert sorted(rows, key=str) == sorted(
        [
            ("f-1", "webhook", hook["id"], None, "pending"),
            ("f-1", "email", None, "f-1@example.test", "pending"),
            ("c-1", "email", None, "c-1@example.test", "pending"),
        ],
        key=str,
    )
