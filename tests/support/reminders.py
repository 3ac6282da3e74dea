"""What the reminder and delivery tests share: feeding events through the
notifications service's real consumer spec, reading the reminders of an inbox,
and draining one queue with two workers at once (two processes on one database)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

import pytest

from services.common.consumer import Batch
from services.contracts import EventEnvelope
from services.notifications.bootstrap import NotificationsContainer, consumer_spec
from services.notifications.reminders import ReminderWorker
from tests.support.notifications import inbox_of


class Drains(Protocol):
    def run_until_idle(self) -> int: ...


def feed(container: NotificationsContainer, *events: EventEnvelope) -> None:
    """What the runner does with the service's real consumer spec: each event's
    effects in one transaction, then ``on_committed`` (which wakes the workers)."""
    spec = consumer_spec(container)
    for event in events:
        with container.engine().begin() as conn:
            spec.apply(conn, Batch([event]))
        assert spec.on_committed is not None
        spec.on_committed(event.position)


def reminders(container: NotificationsContainer, user: str = "f-1") -> list[dict[str, Any]]:
    """The reminders in ``user``'s inbox, newest first."""
    return [n for n in inbox_of(container, user) if n["kind"] == "reminder"]


def drain_together(workers: Sequence[Drains], timeout: float = 60) -> list[int]:
    """Each worker's ``run_until_idle`` on its own thread, started at the same
    moment; what each one did."""
    start = threading.Barrier(len(workers))
    done = [0] * len(workers)

    def drain(i: int) -> None:
        start.wait()
        done[i] = workers[i].run_until_idle()

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(t.is_alive() for t in threads), "a worker did not finish draining"
    return done


def crash_mid_round(worker: ReminderWorker) -> None:
    """One round of ``worker`` that dies after marking its rows sent, before the
    inbox entries commit (the process killed mid-transaction)."""

    def crash(*_: Any, **__: Any) -> int:
        raise RuntimeError("killed mid-transaction")

    worker.recorder.record = crash  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        worker.run_once()
