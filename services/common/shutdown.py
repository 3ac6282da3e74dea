"""The process is stopping: what long-lived responses (SSE streams) watch.

uvicorn, on SIGTERM, stops accepting connections and then waits for every open
response to finish before it runs the lifespan's shutdown, so a stream that
only ends when its client leaves holds the process until the orchestrator
kills it. ``interviewctl`` marks the process as stopping as soon as the signal
arrives; streams see the mark within a second and end, and in-flight requests
finish as usual.
"""

from __future__ import annotations

import signal
import threading

_stopping = threading.Event()


def begin_shutdown() -> None:
    """Called from the server's signal handler."""
    _stopping.set()


def shutting_down() -> bool:
    return _stopping.is_set()


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def block_stop_signals() -> None:
    """SIGTERM and SIGINT wait for :func:`wait_for_stop_signal`: call it before
    starting threads, which inherit the mask and so never see them."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def wait_for_stop_signal() -> str:
    """Blocks until SIGTERM or SIGINT arrives; returns its name."""
    return signal.Signals(signal.sigwait(STOP_SIGNALS)).name
