"""Group commit: many concurrent commands, one database transaction.

The stock recorders serialise inserts with a table lock, so one transaction
per command caps throughput at the database's commit rate and does not scale
with threads. Here request threads hand their new events to one committer
thread, which writes everything that has queued up in a single transaction.
A batch that fails on a version conflict is retried unit by unit, so exactly
the commands that lost their race see the conflict.

A command on the event loop awaits its commit (``commit_async``): the committer
thread settles the command's asyncio future, so the loop never blocks on it.

Each command's events are stamped with its ``traceparent`` (an extra key of the
stored event's state, outside the dataclass fields the hash chain covers), and,
where spans are exported, each command's write has its span (``interviews store``)
and the batch's span links every command it wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import IntegrityError, Recording

from ...common.tracing import current_traceparent, links_to, tracer, tracing_exports
from ..domain.interview import TRACE_CONTEXT

log = logging.getLogger(__name__)

RecordFn = Callable[[list[Any], list[Any]], list[Recording[Any]]]


def _held_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


def _store_span(events: int) -> AbstractContextManager[Any]:
    """The command's ``interviews store`` span, made only where spans are exported:
    otherwise the request's own span context is what its events carry on."""
    if not tracing_exports():
        return contextlib.nullcontext()
    return tracer().start_as_current_span(
        "interviews store", attributes={"db.operation.batch.size": events}
    )


@dataclass
class _Unit:
    events: list[Any]
    aggregates: list[Any]
    # Released once the unit is committed or refused, for a thread waiting on it
    # (a plain lock is a fraction of a threading.Event's cost, and one waiter is
    # all there is); None for a command on the event loop, which awaits ``future``.
    done: threading.Lock | None = None
    recordings: list[Recording[Any]] = field(default_factory=list)
    error: BaseException | None = None
    traceparent: str | None = None
    loop: asyncio.AbstractEventLoop | None = None
    future: asyncio.Future[list[Recording[Any]]] | None = None


class GroupCommitter:
    """Collects the events of concurrent commands and commits them together."""

    def __init__(self, record: RecordFn, *, max_batch: int = 128) -> None:
        self._record = record
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Unit | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.batches = 0
        self.units = 0

    def commit(self, aggregates: Sequence[Any]) -> list[Recording[Any]]:
        """Blocks until the aggregates' pending events are committed (or refused)."""
        events = [e for agg in aggregates for e in agg.collect_events()]
        if not events:
            return []
        with _store_span(len(events)):
            unit = self._unit(events, aggregates)
            unit.done = _held_lock()
            self._submit(unit)
            unit.done.acquire()
        if unit.error is not None:
            raise unit.error
        return unit.recordings

    async def commit_async(self, aggregates: Sequence[Any]) -> list[Recording[Any]]:
        """``commit`` for a coroutine: the event loop goes on serving while the
        committer thread writes, and the answer (or the error) comes back as
        the settled future of this command alone."""
        events = [e for agg in aggregates for e in agg.collect_events()]
        if not events:
            return []
        with _store_span(len(events)):
            unit = self._unit(events, aggregates)
            unit.loop = asyncio.get_running_loop()
            unit.future = unit.loop.create_future()
            self._submit(unit)
            return await unit.future

    @staticmethod
    def _unit(events: list[Any], aggregates: Sequence[Any]) -> _Unit:
        traceparent = current_traceparent()
        if traceparent is not None:
            for event in events:
                # Frozen dataclasses: the stored state is the event's __dict__.
                object.__setattr__(event, TRACE_CONTEXT, traceparent)
        return _Unit(events=events, aggregates=list(aggregates), traceparent=traceparent)

    def _submit(self, unit: _Unit) -> None:
        self._ensure_started()
        self._queue.put(unit)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=10)

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._closed:
                raise RuntimeError("the committer is closed")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="group-committer", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    unit = self._queue.get_nowait()
                except queue.Empty:
                    break
                if unit is None:
                    self._commit(batch)
                    return
                batch.append(unit)
            self._commit(batch)

    def _commit(self, batch: list[_Unit]) -> None:
        if not tracing_exports():  # the batch's span would only be read where exported
            self._commit_batch(batch)
            return
        with tracer().start_as_current_span(
            "interviews group commit",
            links=links_to([u.traceparent for u in batch]),
            attributes={"db.system.name": "event store", "commands": len(batch)},
        ):
            self._commit_batch(batch)

    def _commit_batch(self, batch: list[_Unit]) -> None:
        try:
            recordings = self._record(
                [e for u in batch for e in u.events],
                [a for u in batch for a in u.aggregates],
            )
        except IntegrityError as error:
            if len(batch) == 1:
                self._finish(batch[0], error=error)
            else:
                for unit in batch:  # find the losers of the race
                    self._commit([unit])
            return
        except BaseException as error:  # handed to the waiting request
            for unit in batch:
                self._finish(unit, error=error)
            return
        self.batches += 1
        self.units += len(batch)
        offset = 0
        for unit in batch:
            n = len(unit.events)
            self._finish(unit, recordings=recordings[offset : offset + n])
            offset += n

    @staticmethod
    def _finish(
        unit: _Unit,
        *,
        recordings: list[Recording[Any]] | None = None,
        error: BaseException | None = None,
    ) -> None:
        unit.recordings = recordings or []
        unit.error = error
        if unit.future is not None:
            assert unit.loop is not None
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody awaits it
                unit.loop.call_soon_threadsafe(_settle, unit.future, unit.recordings, error)
            return
        assert unit.done is not None
        unit.done.release()


def _settle(
    future: asyncio.Future[list[Recording[Any]]],
    recordings: list[Recording[Any]],
    error: BaseException | None,
) -> None:
    if future.cancelled():  # the request went away; its commit stands
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(recordings)
