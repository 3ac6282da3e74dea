"""``interviewctl up`` prints one ``ready: URL`` line, and only once every service is ready."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services import cli


class _Platform:
    """An ASGI app whose ``/readyz`` answers 503 until its third call."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["path"] == "/readyz"
        self.calls += 1
        status = 200 if self.calls >= 3 else 503
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def test_the_ready_line_comes_once_readyz_answers_200(capsys: pytest.CaptureFixture[str]) -> None:
    platform = _Platform()
    asyncio.run(cli._announce_ready(platform, "http://127.0.0.1:8123"))
    assert platform.calls == 3
    out = capsys.readouterr().out.splitlines()
    assert out == ["ready: http://127.0.0.1:8123  (API docs: http://127.0.0.1:8123/docs)"]


@pytest.mark.parametrize(
    ("host", "shown"),
    [("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"), ("::", "127.0.0.1"), ("::1", "[::1]")],
)
def test_the_url_names_a_host_a_browser_can_open(host: str, shown: str) -> None:
    assert cli._url_host(host) == shown
