"""Loom's local weighted router: one HTTP/1.1 front for the model server processes of an InferenceService.

    python components/router --table routes.json [--host 127.0.0.1] [--port 8080] [--metrics-port 9090]
        [--upstream-timeout 30] [--mirror-limit 32] [--idle-seconds 4] [--reload-seconds 1] [--loop auto]

With the local executor each revision of a model is an MLServer process; the router splits the V2
inference requests between them by weight, copies a percent of them to the canary (its answers are
discarded), and counts requests and latencies per revision on `--metrics-port` (`/metrics`, Prometheus
text format), which the local Prometheus scrapes for the canary analysis. In a cluster Seldon Core 2 or
KServe does this; the router is the embedded default's stand-in.

The table (see routing_table.py) is a JSON file the operator replaces by an atomic rename; a relative
path is one of the workload's files ($LOOM_WORKLOAD_FILES). Its file is checked every --reload-seconds
(one stat) and on SIGHUP; a new table routes the next request, requests under way finish where they
started. A table the router cannot use at start exits 65 (EX_DATAERR); later, a bad table is logged
and the one in force stays.

Once listening, one JSON line on stdout gives the addresses (useful with port 0). SIGTERM or SIGINT:
stop accepting, close idle client connections, let requests under way finish (at most --drain-seconds;
their answers say `connection: close`), then a one-line verdict.
Stdlib only (uvloop when the environment has it): it runs in the serving environment as in the main one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import cast

from http1 import HEAD_END, MAX_HEAD, BadMessage, RequestHead, simple_response
from proxy import ClientConnection, Router, describe
from router_metrics import Registry
from routing_table import TableError, load_table

METRICS_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


class MetricsConnection(asyncio.Protocol):
    """`GET /metrics` on its own port, so scrapes never queue behind inference traffic."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while (end := self.buffer.find(HEAD_END)) >= 0:
            try:
                head = RequestHead(bytes(self.buffer[:end + 4]))
            except BadMessage:
                self.transport.write(simple_response(400, close=True))
                self.transport.close()
                return
            del self.buffer[:end + 4 + head.length]
            if head.target.split(b"?", 1)[0] == b"/metrics":
                self.transport.write(simple_response(200, self.registry.render(), head.close, METRICS_TYPE))
            else:
                self.transport.write(simple_response(404, close=head.close))
            if head.close:
                self.transport.close()
                return
        if len(self.buffer) > MAX_HEAD:
            self.transport.close()


def event_loop(choice: str) -> tuple[asyncio.AbstractEventLoop, str]:
    if choice == "auto":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop(), "uvloop"
    return asyncio.new_event_loop(), "asyncio"


def table_path(value: str) -> Path:
    path = Path(value)
    if path.is_absolute():
        return path
    return Path(os.environ.get("LOOM_WORKLOAD_FILES", ".")) / path


async def serve(args: argparse.Namespace, loop_name: str) -> str:
    loop = asyncio.get_running_loop()
    router = Router(loop, table_path(args.table), Registry(), args.upstream_timeout, args.idle_seconds,
                    args.mirror_limit, args.max_body_mib * 1024 * 1024)
    front = await loop.create_server(lambda: ClientConnection(router), args.host, args.port, backlog=1024)
    metrics = await loop.create_server(lambda: MetricsConnection(router.registry), args.host, args.metrics_port)
    print(f"routing table: {describe(router.table)}", file=sys.stderr, flush=True)
    print(json.dumps({"router": address(front), "metrics": address(metrics), "loop": loop_name}), flush=True)

    async def watch_table() -> None:
        while True:
            await asyncio.sleep(args.reload_seconds)
            router.check_table()

    watcher = loop.create_task(watch_table())
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGHUP, router.check_table)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()

    watcher.cancel()
    front.close()
    router.close()
    deadline = loop.time() + args.drain_seconds
    while router.in_flight and loop.time() < deadline:
        await asyncio.sleep(0.05)
    cut = router.in_flight
    for client in list(router.clients):
        if client.transport is not None:
            client.transport.close()
    metrics.close()
    return f"router stopped: {router.served} requests answered, {cut} cut short at shutdown"


def address(server: asyncio.Server) -> str:
    host, port = server.sockets[0].getsockname()[:2]
    return f"{host}:{port}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", required=True, help="the routing table's JSON file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--metrics-port", type=int, default=9090)
    parser.add_argument("--upstream-timeout", type=float, default=30.0, help="seconds for a whole answer")
    parser.add_argument("--mirror-limit", type=int, default=32, help="mirror copies in flight at most")
    parser.add_argument("--idle-seconds", type=float, default=4.0,
                        help="reuse an idle upstream connection only this long (uvicorn closes them after 5 s)")
    parser.add_argument("--reload-seconds", type=float, default=1.0)
    parser.add_argument("--drain-seconds", type=float, default=10.0)
    parser.add_argument("--max-body-mib", type=int, default=64)
    parser.add_argument("--loop", choices=("auto", "asyncio"), default="auto",
                        help="auto: uvloop when installed, else asyncio's own")
    args = parser.parse_args(argv)
    try:
        load_table(table_path(args.table))
    except TableError as error:
        print(f"router not started: {error}", flush=True)
        return os.EX_DATAERR
    loop, loop_name = event_loop(args.loop)
    try:
        verdict = loop.run_until_complete(serve(args, loop_name))
    except OSError as error:  # a port in use, an address not on this machine
        print(f"router not started: {error}", flush=True)
        return 1
    finally:
        loop.close()
    print(verdict, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
