"""uvicorn's HTTP protocol, writing each response to the socket once.

uvicorn writes a response's status line and headers, then its body: two
writes, two system calls and two TCP segments for every small JSON answer.
Here the connection's transport holds the status line and headers until the
body's first write and writes them together. Headers with no body in the same
turn of the event loop leave at its end: nothing waits longer, the order of the
bytes is kept, and closing the connection writes what is held first. (Holding
every write to the end of the turn instead delays each answer behind the other
requests served in that turn: fewer commands a second.)
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class OneWriteTransport:
    """A transport that holds a response's status line and headers until the
    body's first write, and writes them together (or alone at the end of the
    loop's turn, if no body follows in it)."""

    __slots__ = ("_flush", "_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._flush: asyncio.Handle | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if self._flush is not None:
                self._flush.cancel()
                self._flush = None
            self._transport.write(held + bytes(data))
        elif data[:7] == b"HTTP/1.":  # a status line and headers: the body comes next
            self._held = bytes(data)
            self._flush = self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        """Writes what is held."""
        held, self._held, self._flush = self._held, None, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        held = len(self._held) if self._held is not None else 0
        return self._transport.get_write_buffer_size() + held

    def __getattr__(self, name: str) -> Any:
        # Everything else (is_closing, pause_reading, get_extra_info, abort, ...)
        # is the socket transport's own.
        return getattr(self._transport, name)


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a ``OneWriteTransport``."""

    # ignore[override]: uvicorn declares the parameter as asyncio.Transport but
    # typeshed's BaseProtocol takes a BaseTransport; the socket's is a Transport.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # ignore[arg-type]: OneWriteTransport is a Transport by delegation
        # (``__getattr__``), not by inheritance.
        super().connection_made(OneWriteTransport(transport, self.loop))  # type: ignore[arg-type]
