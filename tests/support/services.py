"""Stopping and starting the shared local servers (``scripts/services.sh``).

Only tests that run last (``runs_last``) may use this: the servers are shared
by the whole suite.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

SERVICES_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "services.sh"


def infrastructure(command: str) -> None:
    """``scripts/services.sh start-kafka|stop-kafka|start-pg|stop-pg`` (idempotent).

    A failure raises with the script's own diagnostics (the broker's last log
    lines, who holds its port) in the message, where a CI log shows them.
    """
    done = subprocess.run(
        [str(SERVICES_SCRIPT), command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=240,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"scripts/services.sh {command} failed (exit {done.returncode}):\n{done.stderr[-6000:]}"
        )
