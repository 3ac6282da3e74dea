"""``LoopThreads``: the threads the interviews API runs its use cases on."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from services.common.loop_threads import LoopThreads
from tests.support.waiting import wait_until

REQUEST = contextvars.ContextVar("request", default="none")


@pytest.fixture
def threads() -> LoopThreads:
    return LoopThreads(2, "test")


def test_a_call_runs_on_another_thread_in_the_callers_context(threads: LoopThreads) -> None:
    async def main() -> tuple[str, str]:
        REQUEST.set("req-1")
        return await threads.run(lambda: (REQUEST.get(), threading.current_thread().name))

    try:
        seen, thread_name = asyncio.run(main())
    finally:
        threads.shutdown()

    assert seen == "req-1"
    assert thread_name.startswith("test-") and thread_name != threading.current_thread().name


def test_a_calls_exception_is_raised_in_the_awaiting_coroutine(threads: LoopThreads) -> None:
    def refuse(what: str) -> None:
        raise LookupError(what)

    async def main() -> None:
        await threads.run(refuse, "no such thing")

    try:
        with pytest.raises(LookupError, match="no such thing"):
            asyncio.run(main())
    finally:
        threads.shutdown()


def test_at_most_size_calls_run_at_once_and_the_others_wait_their_turn(
    threads: LoopThreads,
) -> None:
    release = threading.Event()
    started: list[int] = []

    def blocking(n: int) -> int:
        started.append(n)
        release.wait(10)
        return n * 10

    async def main() -> list[int]:
        calls = [asyncio.ensure_future(threads.run(blocking, n)) for n in range(3)]
        await asyncio.to_thread(wait_until, lambda: len(started) == 2, what="two calls running")
        running_at_once = len(started)  # both threads are busy: the third cannot start
        release.set()
        answers = await asyncio.gather(*calls)
        return [running_at_once, *answers]

    try:
        running_at_once, *answers = asyncio.run(main())
    finally:
        threads.shutdown()

    assert running_at_once == 2
    assert answers == [0, 10, 20]
    assert sorted(started) == [0, 1, 2]


def test_after_shutdown_no_call_is_taken(threads: LoopThreads) -> None:
    threads.shutdown()

    async def main() -> None:
        await threads.run(lambda: None)

    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(main())
