"""A small HTTP/1.1 load generator: N keep-alive connections on one asyncio
loop, each running a scenario in a loop. Raw sockets rather than httpx, so
that the generator's own CPU (on the same small machine) stays low."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


class HttpError(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:200]!r}")
        self.status = status


class Connection:
    """One keep-alive connection; ``call`` sends a request and reads the answer."""

    def __init__(self, host: str, port: int, stats: Stats) -> None:
        self.host, self.port, self.stats = host, port, stats
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        """JSON in, JSON out; non-2xx raises :class:`HttpError`. Counted in stats."""
        payload = b"" if body is None else json.dumps(body).encode()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body is not None:
            lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(payload)}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
        started = time.perf_counter()
        if self._writer is None:
            await self._connect()
        assert self._reader is not None and self._writer is not None
        self._writer.write(request)
        status_line = await self._reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        status = int(status_line.split()[1])
        length, close = 0, False
        while True:
            line = await self._reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and b"close" in value.lower():
                close = True
            elif name == b"transfer-encoding":
                raise NotImplementedError("chunked responses are not expected here")
        data = await self._reader.readexactly(length) if length else b""
        if close:
            await self.close()
        self.stats.record(time.perf_counter() - started, ok=200 <= status < 300)
        if not 200 <= status < 300:
            raise HttpError(status, data)
        return json.loads(data) if data else None


@dataclass
class Stats:
    done: list[float] = field(default_factory=list)  # completion times (monotonic)
    latencies: list[float] = field(default_factory=list)
    errors: int = 0

    def record(self, latency: float, ok: bool) -> None:
        if ok:
            self.done.append(time.monotonic())
            self.latencies.append(latency)
        else:
            self.errors += 1


def window_rates(done: list[float], start: float, seconds: float, windows: int) -> list[float]:
    """Completions per second in consecutive windows of ``seconds`` from ``start``."""
    counts = [0] * windows
    for t in done:
        i = int((t - start) // seconds)
        if 0 <= i < windows:
            counts[i] += 1
    return [c / seconds for c in counts]


Scenario = Callable[[Connection, int, int], Awaitable[None]]


async def _drive(
    host: str, port: int, clients: int, scenario: Scenario, until: float, stats: Stats
) -> None:
    async def one(k: int) -> None:
        conn = Connection(host, port, stats)
        n = 0
        try:
            while time.monotonic() < until:
                n += 1
                try:
                    await scenario(conn, k, n)
                except HttpError:
                    pass  # counted as an error in stats
                except (ConnectionError, asyncio.IncompleteReadError):
                    stats.errors += 1
                    await conn.close()
        finally:
            await conn.close()

    await asyncio.gather(*(one(k) for k in range(clients)))


def run_load(
    host: str,
    port: int,
    clients: int,
    scenario: Scenario,
    warmup: float,
    seconds: float,
    windows: int,
) -> tuple[list[float], Stats]:
    """Runs ``clients`` loops for warmup + windows x seconds; rates per window."""
    stats = Stats()
    start = time.monotonic()
    asyncio.run(_drive(host, port, clients, scenario, start + warmup + seconds * windows, stats))
    measured_from = start + warmup
    stats.latencies = [
        lat for lat, t in zip(stats.latencies, stats.done, strict=True) if t >= measured_from
    ]
    return window_rates(stats.done, measured_from, seconds, windows), stats
