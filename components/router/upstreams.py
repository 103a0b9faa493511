"""Keep-alive connections to one upstream (a model server) and the exchanges that run on them.

An exchange is one request sent upstream and its response streamed back to a sink (the client's
connection, or nothing for a mirror copy) as the bytes arrive. Everything here runs in callbacks of the
event loop: no task and no buffer per request unless a connection has to be opened.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import Protocol, cast

from http1 import (
    CHUNKED,
    HEAD_END,
    LENGTH,
    MAX_HEAD,
    NO_BODY,
    UNTIL_CLOSE,
    BadMessage,
    ChunkedScanner,
    parse_response_head,
)
from router_metrics import TrafficStats


class Sink(Protocol):
    def write(self, data: bytes) -> None: ...

    def complete(self, exchange: Exchange) -> None: ...

    def fail(self, exchange: Exchange, status: int) -> None: ...


class Exchange:
    """One request on its way through an upstream; `head_sent` once the sink has had bytes of the answer."""

    __slots__ = ("request", "method", "extra_headers", "stats", "sink", "started", "retried", "head_sent", "upstream")

    def __init__(self, request: bytes, method: bytes, extra_headers: bytes, stats: TrafficStats | None,
                 sink: Sink, started: float) -> None:
        self.request = request
        self.method = method
        self.extra_headers = extra_headers  # the router's own response headers, each ending in CRLF
        self.stats = stats
        self.sink = sink
        self.started = started
        self.retried = False
        self.head_sent = False
        self.upstream: UpstreamConnection | None = None


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection: at most one exchange at a time (no pipelining upstream)."""

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.exchange: Exchange | None = None
        self.buffer = bytearray()
        self.framing = NO_BODY
        self.remaining = 0
        self.scanner: ChunkedScanner | None = None
        self.status = 0
        self.keep = True
        self.reused = False
        self.received = False
        self.paused = False
        self.idle_since = 0.0
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def start(self, exchange: Exchange) -> None:
        assert self.transport is not None
        self.exchange = exchange
        exchange.upstream = self
        self.framing = NO_BODY
        self.status = 0
        self.received = False
        self.timer = self.pool.loop.call_later(self.pool.timeout, self._timed_out)
        self.transport.write(exchange.request)

    def pause(self, paused: bool) -> None:
        """Flow control from a slow client: stop reading the upstream until the client drains."""
        if self.transport is not None and paused != self.paused:
            self.paused = paused
            (self.transport.pause_reading if paused else self.transport.resume_reading)()

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:  # nothing was asked: the upstream is confused, do not reuse it
            self._close()
            return
        self.received = True
        try:
            while data:
                if self.status == 0:
                    data = self._head(exchange, data)
                    if self.status == 0 or self.exchange is not exchange:  # head incomplete, or all done
                        return
                    if self.framing == NO_BODY:
                        if self.status >= 200:
                            self.keep = self.keep and not data
                            self._finish(exchange)
                            return
                        self.status = 0  # an interim response: the final head follows
                        continue
                if self.framing == LENGTH:
                    if len(data) < self.remaining:
                        self.remaining -= len(data)
                        exchange.sink.write(data)
                        return
                    if len(data) > self.remaining:  # bytes after the message: nothing is pipelined here
                        self.keep = False
                    exchange.sink.write(data[:self.remaining])
                    self._finish(exchange)
                    return
                if self.framing == CHUNKED:
                    assert self.scanner is not None
                    end = self.scanner.feed(data)
                    if end < 0:
                        exchange.sink.write(data)
                        return
                    self.keep = self.keep and end == len(data)
                    exchange.sink.write(data[:end])
                    self._finish(exchange)
                    return
                exchange.sink.write(data)  # UNTIL_CLOSE: the end is connection_lost
                return
        except BadMessage:
            self._fail(502)

    def _head(self, exchange: Exchange, data: bytes) -> bytes:
        """Parse the head once it is all in; returns the bytes after it (status stays 0 until then)."""
        buffer = self.buffer
        if buffer:
            buffer += data
            data = bytes(buffer)
        end = data.find(HEAD_END)
        if end < 0:
            if not buffer:
                buffer += data
            if len(buffer) > MAX_HEAD:
                raise BadMessage("response head too long")
            return b""
        buffer.clear()
        end += 4
        self.status, self.framing, self.remaining, close, head = parse_response_head(data[:end], exchange.method)
        self.keep = not close
        if self.framing == CHUNKED:
            self.scanner = ChunkedScanner()
        rest = data[end:]
        if self.status >= 200 and self.framing != NO_BODY and rest:  # one write: head and body together
            return self._with_head(exchange, head, rest)
        exchange.sink.write(head + exchange.extra_headers + b"\r\n" if self.status >= 200 else head + b"\r\n")
        exchange.head_sent = self.status >= 200 or exchange.head_sent
        return rest

    def _with_head(self, exchange: Exchange, head: bytes, rest: bytes) -> bytes:
        """Send the head with the start of the body; returns what is left for the body framing."""
        prefix = head + exchange.extra_headers + b"\r\n"
        exchange.head_sent = True
        if self.framing == LENGTH and len(rest) >= self.remaining:
            self.keep = self.keep and len(rest) == self.remaining
            exchange.sink.write(prefix + rest[:self.remaining])
            self._finish(exchange)
            return b""
        if self.framing == CHUNKED:
            assert self.scanner is not None
            end = self.scanner.feed(rest)
            if end >= 0:
                self.keep = self.keep and end == len(rest)
                exchange.sink.write(prefix + rest[:end])
                self._finish(exchange)
                return b""
        elif self.framing == LENGTH:
            self.remaining -= len(rest)
        exchange.sink.write(prefix + rest)
        return b""

    def _finish(self, exchange: Exchange) -> None:
        self.exchange = None
        if self.timer is not None:
            self.timer.cancel()
        if exchange.stats is not None:
            exchange.stats.observe(self.status, perf_counter() - exchange.started)
        self.pool.release(self)  # first, so that the sink's next request may take this very connection
        exchange.sink.complete(exchange)

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.discard(self)
        self.transport = None
        exchange = self.exchange
        if exchange is None:
            return
        if self.framing == UNTIL_CLOSE and self.status >= 200:
            self.keep = False
            self._finish(exchange)
        elif not self.received and self.reused and not exchange.retried:
            # A kept-alive connection the upstream closed as the request went out: the request was never
            # answered, so it goes once more on a fresh connection (as every HTTP client does).
            self.exchange = None
            if self.timer is not None:
                self.timer.cancel()
            exchange.retried = True
            self.pool.connect(exchange)
        else:
            self._fail(502)

    def _timed_out(self) -> None:
        self._fail(504)

    def _fail(self, status: int) -> None:
        exchange, self.exchange = self.exchange, None
        if self.timer is not None:
            self.timer.cancel()
        self._close()
        if exchange is not None:
            self.pool.failed(exchange, status)

    def _close(self) -> None:
        self.pool.discard(self)
        if self.transport is not None:
            self.transport.abort()
            self.transport = None


class UpstreamPool:
    """Idle keep-alive connections to one upstream, most recently used first (warm, and least likely to
    be closed by the upstream's own idle timeout, which the pool stays under)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, host: str, port: int, timeout: float, idle_seconds: float) -> None:
        self.loop = loop
        self.host = host
        self.port = port
        self.timeout = timeout
        self.idle_seconds = idle_seconds
        self.idle: list[UpstreamConnection] = []
        self.retired = False

    def send(self, exchange: Exchange) -> None:
        idle = self.idle
        if idle:
            now = self.loop.time()
            while idle:
                connection = idle.pop()
                if connection.transport is not None and now - connection.idle_since < self.idle_seconds:
                    connection.reused = True
                    connection.start(exchange)
                    return
                connection._close()
        self.connect(exchange)

    def connect(self, exchange: Exchange) -> None:
        self.loop.create_task(self._connect(exchange))

    async def _connect(self, exchange: Exchange) -> None:
        try:
            _, connection = await asyncio.wait_for(
                self.loop.create_connection(lambda: UpstreamConnection(self), self.host, self.port), self.timeout)
        except (OSError, asyncio.TimeoutError):
            self.failed(exchange, 502)
            return
        connection.start(exchange)

    def release(self, connection: UpstreamConnection) -> None:
        if connection.paused:
            connection.pause(False)
        if self.retired or not connection.keep or connection.transport is None:
            connection._close()
            return
        connection.idle_since = self.loop.time()
        self.idle.append(connection)

    def discard(self, connection: UpstreamConnection) -> None:
        if connection in self.idle:
            self.idle.remove(connection)

    def failed(self, exchange: Exchange, status: int) -> None:
        if exchange.stats is not None:
            exchange.stats.observe(status, perf_counter() - exchange.started)
        exchange.sink.fail(exchange, status)

    def retire(self) -> None:
        """No longer in the table: close what is idle; connections still busy close when they finish."""
        self.retired = True
        while self.idle:
            self.idle.pop()._close()
