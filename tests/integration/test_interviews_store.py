"""What the event store keeps survives a fresh process: every value type of
the domain, snapshots, and text the database might choke on."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from services.common.privacy import is_sealed
from services.interviews.bootstrap import InterviewsContainer
from services.interviews.domain import Actor, CommandContext, OfferTerms
from services.interviews.personal_data import reveal_interview
from services.interviews.settings import InterviewsSettings
from tests.conftest import FakeClock
from tests.jobs import ensure_job

pytestmark = pytest.mark.integration

CLIENT = Actor("client-1", "client")
FREELANCER = Actor("freelancer-1", "freelancer")


def ctx(actor: Actor, clock: FakeClock) -> CommandContext:
    return CommandContext(actor=actor, at=clock(), correlation_id="c", causation_id="r")


def reopened(settings: InterviewsSettings, clock: FakeClock) -> InterviewsContainer:
    return InterviewsContainer(settings, clock=clock)


def test_every_value_of_an_offer_survives_a_restart(
    interviews_container: InterviewsContainer,
    interviews_settings: InterviewsSettings,
    clock: FakeClock,
) -> None:
    app = interviews_container.interviews()
    # Everything free text may hold (the domain refuses NUL and other controls).
    text = "Grüße 🎉 \t tab\r\nline 'quoted' \"double\" \\ back"
    ensure_job(app, "job-1", CLIENT.id, clock.now)
    iid = app.invite(
        ctx(CLIENT, clock), job_id="job-1", freelancer_id=FREELANCER.id, message=text
    ).id
    app.accept(ctx(FREELANCER, clock), iid)
    app.start(ctx(CLIENT, clock), iid, scheduled_at=datetime(2026, 12, 1, 9, 30, tzinfo=UTC))
    app.extend_offer(
        ctx(CLIENT, clock),
        iid,
        amount=Decimal("1234.50"),
        currency="EUR",
        rate_type="hourly",
        start_date=date(2027, 1, 4),
        message=text,
    )

    other = reopened(interviews_settings, clock)
    try:
        interview = other.interviews().get_interview(iid)
        # Free text is stored sealed; it reads back exactly through the key store.
        texts = reveal_interview(interview, other.interviews().reader)
    finally:
        other.close()

    assert is_sealed(interview.message)
    assert (texts.message, texts.offer_message) == (text, text)
    assert interview.scheduled_at == datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    assert interview.offer == OfferTerms(
        Decimal("1234.50"), "EUR", "hourly", date(2027, 1, 4), interview.offer.message
    )


def test_a_long_negotiation_is_snapshotted_and_reloads_from_the_snapshot(
    interviews_container: InterviewsContainer,
    interviews_settings: InterviewsSettings,
    clock: FakeClock,
) -> None:
    app = interviews_container.interviews()
    ensure_job(app, "job-1", CLIENT.id, clock.now)
    iid = app.invite(ctx(CLIENT, clock), job_id="job-1", freelancer_id=FREELANCER.id).id
    app.accept(ctx(FREELANCER, clock), iid)
    app.start(ctx(CLIENT, clock), iid)
    for round_ in range(49):
        app.extend_offer(
            ctx(CLIENT, clock),
            iid,
            amount=Decimal(100 + round_),
            currency="USD",
            rate_type="fixed",
            start_date=date(2027, 1, 1),
        )
        if round_ < 48:
            app.decline_offer(ctx(FREELANCER, clock), iid, reason=f"round {round_}")

    assert app.get_interview(iid).version == 100
    [snapshot] = list(app.snapshots.get(iid))  # type: ignore[union-attr]
    assert snapshot.originator_version == 100

    other = reopened(interviews_settings, clock)
    try:
        interview = other.interviews().get_interview(iid)
    finally:
        other.close()

    assert interview.version == 100
    assert interview.offer == OfferTerms(Decimal(148), "USD", "fixed", date(2027, 1, 1))
    assert interview.offers_extended == 49
    assert interview.last_hash == app.interview_events(iid)[-1].hash


def test_commands_recover_when_postgres_drops_every_connection(
    postgres_url: str, tmp_path: Path, clock: FakeClock
) -> None:
    """Pooled connections are not pinged before use: a dropped one must fail
    fast, leave the pool and be retried, for reads and writes alike."""
    import psycopg

    settings = InterviewsSettings(
        database_url=postgres_url, data_dir=tmp_path, auth_secret="s" * 32
    )
    container = InterviewsContainer(settings, clock=clock)
    try:
        app = container.interviews()
        ensure_job(app, "job-1", CLIENT.id, clock.now)
        iid = app.invite(ctx(CLIENT, clock), job_id="job-1", freelancer_id=FREELANCER.id).id
        database = postgres_url.rsplit("/", 1)[1]
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            ).fetchone()
        assert killed is not None and killed[0] >= 1

        assert app.accept(ctx(FREELANCER, clock), iid).status == "accepted"
        assert app.get_interview(iid).version == 2
    finally:
        container.close()


def test_processes_opening_a_new_database_at_once_all_start(
    postgres_url: str, tmp_path: Path, clock: FakeClock
) -> None:
    """The API, the relay and the scheduler often start together on an empty
    database; PostgreSQL's CREATE TABLE IF NOT EXISTS is not atomic, so the
    losers of that race must open the store again rather than exit."""
    import threading

    settings = InterviewsSettings(
        database_url=postgres_url, data_dir=tmp_path, auth_secret="s" * 32
    )
    containers = [InterviewsContainer(settings, clock=clock) for _ in range(6)]
    barrier = threading.Barrier(len(containers))
    failures: list[BaseException] = []

    def open_store(container: InterviewsContainer) -> None:
        barrier.wait()
        try:
            container.interviews()
        except BaseException as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=open_store, args=(c,)) for c in containers]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not failures, failures
        first, last = containers[0].interviews(), containers[-1].interviews()
        ensure_job(first, "job-1", CLIENT.id, clock.now)
        iid = first.invite(ctx(CLIENT, clock), job_id="job-1", freelancer_id=FREELANCER.id).id
        assert last.get_interview(iid).version == 1
    finally:
        for c in containers:
            c.close()
