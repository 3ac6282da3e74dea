"""Threads for an asyncio app's blocking calls, with one light hop each way."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

R = TypeVar("R")

# Set while code runs on the event loop where it must not block (``on_the_loop``).
_ON_THE_LOOP: contextvars.ContextVar[bool] = contextvars.ContextVar("on_the_loop", default=False)


class WouldBlockError(Exception):
    """Raised by ``may_block`` on the event loop: the caller runs the work again
    in a thread, where blocking is allowed. Code that raises it must not have
    changed anything yet."""


@contextlib.contextmanager
def on_the_loop() -> Iterator[None]:
    """Within it, ``may_block`` raises ``WouldBlockError`` instead of letting a
    blocking call (a query, a lock that may be held) stall the event loop."""
    token = _ON_THE_LOOP.set(True)
    try:
        yield
    finally:
        _ON_THE_LOOP.reset(token)


def may_block() -> None:
    """Called before a blocking call: ``WouldBlockError`` inside ``on_the_loop``."""
    if _ON_THE_LOOP.get():
        raise WouldBlockError


def blocking_allowed() -> bool:
    """Whether the caller may block (it is not inside ``on_the_loop``)."""
    return not _ON_THE_LOOP.get()


# A call, the loop and future its answer goes to, and the context it runs in.
_Call = tuple[
    asyncio.AbstractEventLoop,
    asyncio.Future[Any],
    contextvars.Context,
    Callable[..., Any],
    tuple[Any, ...],
]


class LoopThreads:
    """Runs blocking calls for coroutines on threads of its own: at most
    ``size``, each started when a call would otherwise wait for a free one.

    ``loop.run_in_executor`` with a ``ThreadPoolExecutor`` builds a concurrent
    future per call and chains it to an asyncio future, copying its state across
    under a lock on the loop; here a call goes on a queue and its thread sets the
    answer straight on the caller's asyncio future (``call_soon_threadsafe``)."""

    def __init__(self, size: int, name: str) -> None:
        self.size = size
        self.name = name
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._waiting_calls = 0  # queued, not yet taken by a thread
        self._idle_threads = 0  # waiting for a call
        self._closed = False

    async def run(self, call: Callable[..., R], *args: Any) -> R:
        """``call(*args)`` on one of the threads, in the caller's context (its
        trace and log context); its exception is raised here."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the {self.name} threads are closed")
            self._waiting_calls += 1
            if self._waiting_calls > self._idle_threads and len(self._threads) < self.size:
                thread = threading.Thread(
                    target=self._serve, name=f"{self.name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            self._calls.put((loop, future, contextvars.copy_context(), call, args))
        return await future

    def shutdown(self) -> None:
        """Calls already queued are run first; then every thread ends."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._calls.put(None)
        for thread in threads:
            thread.join()

    def _serve(self) -> None:
        while True:
            with self._lock:
                self._idle_threads += 1
            item = self._calls.get()
            with self._lock:
                self._idle_threads -= 1
                if item is not None:
                    self._waiting_calls -= 1
            if item is None:
                return
            _answer(*item)
            del item  # the answer's references go now, not at the next call


def _answer(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    context: contextvars.Context,
    call: Callable[..., Any],
    args: tuple[Any, ...],
) -> None:
    result: Any = None
    error: BaseException | None = None
    try:
        result = context.run(_blocking_call, call, args)
    except BaseException as caught:  # handed to the awaiting coroutine
        error = caught
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody awaits the answer
        loop.call_soon_threadsafe(_settle, future, result, error)


def _blocking_call(call: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    _ON_THE_LOOP.set(False)  # in the thread's copy of the caller's context
    return call(*args)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if isinstance(error, StopIteration):  # an asyncio future refuses it
        error = RuntimeError(f"the call raised StopIteration: {error}")
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
