"""The consumers' erasure worker: waits out the key cache, forgets, redacts, reports."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from services.common.erasure_worker import ErasureWorker
from services.common.privacy import CachingKeys, ErasureTask, InMemoryKeys, KeyServiceUnavailable
from services.common.readiness import NotReadyError

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Redactions:
    """A fake redactor that records what it was asked to redact."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.fail = fail

    def __call__(self, key_ids: Sequence[str]) -> int:
        if self.fail:
            raise RuntimeError("the database refused")
        self.calls.append(tuple(key_ids))
        return len(key_ids)


class Unreachable(InMemoryKeys):
    def pending_erasures(self, service: str) -> list[ErasureTask]:
        raise KeyServiceUnavailable("connection refused")


def test_an_erasure_waits_for_the_cache_ttl_then_forgets_redacts_and_reports() -> None:
    keys, clock, redact = InMemoryKeys(), Clock(), Redactions()
    key_id, _ = keys.key_for("f-1")
    cache = CachingKeys(keys, ttl_seconds=5)
    cache.data_key(key_id)
    task = keys.erase("f-1", at=T0)
    registry = CollectorRegistry()
    worker = ErasureWorker("projections", keys, cache, redact, ttl_seconds=5, clock=clock,
                           registry=registry)  # fmt: skip

    clock.now = T0 + timedelta(seconds=4.9)
    assert worker.run_once() == 0 and redact.calls == []
    assert registry.get_sample_value("erasures_pending") == 1
    clock.now = T0 + timedelta(seconds=5)
    assert worker.run_once() == 1
    assert redact.calls == [(key_id,)]
    assert keys.done[task.id] == {"projections"}
    assert key_id not in cache._entries  # forgotten: the next read asks the key service
    assert worker.run_once() == 0 and redact.calls == [(key_id,)]  # done: not again
    assert registry.get_sample_value("erasures_pending") == 0
    assert registry.get_sample_value("erasures_done_total") == 1


def test_a_person_who_wrote_nothing_is_reported_done_without_redacting() -> None:
    keys, clock, redact = InMemoryKeys(), Clock(), Redactions()
    task = keys.erase("nobody", at=T0)
    clock.now = T0 + timedelta(seconds=10)
    worker = ErasureWorker("notifications", keys, None, redact, clock=clock)
    assert worker.run_once() == 1
    assert redact.calls == [] and keys.done[task.id] == {"notifications"}


def test_a_failing_redaction_leaves_the_erasure_pending_for_the_next_pass() -> None:
    keys, clock = InMemoryKeys(), Clock()
    keys.key_for("f-1")
    task = keys.erase("f-1", at=T0)
    clock.now = T0 + timedelta(seconds=10)
    registry = CollectorRegistry()
    worker = ErasureWorker("projections", keys, None, Redactions(fail=True), clock=clock,
                           registry=registry)  # fmt: skip
    assert worker.run_once() == 0
    assert keys.done[task.id] == set()
    assert registry.get_sample_value("erasure_failures_total") == 1
    worker.redact = Redactions()
    assert worker.run_once() == 1 and keys.done[task.id] == {"projections"}


def test_an_unreachable_key_service_makes_the_worker_unready_until_it_answers() -> None:
    registry = CollectorRegistry()
    worker = ErasureWorker("projections", Unreachable(), None, Redactions(), registry=registry)
    assert worker.run_once() == 0
    with pytest.raises(NotReadyError, match="key service does not answer"):
        worker.check_ready()
    assert registry.get_sample_value("erasure_key_service_unreachable") == 1
    worker.keys = InMemoryKeys()
    worker.run_once()
    worker.check_ready()
    assert registry.get_sample_value("erasure_key_service_unreachable") == 0
