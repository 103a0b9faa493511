"""The load side of the serving benchmarks: V2 requests built once as the bytes that go on the wire,
written one at a time on keep-alive connections, each answer framed by its Content-Length. Raw
HTTP/1.1 rather than a client library because the benchmarks measure the server: a library's own
work per request (building headers, parsing them into objects, its connection pool) would land in
every latency and, on a small machine, take CPU from the server being measured."""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from typing import cast


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's when installed (as the router runs on), else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def post(path: str, body: bytes) -> bytes:
    """A whole JSON POST, head and body, as written on the connection."""
    return (f"POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode() + body


class KeepAlive(asyncio.Protocol, ABC):
    """One request at a time on one keep-alive connection (a subclass writes it on `transport`):
    `answered` gets the time the whole answer was in, read before anything else is done with it, and,
    unless the status was 200, the answer's head."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.need = -1  # bytes of the answer in flight, head and body, once its head is in
        self.error: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    @abstractmethod
    def answered(self, at: float, error: str | None) -> None: ...

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.need < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end + 2]).lower()
            self.error = None if head.startswith(b"http/1.1 200") else head[:200].decode(errors="replace")
            start = head.index(b"content-length:") + 15
            self.need = end + 4 + int(head[start:head.index(b"\r\n", start)])
        if len(self.buffer) < self.need:
            return
        at = time.perf_counter()
        del self.buffer[:self.need]
        self.need = -1
        self.answered(at, self.error)
