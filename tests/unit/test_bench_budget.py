"""The bench's CPU budget line: where a unit's CPU went and what the cores allow."""

from __future__ import annotations

import pytest

from bench import common


def test_a_cpu_budget_names_each_party_and_the_ceiling_the_cores_allow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(common.os, "cpu_count", lambda: 2)
    line = common.cpu_budget("budget", {"server": 0.75, "PostgreSQL": 0.25}, "command")
    assert "server 0.75, PostgreSQL 0.25; 1.00 in all" in line
    assert "2 cores allow at most 2,000 commands/s" in line
