"""Where a command's server time goes: ``python -m bench.profile_commands``.

Not a figure of ``make bench``: a tool for the command path. It serves the
interviews API in one process (one worker; PostgreSQL in a fresh database, or
SQLite files with ``--sqlite``), drives it with the bench's load generator from
another process (the ``commands`` figure's hiring flow, 16 clients) and reports
commands/s and server CPU per command. With ``--py-spy FILE`` the server is
sampled while it holds the GIL and the functions with the largest inclusive and
exclusive shares are printed (the CPU picture). With ``--profile FILE`` it runs
under cProfile in every thread (the event loop and the thread pool's workers),
top of the merged profile by cumulative time printed: wall time, so waits
dominate, and cProfile inflates call-heavy code; take the CPU figure from a run
without it.

``--tree DIR`` serves another checkout's code (e.g. main's, exported with ``git
archive``) with this tree's load generator, for a before/after within one run:
``python -m bench.profile_commands --tree /tmp/main --tree .``.
"""

from __future__ import annotations

import argparse
import os
import pstats
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .commands import CLIENTS, hiring_flow, server_env
from .common import free_port, fresh_database, process_cpu_seconds, python, server
from .loadgen import run_load

ROOT = Path(__file__).resolve().parent.parent
SERVER = str(Path(__file__).with_name("profile_server.py"))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_commands")
    parser.add_argument("--sqlite", action="store_true", help="SQLite files, not PostgreSQL")
    parser.add_argument(
        "--up",
        action="store_true",
        help="serve `interviewctl up` (the embedded default: every service and its "
        "consumers in one process, on SQLite files), not the interviews API alone",
    )
    parser.add_argument("--profile", metavar="FILE", help="cProfile the server, stats to FILE")
    parser.add_argument(
        "--py-spy", metavar="FILE", help="sample the server with py-spy --gil, stacks to FILE"
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--rounds", type=int, default=1, help="alternate the trees this often")
    parser.add_argument(
        "--tree", action="append", help="checkout whose services/ to serve (default: this one)"
    )
    args = parser.parse_args(argv)
    trees = [Path(t).resolve() for t in args.tree or [str(ROOT)]]
    sqlite = args.sqlite or args.up
    admin_url = None if sqlite else os.environ.get("DATABASE_URL")
    if not sqlite and not admin_url:
        raise SystemExit("DATABASE_URL is not set (source /tmp/services.env), or pass --sqlite")
    print(f"load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    for round_ in range(args.rounds):
        for tree in trees:
            with _store(admin_url) as (url, tmp):
                rate, cpu_ms, errors = measure(
                    tree, url, tmp, args.warmup, args.seconds, args.profile, args.py_spy, args.up
                )
            print(
                f"round {round_ + 1} {tree}: {rate:.0f} commands/s, server CPU {cpu_ms:.3f} ms"
                f" per command, {errors} errors (load average {os.getloadavg()[0]:.2f})",
                flush=True,
            )
            if args.profile:
                stats = pstats.Stats(args.profile)
                stats.sort_stats("cumulative").print_stats(args.top)
                stats.sort_stats("tottime").print_stats(args.top)
            if args.py_spy:
                print_samples(Path(args.py_spy), args.top)
    return 0


@contextmanager
def _store(admin_url: str | None) -> Iterator[tuple[str | None, Path]]:
    with tempfile.TemporaryDirectory() as tmp:
        if admin_url is None:
            yield None, Path(tmp)
        else:
            with fresh_database(admin_url, "profile") as url:
                yield url, Path(tmp)


def measure(
    tree: Path,
    url: str | None,
    tmp: Path,
    warmup: float,
    seconds: float,
    profile: str | None,
    samples: str | None = None,
    up: bool = False,
) -> tuple[float, float, int]:
    """Commands/s, server CPU ms per command and errors of one server (``up``: the
    whole embedded platform), driven by the ``commands`` figure's hiring flow."""
    secret = secrets.token_urlsafe(32)
    port = free_port()
    env = {**server_env(url, tmp, secret), "PYTHONPATH": str(tree)}

    # The server imports ``services`` from ``tree`` only (not from this checkout).
    if up:
        if profile:
            raise SystemExit("--profile serves the interviews API alone; with --up use --py-spy")
        code = (
            f"import sys; sys.path.insert(0, {str(tree)!r}); from services.cli import main; main()"
        )
        args = [python(), "-c", code, "up", "--port", str(port)]
    else:
        code = f"import runpy, sys; sys.path.insert(0, {str(tree)!r}); runpy.run_path({SERVER!r})"
        args = [python(), "-c", code, str(port), profile or ""]
    with server(args, port, env, tmp / "server.log", ready_path="/readyz") as proc:
        spy = None
        if samples:
            spy = subprocess.Popen(
                [str(Path(python()).with_name("py-spy")), "record", "--gil", "--function",
                 "--format", "raw", "--rate", "200", "--pid", str(proc.pid), "--output", samples,
                 "--duration", str(int(warmup + seconds - 1))],
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
        before = process_cpu_seconds(proc.pid)
        rates, stats = run_load("127.0.0.1", port, CLIENTS, hiring_flow(secret), warmup, seconds, 1)
        if spy is not None:
            spy.wait(60)
        after = process_cpu_seconds(proc.pid)
        commands = len(stats.done)
    assert before is not None and after is not None
    return rates[0], (after - before) * 1000 / commands, stats.errors


def print_samples(path: Path, top: int) -> None:
    """py-spy's collapsed stacks as the functions with the largest share of the
    samples, inclusive (cumulative) and exclusive (self)."""
    inclusive: dict[str, int] = {}
    exclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = [f.rsplit(" (", 1)[0] + " " + f.rsplit("/", 1)[-1] for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
        exclusive[frames[-1]] = exclusive.get(frames[-1], 0) + n
    print(f"{total} samples holding the GIL")
    for title, table in (("cumulative", inclusive), ("self", exclusive)):
        print(f"--- {title}")
        for frame, n in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
            print(f"{100 * n / total:5.1f}%  {frame}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
