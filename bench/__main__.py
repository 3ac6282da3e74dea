"""``python -m bench``: runs every module in BENCHES, writes bench/results.json.

A bench module exposes ``run(ctx: bench.common.Context) -> list[dict]`` and
prints one line per figure (``bench.common.figure`` / ``print_figure``).
Add a module by appending its name here.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .common import Context

BENCHES: list[str] = [
    "bench.commands",
    "bench.audit",
]

RESULTS = Path(__file__).with_name("results.json")


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu}


def main(argv: list[str]) -> int:
    selected = [b for b in BENCHES if not argv or any(a in b for a in argv)]
    ctx = Context()
    figures: list[dict[str, Any]] = []
    failed: list[str] = []
    for name in selected:
        print(f"== {name}", flush=True)
        started = time.monotonic()
        try:
            module = importlib.import_module(name)
            figures.extend({"bench": name, **f} for f in module.run(ctx))
        except Exception as error:  # noqa: BLE001 - one broken bench must not hide the rest
            failed.append(name)
            print(f"  !! {name} failed: {type(error).__name__}: {error}", flush=True)
        print(f"  ({time.monotonic() - started:.0f}s)", flush=True)
    RESULTS.write_text(
        json.dumps(
            {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": machine(),
                "figures": figures,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
