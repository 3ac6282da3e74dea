"""The embedded default (issue 8): commands/s of ``interviewctl up`` on SQLite.

``interviewctl up`` with no DATABASE_URL and no Kafka: the three services in
one process on SQLite files, the projections and notifications consumers
following the event store's log in that same process. It is driven by the
same load generator and hiring flow as :mod:`bench.commands` (16 keep-alive
clients), and compared with B8, raw ``sqlite3`` single-row INSERT + COMMIT
with the settings the eventsourcing SQLite recorder uses, on the same disk,
in the same run. Goal: at least 0.15 of B8 (issue 18's table; issue 8 had
asked for half).

Durability is the same on both sides: B8 and the event store both commit in WAL
mode with ``synchronous=FULL`` (SQLite's default, which the ``eventsourcing``
recorder keeps; B8 prints the value it ran with, and
``tests/integration/test_embedded_durability.py`` holds the event store to it),
so a command is on disk before it is answered. The consumers' own databases
(views, inbox) run ``synchronous=NORMAL``: what they hold is derived from the
event store's log, and a commit lost there with its stored position is read
and applied again.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from . import baselines
from .commands import WARMUP, interview_commands
from .common import Context, figure, print_figure


def run(ctx: Context) -> list[dict[str, Any]]:
    raw = baselines.sqlite_commit(ctx)
    with tempfile.TemporaryDirectory() as tmp:
        rates, _, errors, cpu_ms = interview_commands(
            None, Path(tmp), WARMUP, ctx.seconds, ctx.repetitions, command=("up",)
        )
    figures = [
        figure(
            "embedded_sqlite_commands_16clients",
            rates,
            "commands/s",
            baseline=raw["name"],
            baseline_value=raw["value"],
            goal=0.15,
            goal_text="≥ 15% of B8",
        ),
        figure("embedded_sqlite_errors", [errors], "requests", goal=0, higher_is_better=False),
    ]
    if cpu_ms is not None:
        figures.append(figure("embedded_server_cpu_per_command", [cpu_ms], "ms"))
    for f in figures:
        print_figure(f)
    return figures
