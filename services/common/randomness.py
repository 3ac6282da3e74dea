"""Random bytes from the operating system's CSPRNG, read a page at a time per thread.

``os.urandom`` releases the GIL around its system call. On a command path with
other threads waiting for the GIL (16 command threads, the group committer)
each release hands the GIL to another thread and this one then waits up to the
interpreter's switch interval to get it back: measured here, 150 µs of wall
time an ``os.urandom(12)`` with one busy rival thread, against 0.3 µs alone,
and a few µs of CPU a call in context switches. :func:`random_bytes` reads
4 KiB at once and hands it out in slices: the same bytes from the same source,
one system call (and one GIL release) per 4 KiB instead of one per call.

Each thread has its own page, so no slice is handed out twice without a lock,
and a page read before a ``fork`` is never used by the child (it reads a page
of its own): two processes never share a nonce or an id.
"""

from __future__ import annotations

import os
import threading
import uuid

PAGE = 4096


class _Page(threading.local):
    pid = 0
    data = b""
    at = PAGE


_page = _Page()


def random_bytes(n: int) -> bytes:
    """``n`` bytes from ``os.urandom`` (up to a page at once)."""
    page = _page
    at = page.at
    if at + n > len(page.data) or page.pid != os.getpid():
        if n > PAGE:
            return os.urandom(n)
        page.data, page.pid, at = os.urandom(PAGE), os.getpid(), 0
    page.at = at + n
    return page.data[at : at + n]


def random_uuid() -> uuid.UUID:
    """A version-4 UUID, as ``uuid.uuid4()`` makes it, from :func:`random_bytes`."""
    return uuid.UUID(bytes=random_bytes(16), version=4)
