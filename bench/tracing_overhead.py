"""Per-command cost of tracing with no exporter, against tracing off.

    python -m bench.tracing_overhead [COMMANDS]

Runs the interviews app in-process (TestClient, SQLite) once with
``OTEL_SDK_DISABLED=true`` and once with the SDK on and ``OTEL_TRACES_EXPORTER``
unset, each in a fresh interpreter (the tracer provider is per process), and
prints the median time of one ``POST /interviews`` and the process's CPU time
per command (steadier than wall time on a shared machine: SQLite's fsync
dominates the latter).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def measure(commands: int) -> dict[str, float]:
    from fastapi.testclient import TestClient

    from services.common.auth import mint_token
    from services.interviews.bootstrap import InterviewsContainer, create_app
    from services.interviews.settings import InterviewsSettings

    data_dir = Path(tempfile.mkdtemp())
    settings = InterviewsSettings(data_dir=data_dir, database_url=None, auth_secret="s" * 32)
    headers = {"Authorization": "Bearer " + mint_token("s" * 32, "client-1", "client")}
    times = []
    cpu = 0.0
    with TestClient(create_app(InterviewsContainer(settings))) as http:
        for i in range(commands + 50):
            if i == 50:
                cpu = time.process_time()
            body = {"job_id": "job-bench", "freelancer_id": f"f-{i}", "message": "hi"}
            start = time.perf_counter()
            response = http.post("/interviews", json=body, headers=headers)
            elapsed = time.perf_counter() - start
            assert response.status_code == 201, response.text
            if i >= 50:  # warmed up
                times.append(elapsed * 1000)
        cpu = time.process_time() - cpu
    return {
        "median_ms": statistics.median(times),
        "cpu_ms": cpu * 1000 / commands,  # every thread of the process, per command
    }


def main() -> None:
    if os.environ.get("_TRACING_BENCH_CHILD"):
        print(json.dumps(measure(int(sys.argv[1]))))
        return
    commands = sys.argv[1] if len(sys.argv) > 1 else "1000"
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    base |= {"_TRACING_BENCH_CHILD": "1", "DATABASE_URL": "", "KAFKA_BOOTSTRAP_SERVERS": ""}
    results = {}
    for label, extra in (("off", {"OTEL_SDK_DISABLED": "true"}), ("no exporter", {})):
        out = subprocess.run(
            [sys.executable, "-m", "bench.tracing_overhead", commands],
            env=base | extra,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results[label] = json.loads(out.strip().splitlines()[-1])
        print(f"tracing {label}: {results[label]}")
    off, on = results["off"]["cpu_ms"], results["no exporter"]["cpu_ms"]
    print(f"CPU per command: {on - off:+.3f} ms ({(on / off - 1) * 100:+.1f}%) with tracing")


if __name__ == "__main__":
    main()
