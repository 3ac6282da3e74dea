"""The server half of :mod:`bench.profile_commands`: the interviews API in this
process, one worker, as ``interviewctl serve interviews`` serves it; under
cProfile in every thread when a stats file is named (``argv``: port, stats file
or ""). It imports nothing from ``bench``, so it can serve another checkout."""

from __future__ import annotations

import cProfile
import pstats
import signal
import sys
import threading
from typing import Any

import uvicorn

from services import cli
from services.common.logs import configure_logging
from services.common.tracing import setup_tracing
from services.interviews.bootstrap import app_from_environment


def serve(port: int, stats_path: str) -> None:
    profilers: list[cProfile.Profile] = []
    lock = threading.Lock()

    def start_profiler(*_: Any) -> None:
        profiler = cProfile.Profile()
        with lock:
            profilers.append(profiler)
        profiler.enable()  # replaces this hook in the thread that called it

    configure_logging("INFO", service="interviews")
    setup_tracing("interviews")
    app = app_from_environment()
    if stats_path:
        threading.setprofile(start_profiler)
        start_profiler()
    # uvicorn raises the signal that stopped it again once it is done: ignore it
    # then, so that the stats are written and the process exits 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    # As ``interviewctl serve`` serves it (a tree from before HTTP_PROTOCOL: uvicorn's own).
    http = getattr(cli, "HTTP_PROTOCOL", "auto")
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, http=http
    )
    uvicorn.Server(config).run()
    if stats_path:
        profilers[0].disable()
        merged = pstats.Stats(profilers[0])
        for profiler in profilers[1:]:
            merged.add(profiler)
        merged.dump_stats(stats_path)


serve(int(sys.argv[1]), sys.argv[2])
