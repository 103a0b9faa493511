"""Benchmark: the cost of Loom's local router, V2 inference requests through it against straight to the
model server, side by side in one run.

    .venv/bin/python bench/router_overhead.py [--concurrency 8] [--seconds 1.5] [--rounds 12]

The model server is a real MLServer when `.venv-serve/bin/mlserver` exists (a one-tensor echo model,
a custom runtime written into a temp dir, in one inference worker as deployed; no BLAS, so the model's
own time is small and the router's share of the latency as large as it gets); otherwise a minimal
asyncio HTTP server answering a fixed V2 response, in its own process. The run says which. After the
comparison, the hop alone: the same against the stand-in server, one connection, in microseconds.

A closed loop of --concurrency keep-alive connections (uvloop when present, as in the router) sends
the same V2 request again and again for --seconds, alternately straight to the server and through
`python components/router` (one revision of weight 100, no mirror), --rounds times each (ABBA order),
warm-up discarded. p50, p99 and requests/s are each round's, the median over the rounds: on a shared
machine a burst of someone else's load lands in a round or two of one side, and the median keeps it
from deciding the comparison. The pooled p99 over all requests is printed beside it.

Floor (exit code 1 when it fails): p99 through the router <= 1.1x direct; goal <= 1.05x.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _http import KeepAlive, new_loop, post

ROOT = Path(__file__).resolve().parent.parent
ROUTER = ROOT / "components" / "router"
MLSERVER = ROOT / ".venv-serve" / "bin" / "mlserver"
FLOOR, GOAL = 1.10, 1.05
MODEL = "echo"
BODY = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}]}).encode()
REQUEST = post(f"/v2/models/{MODEL}/infer", BODY)
RESPONSE = json.dumps({"model_name": MODEL, "id": "1", "parameters": {},
                       "outputs": [{"name": "y", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}]}).encode()

ECHO_RUNTIME = '''
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class EchoModel(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        data = NumpyCodec.decode_input(payload.inputs[0])
        return InferenceResponse(model_name=self.name, outputs=[NumpyCodec.encode_output("y", data)])
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The stand-in model server (run as `router_overhead.py --stand-in PORT` in a process of its own).

class StandIn(asyncio.Protocol):
    answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(RESPONSE), RESPONSE)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            length = 0
            for line in bytes(self.buffer[:end]).lower().split(b"\r\n")[1:]:
                if line.startswith(b"content-length:"):
                    length = int(line[15:])
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[:end + 4 + length]
            self.transport.write(self.answer)  # type: ignore[attr-defined]


def stand_in(port: int) -> None:
    loop = new_loop()
    server = loop.run_until_complete(loop.create_server(StandIn, "127.0.0.1", port, backlog=1024))
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.run_forever()
    server.close()


# The load: a closed loop over keep-alive connections, one request at a time on each.

class Client(KeepAlive):
    def __init__(self, latencies: list[float]) -> None:
        super().__init__()
        self.latencies = latencies
        self.sent = 0.0
        self.stop_at = 0.0
        self.done: asyncio.Future[None] | None = None

    def run(self, stop_at: float) -> asyncio.Future[None]:
        self.stop_at = stop_at
        self.done = asyncio.get_running_loop().create_future()
        self._send()
        return self.done

    def _send(self) -> None:
        self.sent = time.perf_counter()
        self.transport.write(REQUEST)

    def answered(self, at: float, error: str | None) -> None:
        assert self.done is not None
        if error:
            self.done.set_exception(RuntimeError(f"unexpected answer {error!r}"))
            return
        self.latencies.append(at - self.sent)
        if at < self.stop_at:
            self._send()
        else:
            self.done.set_result(None)


async def load(port: int, concurrency: int, seconds: float) -> tuple[list[float], float]:
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    clients = [(await loop.create_connection(lambda: Client(latencies), "127.0.0.1", port))[1]
               for _ in range(concurrency)]
    started = time.perf_counter()
    await asyncio.gather(*(client.run(started + seconds) for client in clients))
    elapsed = time.perf_counter() - started
    for client in clients:
        client.transport.close()
    return latencies, len(latencies) / elapsed


def wait_ready(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /v2/health/ready HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready after {timeout} s")


def start_server(workdir: Path, stand_in_only: bool = False) -> tuple[subprocess.Popen[bytes], int, str]:
    port = free_port()
    if MLSERVER.exists() and not stand_in_only:
        model = workdir / "models" / MODEL
        model.mkdir(parents=True)
        (model / "echo_runtime.py").write_text(ECHO_RUNTIME)
        (model / "model-settings.json").write_text(json.dumps({"name": MODEL, "implementation": "echo_runtime.EchoModel"}))
        (workdir / "models" / "settings.json").write_text(json.dumps({
            "http_port": port, "grpc_port": free_port(), "metrics_port": free_port(), "parallel_workers": 1,
            "debug": False}))
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        with open(workdir / "mlserver.log", "wb") as log:
            process = subprocess.Popen([str(MLSERVER), "start", str(workdir / "models")], cwd=model, env=env,
                                       stdout=log, stderr=subprocess.STDOUT)
        what = f"MLServer 1.7 ({MLSERVER}), echo model in one inference worker (parallel_workers 1, as deployed)"
    else:
        process = subprocess.Popen([sys.executable, __file__, "--stand-in", str(port)])
        what = "minimal asyncio HTTP server answering a fixed V2 response (stand-in)"
    wait_ready(port, process, what)
    return process, port, what


def start_router(workdir: Path, upstream: int) -> tuple[subprocess.Popen[bytes], int, str]:
    table = workdir / f"routes-{upstream}.json"
    table.write_text(json.dumps({"revisions": [{"name": "v1", "upstream": f"127.0.0.1:{upstream}", "weight": 100}]}))
    process = subprocess.Popen([sys.executable, str(ROUTER), "--table", str(table), "--port", "0",
                                "--metrics-port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    addresses = json.loads(process.stdout.readline())
    port = int(addresses["router"].rsplit(":", 1)[1])
    wait_ready(port, process, "router")
    return process, port, addresses["loop"]


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


Row = tuple[float, float, float, float, int]  # p50 ms, p99 ms, req/s (medians of rounds), pooled p99 ms, requests


def compare(loop: asyncio.AbstractEventLoop, sides: dict[str, int], concurrency: int, seconds: float,
            rounds: int) -> dict[str, Row]:
    """Each side `rounds` times, alternating (AB BA AB ...), after a warm-up of each."""
    for port in sides.values():
        loop.run_until_complete(load(port, concurrency, 1.0))
    latencies: dict[str, list[float]] = {side: [] for side in sides}
    per_round: dict[str, list[tuple[float, float, float]]] = {side: [] for side in sides}
    for round_ in range(rounds):
        order = list(sides.items()) if round_ % 2 == 0 else list(sides.items())[::-1]
        for side, port in order:
            samples, rate = loop.run_until_complete(load(port, concurrency, seconds))
            latencies[side] += samples
            per_round[side].append((percentile(samples, 0.5), percentile(samples, 0.99), rate))
    rows = {}
    for side in sides:
        p50, p99, rate = (statistics.median(r[i] for r in per_round[side]) for i in range(3))
        rows[side] = (p50, p99, rate, percentile(latencies[side], 0.99), len(latencies[side]))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=1.5, help="per round and side")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--stand-in", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stand_in:
        stand_in(args.stand_in)
        return 0

    workdir = Path(tempfile.mkdtemp(prefix="loom-bench-router-"))
    loop = new_loop()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        server, server_port, what = start_server(workdir)
        router, router_port, router_loop = start_router(workdir, server_port)
        processes += [router, server]
        print(f"model server: {what}")
        print(f"router: python components/router ({router_loop}); {os.cpu_count()} cores,"
              f" load average {os.getloadavg()[0]:.1f} at start")
        print(f"{args.concurrency} connections, closed loop, {args.rounds} rounds x {args.seconds:g} s per side,"
              f" alternating; p50/p99/req/s: medians of the rounds\n")
        rows = compare(loop, {"direct": server_port, "router": router_port}, args.concurrency, args.seconds,
                       args.rounds)
        stop(processes)
        # The hop alone: against the stand-in, which answers in microseconds, one request at a time.
        stand, stand_port, _ = start_server(workdir, stand_in_only=True)
        hop_router, hop_port, _ = start_router(workdir, stand_port)
        processes = [hop_router, stand]
        hop = compare(loop, {"direct": stand_port, "router": hop_port}, 1, 1.0, 4)
    finally:
        loop.close()
        stop(processes)
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"| {'path':<22} | {'p50 ms':>7} | {'p99 ms':>7} | {'req/s':>8} | {'pooled p99':>10} | {'requests':>8} |")
    print(f"|{'-' * 24}|{'-' * 9}|{'-' * 9}|{'-' * 10}|{'-' * 12}|{'-' * 10}|")
    for side, label in (("direct", "straight to the server"), ("router", "through the router")):
        p50, p99, rate, pooled, count = rows[side]
        print(f"| {label:<22} | {p50:>7.3f} | {p99:>7.3f} | {rate:>8.0f} | {pooled:>10.3f} | {count:>8} |")
    (d50, d99, drate, dpooled, _), (r50, r99, rrate, rpooled, _) = rows["direct"], rows["router"]
    print(f"| {'router / direct':<22} | {r50 / d50:>6.2f}x | {r99 / d99:>6.2f}x | {rrate / drate:>7.2f}x"
          f" | {rpooled / dpooled:>9.2f}x | {'':>8} |")
    (h50, h99, _, _, _), (k50, k99, _, _, _) = hop["direct"], hop["router"]
    print(f"\nthe hop alone (stand-in server, 1 connection): p50 {h50 * 1000:.0f} -> {k50 * 1000:.0f} us"
          f" (+{(k50 - h50) * 1000:.0f} us), p99 {h99 * 1000:.0f} -> {k99 * 1000:.0f} us (+{(k99 - h99) * 1000:.0f} us)")
    ratio = r99 / d99
    verdict = "goal met" if ratio <= GOAL else "floor holds" if ratio <= FLOOR else "FLOOR FAILED"
    print(f"p99 ratio {ratio:.3f}: {verdict} (floor <= {FLOOR}x, goal <= {GOAL}x)")
    return 0 if ratio <= FLOOR else 1


if __name__ == "__main__":
    sys.exit(main())
