"""The group committer's batch span is made only where spans are exported: without
an exporter nobody would read it, and the batch is committed all the same."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from types import SimpleNamespace
from typing import Any

import pytest

from services.interviews.adapters import group_commit
from services.interviews.adapters.group_commit import GroupCommitter

pytestmark = pytest.mark.unit


class Aggregate:
    def __init__(self, *events: Any) -> None:
        self.pending = list(events)

    def collect_events(self) -> list[Any]:
        events, self.pending = self.pending, []
        return events


class Spans:
    """A tracer that remembers the names of the spans it was asked for."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self) -> Spans:
        return self

    def start_as_current_span(self, name: str, **_: Any) -> AbstractContextManager[None]:
        self.names.append(name)
        return nullcontext()


@pytest.mark.parametrize("exported", [False, True])
def test_the_batch_span_exists_only_where_spans_are_exported(
    monkeypatch: pytest.MonkeyPatch, exported: bool
) -> None:
    spans = Spans()
    monkeypatch.setattr(group_commit, "tracer", spans)
    monkeypatch.setattr(group_commit, "tracing_exports", lambda: exported)
    recorded: list[Any] = []

    def record(events: list[Any], aggregates: list[Any]) -> list[Any]:
        recorded.extend(events)
        return [SimpleNamespace(domain_event=e) for e in events]

    committer = GroupCommitter(record)
    try:
        event = SimpleNamespace()
        assert [r.domain_event for r in committer.commit([Aggregate(event)])] == [event]
    finally:
        committer.close()
    assert recorded == [event]
    batch_spans = [n for n in spans.names if n == "interviews group commit"]
    assert batch_spans == (["interviews group commit"] if exported else [])
