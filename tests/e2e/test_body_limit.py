"""Bodies over 64 KiB are refused with 413 before they are read in full, by
every service and by ``interviewctl up``: a declared length over the limit at
once, a chunked body as soon as the count passes it."""

from __future__ import annotations

import asyncio
import json
import select
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from services.common.web import MAX_BODY_BYTES
from tests.e2e.servers import SERVICES, build_app, serving

pytestmark = pytest.mark.e2e

FIFTY_MB = 50 * 1024 * 1024
CHUNK = 64 * 1024
# A path of each service that takes a JSON body (projections has none: any path will do).
BODY_PATHS = {
    "interviews": "/interviews",
    "projections": "/views/interviews",
    "notifications": "/webhooks",
    "platform": "/interviews",
}


def _status_and_body(raw: bytes) -> tuple[int, dict[str, object]]:
    assert raw.startswith(b"HTTP/1.1 "), f"no answer from the server: {raw[:200]!r}"
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    headers = head.decode("latin-1").lower()
    if "transfer-encoding: chunked" in headers:
        size, _, rest = body.partition(b"\r\n")
        body = rest[: int(size, 16)]
    return status, json.loads(body)


def _read_response(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}") and b"0\r\n\r\n" not in data:
        try:
            part = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not part:
            break
        data += part
    return data


def _stream_chunked(base_url: str, path: str) -> tuple[bytes, int, float]:
    """Sends a 50 MB chunked body until the server answers; returns the answer,
    the bytes sent and the seconds it took."""
    url = urlparse(base_url)
    started = time.monotonic()
    sent = 0
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nAuthorization: Bearer x\r\n\r\n".encode()
        )
        chunk = f"{CHUNK:x}\r\n".encode() + b" " * CHUNK + b"\r\n"
        while sent < FIFTY_MB:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += CHUNK
        return _read_response(sock, 10), sent, time.monotonic() - started


@pytest.mark.parametrize("service", SERVICES)
def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(
    service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serving(build_app(service, tmp_path, monkeypatch)) as base_url:
        url = urlparse(base_url)
        with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
            # Only the headers: a server that waited for the body would never answer.
            sock.sendall(
                f"POST {BODY_PATHS[service]} HTTP/1.1\r\nHost: {url.netloc}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {FIFTY_MB}\r\n\r\n".encode()
            )
            status, body = _status_and_body(_read_response(sock, 5))

    assert status == 413
    assert body["code"] == "payload_too_large"
    assert "64 KiB" in str(body["detail"])


@pytest.mark.parametrize("service", ["interviews", "notifications", "platform"])
def test_a_50_mb_chunked_body_is_cut_off_at_the_limit(
    service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serving(build_app(service, tmp_path, monkeypatch)) as base_url:
        raw, sent, seconds = _stream_chunked(base_url, BODY_PATHS[service])
        status, body = _status_and_body(raw)
        # The server still answers afterwards: nothing was left stuck.
        assert httpx.get(f"{base_url}/healthz", timeout=5).status_code == 200

    assert status == 413, raw[:300]
    assert body["code"] == "payload_too_large"
    # The answer came while the body was still being sent: a few MB of socket
    # buffers at most, not the 50 MB.
    assert sent < 10 * 1024 * 1024, f"sent {sent:,} bytes before the answer"
    assert seconds < 10


def test_the_app_reads_no_further_than_the_first_chunk_past_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = build_app("interviews", tmp_path, monkeypatch)
    consumed = 0

    async def fifty_megabytes() -> AsyncIterator[bytes]:
        nonlocal consumed
        for _ in range(FIFTY_MB // CHUNK):
            consumed += 1
            yield b" " * CHUNK

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post(
                "/interviews",
                content=fifty_megabytes(),
                headers={"Content-Type": "application/json"},
            )

    response = asyncio.run(post())

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert consumed == MAX_BODY_BYTES // CHUNK + 1


def test_a_body_just_under_the_limit_is_still_read_and_validated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from services.common.auth import mint_token
    from tests.conftest import TEST_SECRET

    token = mint_token(TEST_SECRET, "client-1", "client")
    body = json.dumps({"job_id": "j", "freelancer_id": "f", "pad": " " * (MAX_BODY_BYTES - 100)})
    assert len(body) <= MAX_BODY_BYTES
    with TestClient(build_app("interviews", tmp_path, monkeypatch)) as api:
        response = api.post(
            "/interviews",
            content=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )

    assert response.status_code != 413
    assert response.status_code < 500
