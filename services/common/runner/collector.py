"""The cyclic garbage collector paused around a consumer's batches (``ConsumerRunner``)."""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_pause_lock = threading.Lock()
_pausing = 0  # batches of this process running with the collector paused
_paused_here = False  # whether the first of them turned it off (it was on)


@contextlib.contextmanager
def cycle_collection_paused() -> Iterator[None]:
    """The block without the cyclic garbage collector (``gc``), which comes back on
    once the last block of the process that paused it ends, even on failure; left
    off if something else had turned it off.

    A batch's envelopes and rows live until it is written: thousands of containers
    surviving the young collections, which then run full collections over every
    object of the process (a third of a consumer's time per event). They hold no
    cycles: reference counting frees them all once the batch is done. Counted, so
    consumers of one process (the embedded platform) never turn it back on under
    each other's batch."""
    global _pausing, _paused_here
    with _pause_lock:
        if _pausing == 0:
            _paused_here = gc.isenabled()
            gc.disable()
        _pausing += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pausing -= 1
            if _pausing == 0 and _paused_here:
                gc.enable()
