"""The router's front: client connections, the choice of a revision per request, mirroring, reloads.

Inference requests (`POST /v2/models/{model}[/versions/{v}]/infer`) are split by weight and mirrored,
and they are what the metrics count. `/v2/health/live` is the router's own; `/v2/health/ready` is ready
when every revision with a weight is. Any other path (model metadata, repository calls) goes to the
revision with the largest weight, the one most clients are talking to anyway.

Requests on one client connection are answered in order (HTTP/1.1 pipelining included): the next one
is read from the buffer only when the previous answer is out.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from time import perf_counter
from typing import cast

from http1 import HEAD_END, MAX_HEAD, BadMessage, ChunkedScanner, RequestHead, simple_response
from router_metrics import Registry
from routing_table import Percent, RoutingTable, SmoothWeighted, TableError, load_table
from upstreams import Exchange, UpstreamPool

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
CLOSE_HEADER = b"connection: close\r\n"
READY_PATH = b"/v2/health/ready"
PROBE_SECONDS = 2.0
LIVE_PATH = b"/v2/health/live"


class Route:
    """A revision of the table in force, bound to its upstream's pool and its metrics."""

    __slots__ = ("name", "weight", "pool", "live", "mirrored", "header")

    def __init__(self, name: str, weight: int, pool: UpstreamPool, registry: Registry) -> None:
        self.name = name
        self.weight = weight
        self.pool = pool
        self.live = registry.stats(name, "live")
        self.mirrored = registry.stats(name, "mirror")
        self.header = b"x-loom-revision: " + name.encode() + b"\r\n"


class Routes:
    """One routing table, ready to route: a new one replaces the old at once on reload, while exchanges
    already under way finish on the routes they started with."""

    def __init__(self, table: RoutingTable, pools: dict[tuple[str, int], UpstreamPool], registry: Registry) -> None:
        self.all = [Route(r.name, r.weight, pools[(r.host, r.port)], registry) for r in table.revisions]
        self._chooser = SmoothWeighted([r.weight for r in self.all])
        weighted = [r for r in self.all if r.weight]
        self.default = max(weighted, key=lambda r: r.weight) if weighted else None
        mirror = table.mirror
        self.mirror = next(r for r in self.all if r.name == mirror.revision) if mirror and mirror.percent else None
        self.mirror_share = Percent(mirror.percent if mirror else 0)

    def pick(self) -> Route | None:
        index = self._chooser.pick()
        return self.all[index] if index >= 0 else None


class Router:
    def __init__(self, loop: asyncio.AbstractEventLoop, table_path: Path, registry: Registry, timeout: float,
                 idle_seconds: float, mirror_limit: int, max_body: int) -> None:
        self.loop = loop
        self.table_path = table_path
        self.registry = registry
        self.timeout = timeout
        self.idle_seconds = idle_seconds
        self.mirror_limit = mirror_limit
        self.max_body = max_body
        self.pools: dict[tuple[str, int], UpstreamPool] = {}
        self.signature = self._signature()
        self.table = load_table(table_path)
        self.routes = self._bind(self.table)
        self.clients: set[ClientConnection] = set()
        self.in_flight = 0
        self.served = 0
        self.closing = False
        self.mirrors_in_flight = 0
        self.mirror_sink = MirrorSink(self)

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            stat = os.stat(self.table_path)
        except OSError:
            return None
        return stat.st_ino, stat.st_mtime_ns, stat.st_size

    def _bind(self, table: RoutingTable) -> Routes:
        wanted = {(r.host, r.port) for r in table.revisions}
        for address in [a for a in self.pools if a not in wanted]:
            self.pools.pop(address).retire()
        for host, port in wanted - self.pools.keys():
            self.pools[(host, port)] = UpstreamPool(self.loop, host, port, self.timeout, self.idle_seconds)
        routes = Routes(table, self.pools, self.registry)
        self.registry.weights = {r.name: r.weight for r in routes.all}
        self.registry.mirror_percent = {table.mirror.revision: table.mirror.percent} if table.mirror else {}
        return routes

    def check_table(self) -> None:
        """Reload the table if its file changed (the writer renames a new file in: new inode, new mtime).
        A table that cannot be read or is wrong is logged and counted; the one in force stays."""
        signature = self._signature()
        if signature == self.signature:
            return
        self.signature = signature
        try:
            table = load_table(self.table_path)
        except TableError as error:
            self.registry.reloads["error"] += 1
            print(f"routing table not reloaded, keeping the one in force: {error}", file=sys.stderr, flush=True)
            return
        self.table, self.routes = table, self._bind(table)
        self.registry.reloads["ok"] += 1
        print(f"routing table reloaded: {describe(table)}", file=sys.stderr, flush=True)

    def dispatch(self, client: ClientConnection, head: RequestHead, message: bytes) -> None:
        self.in_flight += 1
        target = head.target
        path = target.split(b"?", 1)[0] if b"?" in target else target
        routes = self.routes
        extra = CLOSE_HEADER if client.close_after else b""
        if head.method == b"POST" and path.startswith(b"/v2/models/") and path.endswith(b"/infer"):
            route = routes.pick()
            if route is None:
                client.respond(503, b'{"error": "no revision has a weight"}')
                return
            started = perf_counter()
            client.exchange = exchange = Exchange(message, head.method, route.header + extra, route.live, client, started)
            route.pool.send(exchange)
            mirror = routes.mirror
            if mirror is not None and mirror is not route and routes.mirror_share.take():
                if self.mirrors_in_flight >= self.mirror_limit:
                    dropped = self.registry.mirror_dropped
                    dropped[mirror.name] = dropped.get(mirror.name, 0) + 1
                else:
                    self.mirrors_in_flight += 1
                    mirror.pool.send(Exchange(message, head.method, b"", mirror.mirrored, self.mirror_sink, started))
        elif path == LIVE_PATH:
            client.respond(200, b'{"live": true}')
        elif path == READY_PATH:
            self.loop.create_task(self._ready(client))
        elif routes.default is None:
            client.respond(503, b'{"error": "no revision has a weight"}')
        else:
            route = routes.default
            client.exchange = exchange = Exchange(message, head.method, route.header + extra, None, client,
                                                  perf_counter())
            route.pool.send(exchange)

    async def _ready(self, client: ClientConnection) -> None:
        weighted = [r for r in self.routes.all if r.weight]
        answers = await asyncio.gather(*(probe(r.pool.host, r.pool.port, PROBE_SECONDS) for r in weighted))
        not_ready = [r.name for r, ready in zip(weighted, answers) if not ready]
        if weighted and not not_ready:
            client.respond(200, b'{"ready": true}')
        else:
            names = ", ".join(f'"{name}"' for name in not_ready)
            client.respond(503, f'{{"ready": false, "notReady": [{names}]}}'.encode())

    def request_done(self) -> None:
        self.in_flight -= 1
        self.served += 1

    def close(self) -> None:
        """Shutting down: idle clients are let go now, busy ones after the answer they are waiting for,
        which tells them so when its head is not out yet."""
        self.closing = True
        for client in list(self.clients):
            exchange = client.exchange
            if client.transport is None:
                continue
            if not client.busy:
                client.transport.close()
            elif exchange is not None and not exchange.head_sent and not client.close_after:
                exchange.extra_headers += CLOSE_HEADER
                client.close_after = True


async def probe(host: str, port: int, timeout: float) -> bool:
    """Whether the model server answers 200 on its own readiness path."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, asyncio.TimeoutError):
        return False
    try:
        writer.write(b"GET " + READY_PATH + b" HTTP/1.1\r\nhost: " + host.encode() + b"\r\nconnection: close\r\n\r\n")
        status_line = await asyncio.wait_for(reader.readline(), timeout)
        return status_line[9:12] == b"200"
    except (OSError, asyncio.TimeoutError):
        return False
    finally:
        writer.close()


def describe(table: RoutingTable) -> str:
    revisions = ", ".join(f"{r.name}={r.weight} ({r.host}:{r.port})" for r in table.revisions)
    mirror = f"; mirror {table.mirror.percent}% to {table.mirror.revision}" if table.mirror else ""
    return revisions + mirror


class MirrorSink:
    """Where mirror responses go: nowhere. It only frees the slot the copy held."""

    def __init__(self, router: Router) -> None:
        self.router = router

    def write(self, data: bytes) -> None:
        pass

    def complete(self, exchange: Exchange) -> None:
        self.router.mirrors_in_flight -= 1

    def fail(self, exchange: Exchange, status: int) -> None:
        self.router.mirrors_in_flight -= 1


class ClientConnection(asyncio.Protocol):
    """One client's keep-alive connection; also the sink its exchanges stream their answers into."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.head: RequestHead | None = None
        self.raw_head = b""
        self.body_start = 0
        self.scanner: ChunkedScanner | None = None
        self.scanned = 0
        self.exchange: Exchange | None = None
        self.busy = False
        self.parsing = False
        self.close_after = False
        self.reading_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        self.router.clients.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.router.clients.discard(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._next()
        elif len(self.buffer) > MAX_HEAD + self.router.max_body and not self.reading_paused:
            assert self.transport is not None
            self.transport.pause_reading()
            self.reading_paused = True

    def _next(self) -> None:
        """Dispatch every complete request in the buffer, one at a time."""
        self.parsing = True
        try:
            while not self.busy and self.transport is not None and self._take():
                pass
        finally:
            self.parsing = False

    def _take(self) -> bool:
        """Dispatch the request at the front of the buffer if it is all in; False when it is not."""
        assert self.transport is not None
        buffer = self.buffer
        head = self.head
        if head is None:
            end = buffer.find(HEAD_END)
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    self._reject(431)
                return False
            self.raw_head = bytes(buffer[:end + 4])
            try:
                head = RequestHead(self.raw_head)
            except BadMessage as error:
                self._reject(400, str(error))
                return False
            if head.length > self.router.max_body:
                self._reject(413)
                return False
            self.head, self.body_start, self.scanned = head, end + 4, end + 4
            self.scanner = ChunkedScanner() if head.chunked else None
            if head.expect_continue and len(buffer) == self.body_start:
                self.transport.write(CONTINUE)
        if self.scanner is not None:
            try:
                end = self.scanner.feed(buffer, self.scanned)
            except BadMessage as error:
                self._reject(400, str(error))
                return False
            if end < 0:
                self.scanned = len(buffer)
                if self.scanned - self.body_start > self.router.max_body:
                    self._reject(413)
                return False
        else:
            end = self.body_start + head.length
            if len(buffer) < end:
                return False
        if head.forward is self.raw_head:
            message = bytes(buffer[:end])
        else:
            message = head.forward + bytes(buffer[self.body_start:end])
        del buffer[:end]
        self.head = None
        self.busy = True
        self.close_after = head.close or self.router.closing
        self.router.dispatch(self, head, message)
        return True

    def _reject(self, status: int, why: str = "") -> None:
        """A request the router cannot frame: answer it and close, the stream cannot be trusted after it."""
        assert self.transport is not None
        body = json.dumps({"error": why}).encode() if why else b""
        self.transport.write(simple_response(status, body, close=True))
        self.transport.close()
        self.transport = None

    # The sink of this connection's exchanges.

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def complete(self, exchange: Exchange) -> None:
        self._done()

    def fail(self, exchange: Exchange, status: int) -> None:
        if exchange.head_sent:  # part of an answer is out: only closing tells the client it is cut short
            if self.transport is not None:
                self.transport.abort()
            self.router.request_done()
            return
        # Its revision header (and connection: close when due) says which revision failed.
        self.respond(status, b'{"error": "upstream %s"}' % (b"timed out" if status == 504 else b"failed"),
                     exchange.extra_headers)

    def respond(self, status: int, body: bytes, headers: bytes | None = None) -> None:
        """The router's own answer to the current request; `headers` replace the connection header."""
        if self.transport is not None:
            if headers is None:
                self.transport.write(simple_response(status, body, close=self.close_after))
            else:
                self.transport.write(simple_response(status, body, headers=headers))
        self._done()

    def _done(self) -> None:
        self.router.request_done()
        self.busy = False
        self.exchange = None
        transport = self.transport
        if transport is None:
            return
        if self.close_after or self.router.closing:
            transport.close()
            self.transport = None
            return
        if self.reading_paused:
            self.reading_paused = False
            transport.resume_reading()
        if self.buffer and not self.parsing:
            self._next()

    def pause_writing(self) -> None:
        """The client reads slower than the upstream answers: stop reading the upstream meanwhile."""
        exchange = self.exchange
        if exchange is not None and exchange.upstream is not None:
            exchange.upstream.pause(True)

    def resume_writing(self) -> None:
        exchange = self.exchange
        if exchange is not None and exchange.upstream is not None:
            exchange.upstream.pause(False)
