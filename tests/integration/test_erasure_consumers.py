"""Crypto-shredding on the consumer side (#17), on SQLite and PostgreSQL: projections
and notifications open sealed texts at consume time, and once an erasure is done the
person's words are in no row of either database (nor in any file under DATA_DIR on
SQLite), while everyone else's words stay. The interviews side is ``InMemoryKeys``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.common.erasure_worker import ErasureWorker
from services.common.privacy import ErasureTask, InMemoryKeys, KeyServiceUnavailable
from services.common.readiness import NotReadyError
from services.common.runner.parked import list_parked
from services.common.runner.source import SourceRecord
from services.contracts import EventEnvelope
from services.notifications.bootstrap import create_app as notifications_app
from services.projections.bootstrap import create_app as projections_app
from tests.conftest import FakeClock
from tests.integration.erasure_support import (
    OTHER_WORDS,
    SUBJECT,
    SUBJECT_WORDS,
    T0,
    Consumers,
    SealedLog,
    files_containing,
    rows_containing,
    scenario,
)

pytestmark = pytest.mark.integration

Token = Callable[[str, str], dict[str, str]]


class Flaky:
    """A key service that can be switched off (its answers then fail as unavailable)."""

    def __init__(self, inner: InMemoryKeys) -> None:
        self.inner = inner
        self.down = False
        self.asked = 0

    def data_key(self, key_id: str) -> bytes:
        self.asked += 1
        if self.down:
            raise KeyServiceUnavailable("switched off")
        return self.inner.data_key(key_id)

    def pending_erasures(self, service: str) -> list[ErasureTask]:
        if self.down:
            raise KeyServiceUnavailable("switched off")
        return self.inner.pending_erasures(service)

    def erasure_done(self, erasure_id: str, service: str) -> None:
        if self.down:
            raise KeyServiceUnavailable("switched off")
        self.inner.erasure_done(erasure_id, service)


@pytest.fixture
def keys() -> InMemoryKeys:
    return InMemoryKeys()


@pytest.fixture
def log(keys: InMemoryKeys) -> SealedLog:
    return SealedLog(keys)


@pytest.fixture
def wall() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def consumers(
    database_url: str | None,
    tmp_path: Path,
    log: SealedLog,
    keys: InMemoryKeys,
    wall: FakeClock,
    request: pytest.FixtureRequest,
) -> Iterator[Consumers]:
    # On PostgreSQL the notifications have a database of their own.
    notifications_url = request.getfixturevalue("databases")("n") if database_url else None
    c = Consumers(
        log.read,
        Flaky(keys),
        tmp_path,
        projections_url=database_url,
        notifications_url=notifications_url,
        clock=wall,
    )
    yield c
    c.close()


def workers(c: Consumers, wall: FakeClock) -> list[ErasureWorker]:
    return [
        ErasureWorker(name, container.key_service, container.keys, container.redact, clock=wall)
        for name, container in (("projections", c.projections), ("notifications", c.notifications))
    ]


def stored(c: Consumers, words: tuple[str, ...]) -> list[tuple[str, str, str]]:
    return [hit for engine in c.engines().values() for hit in rows_containing(engine, words)]


def test_after_an_erasure_the_persons_words_are_in_no_row_and_the_others_stay(
    token: Token,
    consumers: Consumers,
    log: SealedLog,
    keys: InMemoryKeys,
    wall: FakeClock,
    database_url: str | None,
    tmp_path: Path,
) -> None:
    ids = scenario(log)
    consumers.drain()
    # Opened at consume time: the words are stored in clear, with their key ids.
    assert {w for _, _, w in stored(consumers, SUBJECT_WORDS)} == set(SUBJECT_WORDS)
    assert {w for _, _, w in stored(consumers, OTHER_WORDS)} == set(OTHER_WORDS)

    task = keys.erase(SUBJECT, at=wall())
    both = workers(consumers, wall)
    # Within the cache TTL nothing is redacted yet: another process may still hold the key.
    assert [w.run_once() for w in both] == [0, 0]
    assert [w.pending for w in both] == [1, 1]
    wall.advance(seconds=5)
    assert [w.run_once() for w in both] == [1, 1]
    assert keys.done[task.id] == {"projections", "notifications"}

    assert stored(consumers, SUBJECT_WORDS) == []
    assert {w for _, _, w in stored(consumers, OTHER_WORDS)} == set(OTHER_WORDS)
    if database_url is None:
        assert files_containing(tmp_path, SUBJECT_WORDS) == []
        assert {w for _, w in files_containing(tmp_path, OTHER_WORDS)} == set(OTHER_WORDS)

    # Every API shows the erased fields as null and lists them.
    with TestClient(projections_app(consumers.projections)) as api:
        a = api.get(f"/views/interviews/{ids['a']}", headers=token("c-1", "client")).json()
        assert a["decline_reason"] is None and a["erased_fields"] == ["decline_reason"]
        assert a["invitation_message"] == OTHER_WORDS[0]
        declined = next(e for e in a["timeline"] if e["type"] == "interview.declined")
        assert declined["data"]["reason"] is None and declined["erased_fields"] == ["reason"]
        b = api.get(f"/views/interviews/{ids['b']}", headers=token(SUBJECT, "freelancer")).json()
        assert b["cancellation"]["reason"] is None
        assert b["erased_fields"] == ["cancellation.reason"]
        c = api.get(f"/views/interviews/{ids['c']}", headers=token("c-2", "client")).json()
        assert c["decline_reason"] == OTHER_WORDS[3] and c["erased_fields"] == []
        board = api.get("/views/jobs/job-a/candidates", headers=token("c-1", "client")).json()
        assert SUBJECT_WORDS[0] not in str(board)
    with TestClient(notifications_app(consumers.notifications)) as api:
        inbox = api.get("/notifications", headers=token("c-1", "client")).json()["items"]
        declined_n = next(n for n in inbox if n["type"] == "interview.declined")
        assert declined_n["erased_fields"] == ["reason"]
        assert declined_n["details"]["reason"] is None
        assert "was erased" in declined_n["message"]
        assert SUBJECT_WORDS[0] not in str(inbox)
        theirs = api.get("/notifications", headers=token("f-1", "freelancer")).json()["items"]
        invited_n = next(
            n for n in theirs if n["type"] == "interview.invited" and n["job_id"] == "job-a"
        )
        assert OTHER_WORDS[0] in invited_n["message"] and invited_n["erased_fields"] == []

    # Idempotent: nothing pending, and redacting again changes nothing.
    assert [w.run_once() for w in both] == [0, 0]
    assert consumers.projections.redact(task.key_ids) == 0
    assert consumers.notifications.redact(task.key_ids) == 0


def test_a_rebuild_after_an_erasure_yields_the_same_redacted_views(
    token: Token,
    consumers: Consumers,
    log: SealedLog,
    keys: InMemoryKeys,
    wall: FakeClock,
    database_url: str | None,
    tmp_path: Path,
) -> None:
    ids = scenario(log)
    consumers.drain()
    keys.erase(SUBJECT, at=wall())
    wall.advance(seconds=6)
    for worker in workers(consumers, wall):
        worker.run_once()
    report = consumers.projections.rebuild()
    assert report.unfoldable == [] and report.events == len(log.events)
    assert stored(consumers, SUBJECT_WORDS) == []
    if database_url is None:
        assert files_containing(tmp_path, SUBJECT_WORDS) == []

    auditor = token("au-1", "auditor")
    with TestClient(projections_app(consumers.projections)) as api:
        a = api.get(f"/views/interviews/{ids['a']}", headers=auditor).json()
        assert a["decline_reason"] is None and a["erased_fields"] == ["decline_reason"]
        b = api.get(f"/views/interviews/{ids['b']}", headers=auditor).json()
        assert b["erased_fields"] == ["cancellation.reason"]
        assert b["invitation_message"] == OTHER_WORDS[1]


def test_an_event_consumed_after_the_erasure_reads_null_and_erased(
    consumers: Consumers, log: SealedLog, keys: InMemoryKeys, wall: FakeClock
) -> None:
    ids = scenario(log)
    keys.erase(SUBJECT, at=wall())
    consumers.drain()  # the keys are gone before the consumers ever saw the events
    assert stored(consumers, SUBJECT_WORDS) == []
    assert {w for _, _, w in stored(consumers, OTHER_WORDS)} == set(OTHER_WORDS)
    inbox = (
        consumers.notifications.inbox()
        .list_notifications("c-1", unread=None, limit=50, cursor=None)
        .items
    )
    cancelled = next(n for n in inbox if n["type"] == "interview.cancelled")
    assert cancelled["erased_fields"] == ["reason"] and "(erased)" in cancelled["message"]
    del ids


def test_a_key_service_that_does_not_answer_holds_the_batch_and_loses_nothing(
    consumers: Consumers, log: SealedLog, wall: FakeClock
) -> None:
    scenario(log)
    flaky = consumers.projections.key_service.inner
    assert isinstance(flaky, Flaky)
    flaky.down = True
    for group, runner in consumers.runners.items():
        with pytest.raises(KeyServiceUnavailable):
            runner.process([*map(_record, log.read(0, 200))])
        assert list_parked(consumers.specs[group].engine, group) == []
    for app in (projections_app(consumers.projections), notifications_app(consumers.notifications)):
        with TestClient(app) as api:
            ready = api.get("/readyz")
            assert ready.status_code == 503 and "key service does not answer" in ready.text
            assert "key_service_up 0.0" in api.get("/metrics").text
    with pytest.raises(NotReadyError):
        erasures = workers(consumers, wall)[0]
        erasures.run_once()
        erasures.check_ready()
    flaky.down = False
    consumers.drain()
    assert all(list_parked(spec.engine, g) == [] for g, spec in consumers.specs.items())
    assert {w for _, _, w in stored(consumers, SUBJECT_WORDS)} == set(SUBJECT_WORDS)
    erasures.run_once()
    erasures.check_ready()  # reachable again: ready


def test_the_notifications_consumer_asks_the_key_service_once_per_key_within_the_ttl(
    consumers: Consumers, log: SealedLog
) -> None:
    scenario(log)
    flaky = consumers.notifications.key_service.inner
    assert isinstance(flaky, Flaky)
    consumers.drain()
    # Three authors wrote sealed texts (c-1, f-1, f-2); two consumers share the key
    # service but each has its own cache.
    assert flaky.asked == 2 * 3


def _record(event: EventEnvelope) -> SourceRecord:
    return SourceRecord(envelope=event)
