"""The consumer's batch write: on PostgreSQL the inbox rows, deliveries and reminder
deadlines go by COPY through a staging table, on SQLite by plain inserts; both
record the same inbox, in the same order, with the same texts and deliveries,
and a batch seen again records nothing more."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from services.common import db
from services.common.consumer import Batch
from services.contracts import EventEnvelope
from services.notifications.adapters.tables import (
    deliveries,
    notifications,
    reminder_deadlines,
    webhooks,
)
from services.notifications.bootstrap import NotificationsContainer, consumer_spec
from tests.conftest import FakeClock
from tests.support.notifications import OFFER, Interview, settings_for

pytestmark = pytest.mark.integration

DEADLINE = {"expires_at": "2026-12-20T12:00:00+00:00"}


def a_batch() -> list[EventEnvelope]:
    """Interviews through every kind of text: messages, deadlines, schedules in a
    recipient's own zone, offers, reasons, cancellations, interleaved."""
    hired = Interview("job-1", "c-1", "f-1")
    cancelled = Interview("job-2", "c-1", "f-2")
    rescheduled = Interview("job-3", "c-2", "f-1")
    return [
        hired.event("interview.invited", "client", {"message": "hello there"} | DEADLINE),
        cancelled.event("interview.invited", "client"),
        rescheduled.event("interview.invited", "client"),
        hired.event("interview.accepted", "freelancer"),
        cancelled.event("interview.accepted", "freelancer"),
        rescheduled.event("interview.accepted", "freelancer"),
        hired.event("interview.started", "client", {"scheduled_at": "2026-12-10T10:00:00Z"}),
        rescheduled.event("interview.started", "client", {"scheduled_at": "2026-12-11T09:00:00Z"}),
        cancelled.event(
            "interview.cancelled",
            "freelancer",
            {"reason": "found another job", "cancelled_by": "freelancer"},
        ),
        rescheduled.event(
            "interview.rescheduled",
            "freelancer",
            {
                "scheduled_at": "2026-12-12T09:00:00Z",
                "previous_scheduled_at": "2026-12-11T09:00:00Z",
                "duration_minutes": 45,
            },
        ),
        hired.event("interview.offer_extended", "client", OFFER | DEADLINE),
        hired.event("interview.offer_declined", "freelancer", {"reason": "too low"}),
        hired.event("interview.offer_extended", "client", OFFER | {"message": "better?"}),
        hired.event("interview.offer_accepted", "freelancer"),
    ]


def consumed(container: NotificationsContainer, events: list[EventEnvelope]) -> None:
    """The batch as the runner hands it over: one transaction, ``spec.apply``."""
    spec = consumer_spec(container)
    with container.engine().begin() as conn:
        spec.apply(conn, Batch(events, {}))


def recorded(container: NotificationsContainer) -> dict[str, list[Any]]:
    """Everything the batch wrote, in inbox order; webhooks named by URL (their ids
    are random per database)."""
    with container.engine().connect() as conn:
        urls = dict(conn.execute(sa.select(webhooks.c.id, webhooks.c.url)).all())
        inbox = [
            {k: v for k, v in row.items() if k != "seq"}
            for row in conn.execute(sa.select(notifications).order_by(notifications.c.seq))
            .mappings()
            .all()
        ]
        sent = sorted(
            (
                row["notification_id"],
                row["channel"],
                urls.get(row["webhook_id"]),
                row["address"],
                row["status"],
                row["next_attempt_at"],
            )
            for row in conn.execute(sa.select(deliveries)).mappings()
        )
        deadlines = [
            dict(row)
            for row in conn.execute(
                sa.select(reminder_deadlines).order_by(
                    reminder_deadlines.c.interview_id, reminder_deadlines.c.what
                )
            ).mappings()
        ]
    return {"inbox": inbox, "deliveries": sent, "deadlines": deadlines}


@pytest.fixture
def containers(
    postgres_url: str, tmp_path: Path, clock: FakeClock
) -> Iterator[dict[str, NotificationsContainer]]:
    (tmp_path / "sqlite").mkdir()
    (tmp_path / "postgresql").mkdir()
    made = {
        name: NotificationsContainer(
            settings_for(url, tmp_path / name, email_domain="mail.example", smtp_host="127.0.0.1"),
            clock=clock,
        )
        for name, url in (("sqlite", None), ("postgresql", postgres_url))
    }
    for container in made.values():
        container.preferences().set_time_zone("c-1", "Europe/Berlin")
        container.inbox().register_webhook(
            "c-1", "https://hooks.example/c1", "s3cret-s3cret", ["interview.accepted"]
        )
    yield made
    for container in made.values():
        container.close()


@pytest.mark.parametrize("small_batch", [0, 1_000], ids=["copy", "one statement"])
def test_postgresql_records_the_inbox_sqlite_records_by_copy_or_in_one_statement(
    containers: dict[str, NotificationsContainer],
    small_batch: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(db, "SMALL_BATCH", small_batch)
    statements: list[str] = []
    sa.event.listen(
        containers["postgresql"].engine(),
        "before_cursor_execute",
        lambda _c, _cur, statement, *_: statements.append(statement),
    )
    events = a_batch()
    for container in containers.values():
        consumed(container, events)

    on_sqlite, on_postgresql = (recorded(c) for c in containers.values())
    assert on_postgresql == on_sqlite
    inbox = on_postgresql["inbox"]
    assert len(inbox) == 16
    order = {str(e.id): i for i, e in enumerate(events)}
    numbered = [order[n["event_id"]] for n in inbox]
    assert numbered == sorted(numbered), "the inbox numbers entries in the batch's order"
    berlin = next(
        n for n in inbox if n["type"] == "interview.started" and n["recipient_id"] == "c-1"
    )
    assert "CET" in berlin["message"], "texts in the recipient's own zone"
    assert ("webhook", "https://hooks.example/c1") in {
        (d[1], d[2]) for d in on_postgresql["deliveries"]
    }
    assert sum(d[1] == "email" for d in on_postgresql["deliveries"]) == 16
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT INTO NOTIFICATIONS")]
    if small_batch:  # 16 entries: a small batch, one multi-row statement
        assert len(inserts) == 1 and "stage_notifications" not in inserts[0]
    else:
        assert inserts and all("stage_notifications" in s and "VALUES" not in s for s in inserts)


def test_a_batch_consumed_again_records_nothing_more(
    containers: dict[str, NotificationsContainer],
) -> None:
    events = a_batch()
    for container in containers.values():
        consumed(container, events)
        once = recorded(container)
        recorder = container.recorder
        before = recorder.recorded
        consumed(container, events)
        assert recorder.recorded == before
        assert recorded(container) == once


def statements_of(container: NotificationsContainer, events: list[EventEnvelope]) -> list[str]:
    """The SQL that consuming ``events`` sends to ``container``'s database."""
    statements: list[str] = []

    def listener(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    sa.event.listen(container.engine(), "before_cursor_execute", listener)
    try:
        consumed(container, events)
    finally:
        sa.event.remove(container.engine(), "before_cursor_execute", listener)
    return statements


def test_a_batch_reads_its_recipients_zones_and_webhooks_in_one_statement(
    containers: dict[str, NotificationsContainer],
) -> None:
    """The zones and the active webhooks of every recipient in one read before the
    insert: the insert probes no webhook per row, and a paused webhook gets nothing."""
    for container in containers.values():
        paused = container.inbox().register_webhook(
            "c-1", "https://hooks.example/paused", "s3cret-s3cret", ["interview.accepted"]
        )
        container.inbox().update_webhook("c-1", paused["id"], active=False)
        container.inbox().register_webhook(
            "f-1", "https://hooks.example/f1", "s3cret-s3cret", ["interview.started"]
        )
        statements = statements_of(container, a_batch())

        reads = [s for s in statements if "notification_webhooks" in s]
        assert len(reads) == 1, reads
        assert "notification_preferences" in reads[0]
        assert not reads[0].lstrip().upper().startswith("INSERT")
        urls = {d[2] for d in recorded(container)["deliveries"] if d[1] == "webhook"}
        assert urls == {"https://hooks.example/c1", "https://hooks.example/f1"}
        inbox = recorded(container)["inbox"]
        assert any("CET" in n["message"] for n in inbox if n["recipient_id"] == "c-1")
