"""Leases on SQLite: one holder at a time, taken over when it lapses, and at once
when its holder was a process of this machine that is gone (a SIGKILLed relay or
scheduler must not hold up its replacement for the whole lease)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from services.common.db import create_engine
from services.common.migrations import migrate
from services.interviews.adapters.leases import LeaseRow
from services.interviews.migrations import HISTORY

pytestmark = pytest.mark.integration


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_one_holder_at_a_time_until_the_lease_lapses(tmp_path: Path) -> None:
    engine = create_engine(None, tmp_path / "leases.sqlite")
    migrate(engine, [HISTORY])
    now = [1000.0]
    a = LeaseRow(engine, "elsewhere:1:a", ttl=9, name="relay:t", clock=lambda: now[0])
    b = LeaseRow(engine, "elsewhere:2:b", ttl=9, name="relay:t", clock=lambda: now[0])
    other = LeaseRow(engine, "elsewhere:2:b", ttl=9, name="deadlines", clock=lambda: now[0])
    try:
        assert a.acquire() and not b.acquire()
        assert other.acquire(), "leases of other names are independent"
        now[0] += 5
        assert a.acquire(), "renewed by its holder"
        now[0] += 8
        assert not b.acquire(), "renewed at 1005: valid until 1014"
        now[0] += 2
        assert b.acquire() and not a.acquire(), "lapsed: taken over"
        b.release()
        assert a.acquire(), "released: free at once"
    finally:
        engine.dispose()


def test_a_lease_of_a_process_that_is_gone_is_taken_at_once(tmp_path: Path) -> None:
    engine = create_engine(None, tmp_path / "leases.sqlite")
    migrate(engine, [HISTORY])
    host = socket.gethostname()
    try:
        crashed = LeaseRow(engine, f"{host}:{dead_pid()}:x", ttl=3600, name="relay:t")
        assert crashed.acquire()
        alive = LeaseRow(engine, f"{host}:1:y", ttl=3600, name="relay:t")  # pid 1 exists
        assert alive.acquire(), "its holder is gone"
        replacement = LeaseRow(engine, f"{host}:{dead_pid()}:z", ttl=3600, name="relay:t")
        assert not replacement.acquire(), "a holder that is running keeps it"
    finally:
        engine.dispose()
