"""What every bench module shares: the context, figures, fresh databases, servers.

A bench module exposes ``run(ctx) -> list[dict]``; each dict is a figure made
with :func:`figure` and printed with :func:`print_figure` as it is measured.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Context:
    """What the runner hands to every bench module."""

    database_url: str | None = field(default_factory=lambda: os.environ.get("DATABASE_URL"))
    kafka_bootstrap: str | None = field(
        default_factory=lambda: os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    )
    full: bool = field(default_factory=lambda: os.environ.get("BENCH_FULL") == "1")
    # Seconds per measured repetition; BENCH_SECONDS overrides.
    seconds: float = field(default_factory=lambda: float(os.environ.get("BENCH_SECONDS", "15")))
    repetitions: int = 3

    def require_database(self) -> str:
        if not self.database_url:
            raise SystemExit("this bench needs DATABASE_URL (PostgreSQL); run `make bench`")
        return self.database_url


def figure(
    name: str,
    values: Sequence[float],
    unit: str,
    *,
    baseline: str | None = None,
    baseline_value: float | None = None,
    goal: float | None = None,
    higher_is_better: bool = True,
) -> dict[str, Any]:
    """The median of ``values``, its spread, and how it compares with a baseline.

    ``goal`` applies to ``ratio`` (value / baseline_value) when there is a
    baseline, otherwise to the value itself.
    """
    value = statistics.median(values)
    ratio = value / baseline_value if baseline_value else None
    measured = ratio if baseline_value else value
    met = None
    if goal is not None and measured is not None:
        met = measured >= goal if higher_is_better else measured <= goal
    return {
        "name": name,
        "value": round(value, 2),
        "unit": unit,
        "baseline": baseline,
        "baseline_value": round(baseline_value, 2) if baseline_value is not None else None,
        "ratio": round(ratio, 3) if ratio is not None else None,
        "goal": goal,
        "met": met,
        "spread": {"min": round(min(values), 2), "max": round(max(values), 2), "n": len(values)},
    }


def print_figure(f: dict[str, Any]) -> None:
    spread = f["spread"]
    line = (
        f"  {f['name']:<36} {f['value']:>11,.1f} {f['unit']:<11}"
        f" [{spread['min']:,.1f} .. {spread['max']:,.1f}]"
    )
    if f["baseline"]:
        line += f"  vs {f['baseline']} {f['baseline_value']:,.1f}: ratio {f['ratio']:.2f}"
    if f["goal"] is not None:
        line += f"  goal {f['goal']}: {'met' if f['met'] else 'NOT MET'}"
    print(line, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def fresh_database(admin_url: str, prefix: str = "bench") -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunparse(urlparse(admin_url)._replace(path="/" + name))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def server(
    args: Sequence[str],
    port: int,
    env: dict[str, str],
    log_path: Path,
    ready_path: str = "/healthz",
) -> Iterator[subprocess.Popen[bytes]]:
    """Runs ``args`` (a server listening on ``port``) until the block ends."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            list(args), env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"server exited with {proc.returncode}; see {log_path}")
                try:
                    with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}{ready_path}", timeout=2
                    ) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server did not become ready; see {log_path}")
                time.sleep(0.1)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux), None where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def python() -> str:
    return sys.executable
