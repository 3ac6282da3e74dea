"""``GroupCommitter.commit_async``: commands awaiting on the event loop share the
committer's batches, and each gets back its own recordings, or its own error: a
version conflict only to the command that lost the race, a store failure to
every command of the failed batch."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError, OperationalError

from services.interviews.adapters.group_commit import GroupCommitter
from tests.unit.test_group_commit_spans import Aggregate

pytestmark = pytest.mark.unit


class Store:
    """Records batches once ``gate`` opens; refuses a batch holding an event named
    in ``conflicts`` (IntegrityError) or everything while ``down``."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.conflicts: set[str] = set()
        self.down = False
        self.batches: list[list[str]] = []
        self.recorded: list[str] = []

    def record(self, events: list[Any], aggregates: list[Any]) -> list[Any]:
        self.gate.wait(5)
        names = [e.name for e in events]
        self.batches.append(names)
        if self.down:
            raise OperationalError("the database went away")
        if self.conflicts & set(names):
            raise IntegrityError("duplicate version")
        self.recorded.extend(names)
        return [SimpleNamespace(domain_event=e) for e in events]


def event(name: str) -> SimpleNamespace:
    return SimpleNamespace(name=name)


async def commit_all(committer: GroupCommitter, store: Store, names: list[str]) -> list[Any]:
    """Every command queued before the store answers (so they share a batch)."""
    tasks = [
        asyncio.create_task(committer.commit_async([Aggregate(event(name))])) for name in names
    ]
    await asyncio.sleep(0.05)  # every task has queued its unit
    store.gate.set()
    return await asyncio.gather(*tasks, return_exceptions=True)


def test_each_command_awaits_its_own_recordings_from_a_shared_batch() -> None:
    store = Store()
    committer = GroupCommitter(store.record)
    try:
        answers = asyncio.run(commit_all(committer, store, ["a", "b", "c", "d"]))
    finally:
        committer.close()
    assert [[r.domain_event.name for r in rs] for rs in answers] == [["a"], ["b"], ["c"], ["d"]]
    assert sorted(store.recorded) == ["a", "b", "c", "d"]
    assert committer.batches <= 2  # the first alone at most, then the rest together


def test_only_the_command_that_lost_a_race_gets_the_conflict() -> None:
    store = Store()
    store.conflicts = {"c"}
    committer = GroupCommitter(store.record)
    try:
        answers = asyncio.run(commit_all(committer, store, ["a", "b", "c", "d"]))
    finally:
        committer.close()
    assert isinstance(answers[2], IntegrityError)
    assert [[r.domain_event.name for r in answers[i]] for i in (0, 1, 3)] == [["a"], ["b"], ["d"]]
    assert sorted(store.recorded) == ["a", "b", "d"]


def test_a_store_failure_reaches_every_command_of_the_batch_and_records_nothing() -> None:
    store = Store()
    store.down = True
    committer = GroupCommitter(store.record)
    try:
        answers = asyncio.run(commit_all(committer, store, ["a", "b", "c"]))
    finally:
        committer.close()
    assert all(isinstance(a, OperationalError) for a in answers)
    assert store.recorded == []


def test_a_command_with_nothing_to_commit_is_answered_at_once() -> None:
    committer = GroupCommitter(Store().record)
    try:
        assert asyncio.run(committer.commit_async([Aggregate()])) == []
    finally:
        committer.close()
