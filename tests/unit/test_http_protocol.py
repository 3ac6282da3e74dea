"""``OneWriteTransport``: a response's headers and body reach the socket as one
write, in order; nothing is held past the loop's turn or lost when the
connection closes."""

from __future__ import annotations

import asyncio

import pytest

from services.common.http_protocol import OneWriteTransport

pytestmark = pytest.mark.unit


class Socket:
    """A transport that remembers each write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def test_headers_and_their_body_leave_as_one_write_and_nothing_waits_past_the_turn() -> None:
    async def run() -> list[bytes]:
        socket = Socket()
        transport = OneWriteTransport(socket, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        assert socket.writes == []  # held for the body
        assert transport.get_write_buffer_size() == 38
        transport.write(b"{}")
        assert len(socket.writes) == 1  # at once, with the body
        transport.write(b"more")  # anything else goes straight through
        transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await asyncio.sleep(0)  # no body this turn: the headers leave alone
        return socket.writes

    writes = asyncio.run(run())

    assert writes == [
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}",
        b"more",
        b"HTTP/1.1 204 No Content\r\n\r\n",
    ]


def test_closing_writes_what_is_held_first_and_nothing_goes_to_a_closed_socket() -> None:
    async def run() -> Socket:
        socket = Socket()
        transport = OneWriteTransport(socket, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.close()
        assert socket.writes == [b"HTTP/1.1 200 OK\r\n\r\n"] and socket.closed
        await asyncio.sleep(0)  # the scheduled flush finds nothing held
        return socket

    socket = asyncio.run(run())

    assert socket.writes == [b"HTTP/1.1 200 OK\r\n\r\n"]


def test_everything_else_is_the_socket_transports_own() -> None:
    async def run() -> str:
        transport = OneWriteTransport(Socket(), asyncio.get_running_loop())  # type: ignore[arg-type]
        return str(transport.get_extra_info("peername"))

    assert asyncio.run(run()) == "info:peername"
