"""The process is stopping: what long-lived responses (SSE streams) watch.

uvicorn, on SIGTERM, stops accepting connections and then waits for every open
response to finish before it runs the lifespan's shutdown, so a stream that
only ends when its client leaves holds the process until the orchestrator
kills it. ``interviewctl`` marks the process as stopping as soon as the signal
arrives; streams see the mark within a second and end, and in-flight requests
finish as usual.
"""

from __future__ import annotations

import threading

_stopping = threading.Event()


def begin_shutdown() -> None:
    """Called from the server's signal handler."""
    _stopping.set()


def shutting_down() -> bool:
    return _stopping.is_set()
