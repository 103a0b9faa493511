"""Loom's local router as a process (`python components/router`) in front of small real model servers:
the split by weight, mirroring, reloads under traffic, health, errors and the metrics per revision."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT, eventually

ROUTER = ROOT / "components" / "router"
SERVE_PYTHON = ROOT / ".venv-serve" / "bin" / "python"


class Upstream:
    """A small real V2 model server: answers with its own name, every request recorded; `failing` answers
    500 to exactly 3 requests in every 10; `delay` seconds before each answer (or an `x-test-delay` header);
    `hang_up` closes each connection after one answer without saying so, as a server whose keep-alive
    timeout just ran out does."""

    def __init__(self, name: str, failing: bool = False, delay: float = 0.0, hang_up: bool = False) -> None:
        self.name = name
        self.bodies: list[bytes] = []
        self.connections: set[tuple[str, int]] = set()
        self.sockets: set[Any] = set()
        self.ready = True
        self.lock = threading.Lock()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # head and body go out in two writes

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with upstream.lock:
                    upstream.sockets.add(self.connection)

            def finish(self) -> None:
                with upstream.lock:
                    upstream.sockets.discard(self.connection)
                super().finish()

            def do_GET(self) -> None:
                if self.path == "/v2/health/ready":
                    self.answer(200 if upstream.ready else 503, b"")
                else:
                    self.answer(200, json.dumps({"name": "m", "revision": upstream.name, "path": self.path}).encode())

            def do_POST(self) -> None:
                if self.headers.get("transfer-encoding") == "chunked":
                    body = self.read_chunked()
                else:
                    body = self.rfile.read(int(self.headers["content-length"]))
                with upstream.lock:
                    seen = len(upstream.bodies)
                    upstream.bodies.append(body)
                    upstream.connections.add(self.client_address)
                pause = float(self.headers.get("x-test-delay", delay))
                if pause:
                    time.sleep(pause)
                status = 500 if failing and seen % 10 in (0, 4, 7) else 200
                answer = json.dumps({"model_name": "m", "revision": upstream.name,
                                     "request": json.loads(body) if body else None}).encode()
                if self.headers.get("x-test-chunked"):
                    self.send_response(status)
                    self.send_header("transfer-encoding", "chunked")
                    self.end_headers()
                    for start in range(0, len(answer), 7):
                        piece = answer[start:start + 7]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.answer(status, answer)
                self.close_connection = hang_up

            def read_chunked(self) -> bytes:
                body = b""
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    body += self.rfile.read(size)
                    self.rfile.readline()
                self.rfile.readline()
                return body

            def answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        """Gone for good: no new connections, and the kept-alive ones cut."""
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            for sock in self.sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@dataclass
class Router:
    process: subprocess.Popen[str]
    port: int
    metrics_port: int
    loop: str
    table: Path
    verdict: str = ""

    def stop(self) -> str:
        """SIGTERM; the router must exit 0 with its one-line verdict."""
        if not self.verdict:
            self.process.send_signal(signal.SIGTERM)
            out, _ = self.process.communicate(timeout=30)
            assert self.process.returncode == 0, out
            self.verdict = out.strip().splitlines()[-1]
            assert self.verdict.startswith("router stopped: ")
        return self.verdict

    def write_table(self, table: dict[str, Any]) -> None:
        """As the operator does: a new file renamed over the old one."""
        new = self.table.with_suffix(".new")
        new.write_text(json.dumps(table))
        os.replace(new, self.table)

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        connection = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=10)
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        assert response.status == 200 and response.getheader("content-type", "").startswith("text/plain")
        text = response.read().decode()
        connection.close()
        return {(s.name, frozenset(s.labels.items())): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    def count(self, revision: str, traffic: str = "live", code: str | None = None) -> float:
        return sum(value for (name, labels), value in self.metrics().items()
                   if name == "loom_router_requests_total" and ("revision", revision) in labels
                   and ("traffic", traffic) in labels and (code is None or ("code", code) in labels))


@pytest.fixture
def upstreams() -> Iterator[Callable[..., Upstream]]:
    started: list[Upstream] = []

    def start(name: str, **kwargs: Any) -> Upstream:
        started.append(Upstream(name, **kwargs))
        return started[-1]

    yield start
    for upstream in started:
        upstream.close()


@pytest.fixture
def router(tmp_path: Path) -> Iterator[Callable[..., Router]]:
    """Start the router on a table; at the end it must stop cleanly on SIGTERM with its verdict."""
    started: list[Router] = []

    def start(table: dict[str, Any], *args: str, python: str = sys.executable) -> Router:
        path = tmp_path / f"routes-{len(started)}.json"
        path.write_text(json.dumps(table))
        process = subprocess.Popen([python, str(ROUTER), "--table", str(path), "--port", "0",
                                    "--metrics-port", "0", *args], stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None
        addresses = json.loads(process.stdout.readline())
        started.append(Router(process, int(addresses["router"].rsplit(":", 1)[1]),
                              int(addresses["metrics"].rsplit(":", 1)[1]), addresses["loop"], path))
        return started[-1]

    yield start
    for running in started:
        running.stop()


def table(*revisions: tuple[str, Upstream, int], mirror: tuple[str, int] | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {"revisions": [{"name": name, "upstream": upstream.address, "weight": weight}
                                              for name, upstream, weight in revisions]}
    if mirror:
        document["mirror"] = {"revision": mirror[0], "percent": mirror[1]}
    return document


def infer(connection: http.client.HTTPConnection, payload: dict[str, Any],
          headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, Any]]:
    """(status, the revision header, the answer) of one V2 inference request."""
    connection.request("POST", "/v2/models/m/infer", body=json.dumps(payload).encode(),
                       headers={"content-type": "application/json", **(headers or {})})
    response = connection.getresponse()
    return response.status, response.getheader("x-loom-revision", ""), json.loads(response.read())


def traffic(router: Router, clients: int, requests: int) -> list[tuple[int, str, dict[str, Any]]]:
    """`requests` inference requests from each of `clients` keep-alive connections at once."""

    def client(c: int) -> list[tuple[int, str, dict[str, Any]]]:
        connection = router.connection()
        try:
            return [infer(connection, {"id": f"{c}-{i}"}) for i in range(requests)]
        finally:
            connection.close()

    with ThreadPoolExecutor(clients) as pool:
        return [answer for answers in pool.map(client, range(clients)) for answer in answers]


@pytest.mark.parametrize("loop", ["auto", "asyncio"])
def test_2000_requests_split_by_weight_and_each_revisions_failures_are_its_own(
        router: Callable[..., Router], upstreams: Callable[..., Upstream], loop: str) -> None:
    stable, canary = upstreams("stable"), upstreams("canary", failing=True)
    running = router(table(("v1", stable, 80), ("v2", canary, 20)), "--loop", loop)
    assert running.loop == {"auto": "uvloop", "asyncio": "asyncio"}[loop]
    answers = traffic(running, clients=4, requests=500)

    by_revision = Counter(revision for _, revision, _ in answers)
    assert set(by_revision) == {"v1", "v2"}
    for revision, weight in (("v1", 80), ("v2", 20)):
        assert abs(100 * by_revision[revision] / 2000 - weight) <= 5, by_revision
    assert all(body["revision"] == {"v1": "stable", "v2": "canary"}[revision] for _, revision, body in answers)
    assert len(stable.bodies) == by_revision["v1"] and len(canary.bodies) == by_revision["v2"]
    failed = Counter(revision for status, revision, _ in answers if status == 500)
    assert set(failed) == {"v2"} and failed["v2"] == pytest.approx(0.3 * by_revision["v2"], abs=1)
    # Kept-alive upstream connections: a handful, not one per request.
    assert len(stable.connections) <= 8 and len(canary.connections) <= 8

    metrics = running.metrics()
    assert running.count("v1", code="200") == by_revision["v1"] and running.count("v1", code="500") == 0
    assert running.count("v2", code="500") == failed["v2"]
    assert running.count("v2", code="200") == by_revision["v2"] - failed["v2"]
    success_rate = 100 * running.count("v2", code="200") / running.count("v2")
    assert 65 <= success_rate <= 75
    for revision in ("v1", "v2"):
        labels = frozenset({("revision", revision), ("traffic", "live")})
        assert metrics[("loom_router_request_duration_seconds_count", labels)] == by_revision[revision]
        assert metrics[("loom_router_request_duration_seconds_bucket", labels | {("le", "+Inf")})] == by_revision[revision]
        assert 0 < metrics[("loom_router_request_duration_seconds_sum", labels)] < by_revision[revision]
    assert metrics[("loom_router_weight", frozenset({("revision", "v2")}))] == 20


def test_mirrored_requests_reach_the_canary_and_never_the_clients(
        router: Callable[..., Router], upstreams: Callable[..., Upstream]) -> None:
    stable, canary = upstreams("stable"), upstreams("canary")
    running = router(table(("v1", stable, 100), ("v2", canary, 0), mirror=("v2", 50)))
    answers = traffic(running, clients=2, requests=100)

    assert {(status, revision, body["revision"]) for status, revision, body in answers} == {(200, "v1", "stable")}
    assert sorted(body["request"]["id"] for _, _, body in answers) == sorted(f"{c}-{i}" for c in range(2) for i in range(100))
    eventually(lambda: len(canary.bodies) == 100, timeout=20, what="the mirror copies")
    sent = {json.loads(body)["id"] for body in stable.bodies}
    assert {json.loads(body)["id"] for body in canary.bodies} < sent
    eventually(lambda: running.count("v2", "mirror", "200") == 100, timeout=10, what="the mirror metrics")
    assert running.count("v2", "live") == 0 and running.count("v1", "live", "200") == 200
    assert running.metrics()[("loom_router_mirror_percent", frozenset({("revision", "v2")}))] == 50


def test_a_slow_mirror_never_slows_the_clients(router: Callable[..., Router], upstreams: Callable[..., Upstream]) -> None:
    stable, canary = upstreams("stable"), upstreams("canary", delay=3.0)
    running = router(table(("v1", stable, 100), ("v2", canary, 0), mirror=("v2", 100)), "--mirror-limit", "4")
    connection = running.connection()
    latencies = []
    for i in range(60):
        started = time.perf_counter()
        assert infer(connection, {"id": i})[:2] == (200, "v1")
        latencies.append(time.perf_counter() - started)
    connection.close()

    assert max(latencies) < 1.5  # a client never waits for the 3 s canary
    dropped = running.metrics()[("loom_router_mirror_dropped_total", frozenset({("revision", "v2")}))]
    slots_freed = 4 * int(sum(latencies) / 3.0 + 1)  # at most 4 copies under way, each 3 s
    assert 60 - 4 - slots_freed <= dropped < 60
    eventually(lambda: running.count("v2", "mirror") == 60 - dropped, timeout=20, what="the copies under way")


def test_a_new_table_takes_over_mid_traffic_without_a_failed_request(
        router: Callable[..., Router], upstreams: Callable[..., Upstream]) -> None:
    old, new = upstreams("old"), upstreams("new")
    running = router(table(("v1", old, 100)))
    answers: list[tuple[int, str]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def client() -> None:
        connection = running.connection()
        try:
            while not stop.is_set():
                status, revision, _ = infer(connection, {"id": "x"})
                answers.append((status, revision))
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    def slow() -> tuple[int, str, dict[str, Any]]:
        connection = running.connection()
        try:
            return infer(connection, {"id": "slow"}, {"x-test-delay": "2"})
        finally:
            connection.close()

    with ThreadPoolExecutor(4) as pool:
        clients = [pool.submit(client) for _ in range(3)]
        eventually(lambda: len(answers) > 50, timeout=20, what="traffic")
        in_flight = pool.submit(slow)
        eventually(lambda: any(json.loads(body)["id"] == "slow" for body in list(old.bodies)), timeout=10)
        # v1 and its upstream leave the table while its slow request is under way.
        running.write_table(table(("v2", new, 60), ("v3", new, 40)))
        eventually(lambda: running.metrics().get(("loom_router_weight", frozenset({("revision", "v2")}))) == 60,
                   timeout=10, what="the reload")
        reloaded_at = len(answers)
        eventually(lambda: len(answers) > reloaded_at + 200, timeout=30, what="traffic after the reload")
        stop.set()
        for done in clients:
            done.result()
        status, _, body = in_flight.result()
        assert (status, body) == (200, {"model_name": "m", "revision": "old", "request": {"id": "slow"}})

    assert not errors and {status for status, _ in answers} == {200}
    after = Counter(revision for _, revision in answers[reloaded_at + 10:])
    assert set(after) == {"v2", "v3"} and abs(100 * after["v2"] / sum(after.values()) - 60) <= 5
    metrics = running.metrics()
    assert metrics[("loom_router_table_reloads_total", frozenset({("result", "ok")}))] == 1
    assert ("loom_router_weight", frozenset({("revision", "v1")})) not in metrics
    assert running.count("v1", code="200") == sum(1 for _, revision in answers if revision == "v1") + 1

    # A broken table is refused; the one in force keeps serving. SIGHUP reloads at once.
    running.table.write_text('{"revisions": [{"name": "v9"')
    running.process.send_signal(signal.SIGHUP)
    eventually(lambda: running.metrics()[("loom_router_table_reloads_total", frozenset({("result", "error")}))] == 1,
               timeout=5, what="the refused reload")
    connection = running.connection()
    assert infer(connection, {"id": "after"})[0] == 200
    connection.close()


def test_health_pass_through_chunked_messages_and_a_dead_upstream(
        router: Callable[..., Router], upstreams: Callable[..., Upstream]) -> None:
    stable, canary = upstreams("stable"), upstreams("canary")
    running = router(table(("v1", stable, 3), ("v2", canary, 7)), "--upstream-timeout", "5")
    connection = running.connection()

    connection.request("GET", "/v2/health/ready")
    response = connection.getresponse()
    assert (response.status, json.loads(response.read())) == (200, {"ready": True})
    connection.request("GET", "/v2/models/m")  # metadata goes to the revision with the largest weight
    response = connection.getresponse()
    assert (response.status, response.getheader("x-loom-revision")) == (200, "v2")
    assert json.loads(response.read()) == {"name": "m", "revision": "canary", "path": "/v2/models/m"}

    body = json.dumps({"id": "chunked"}).encode()
    connection.request("POST", "/v2/models/m/infer", body=iter([body[:5], body[5:]]), encode_chunked=True,
                       headers={"x-test-chunked": "1"})
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("transfer-encoding") == "chunked"
    assert json.loads(response.read())["request"] == {"id": "chunked"}

    canary.ready = False
    connection.request("GET", "/v2/health/ready")
    response = connection.getresponse()
    assert (response.status, json.loads(response.read())) == (503, {"ready": False, "notReady": ["v2"]})
    connection.request("GET", "/v2/health/live")
    response = connection.getresponse()
    assert (response.status, response.read()) == (200, b'{"live": true}')

    canary.close()  # any ten requests in a row: seven for v2 (weights 3 and 7)
    statuses = Counter(infer(connection, {"id": i})[:2] for i in range(10))
    assert statuses == Counter({(502, "v2"): 7, (200, "v1"): 3})
    assert running.count("v2", code="502") == 7
    connection.close()


def test_a_router_that_cannot_start_says_why(tmp_path: Path) -> None:
    path = tmp_path / "routes.json"
    path.write_text(json.dumps({"revisions": [{"name": "v1", "upstream": "nowhere", "weight": 1}]}))
    done = subprocess.run([sys.executable, str(ROUTER), "--table", str(path), "--port", "0"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 65  # EX_DATAERR: the same table would fail the same way
    assert done.stdout.strip() == "router not started: revisions[0].upstream must be host:port, got 'nowhere'"

    path.write_text(json.dumps({"revisions": [{"name": "v1", "upstream": "127.0.0.1:1", "weight": 1}]}))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = subprocess.run([sys.executable, str(ROUTER), "--table", str(path), "--port", "0",
                               "--metrics-port", str(taken.getsockname()[1])], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and done.stdout.startswith("router not started: ") and "address" in done.stdout


def test_the_router_runs_in_the_serving_environment(
        router: Callable[..., Router], upstreams: Callable[..., Upstream]) -> None:
    stable, canary = upstreams("stable"), upstreams("canary")
    running = router(table(("v1", stable, 1), ("v2", canary, 1), mirror=("v2", 100)), python=str(SERVE_PYTHON))
    answers = traffic(running, clients=2, requests=50)
    assert Counter(revision for _, revision, _ in answers) == Counter({"v1": 50, "v2": 50})
    eventually(lambda: running.count("v2", "mirror", "200") == 50, timeout=10, what="the mirror copies")
    assert running.count("v1", code="200") == running.count("v2", code="200") == 50


def test_shutdown_lets_the_requests_under_way_finish(
        router: Callable[..., Router], upstreams: Callable[..., Upstream]) -> None:
    stable = upstreams("stable")
    running = router(table(("v1", stable, 1)))
    idle = running.connection()
    assert infer(idle, {"id": "first"})[0] == 200
    with ThreadPoolExecutor(1) as pool:
        def slow() -> tuple[int, str | None]:
            connection = running.connection()
            connection.request("POST", "/v2/models/m/infer", body=b'{"id": "slow"}', headers={"x-test-delay": "1.5"})
            response = connection.getresponse()
            response.read()
            return response.status, response.getheader("connection")

        in_flight = pool.submit(slow)
        eventually(lambda: len(stable.bodies) == 2, timeout=10, what="the slow request upstream")
        verdict = running.stop()
        assert in_flight.result() == (200, "close")
    assert verdict == "router stopped: 2 requests answered, 0 cut short at shutdown"
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        infer(idle, {"id": "too late"})


def test_a_slow_upstream_is_answered_504_and_counted(router: Callable[..., Router],
                                                     upstreams: Callable[..., Upstream]) -> None:
    running = router(table(("v1", upstreams("stable"), 1)), "--upstream-timeout", "0.5")
    connection = running.connection()
    assert infer(connection, {"id": "slow"}, {"x-test-delay": "1.5"})[:2] == (504, "v1")
    assert infer(connection, {"id": "next"})[:2] == (200, "v1")  # the client's connection goes on
    assert running.count("v1", code="504") == 1 and running.count("v1", code="200") == 1
    connection.close()


def test_pipelined_requests_are_answered_in_order(router: Callable[..., Router],
                                                  upstreams: Callable[..., Upstream]) -> None:
    stable, canary = upstreams("stable"), upstreams("canary")
    running = router(table(("v1", stable, 1), ("v2", canary, 1)))
    bodies = [json.dumps({"id": i}).encode() for i in range(6)]
    requests = b"".join(b"POST /v2/models/m/infer HTTP/1.1\r\nhost: r\r\ncontent-length: %d\r\n\r\n%s" % (len(b), b)
                        for b in bodies)
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
        sock.sendall(requests + b"GET /v2/health/live HTTP/1.1\r\nhost: r\r\nconnection: close\r\n\r\n")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    answers = [json.loads(part.split(b"\r\n\r\n", 1)[1]) for part in received.split(b"HTTP/1.1 ")[1:]]
    assert [a["request"]["id"] for a in answers[:-1]] == list(range(6)) and answers[-1] == {"live": True}
    assert [a["revision"] for a in answers[:-1]] == ["stable", "canary"] * 3


def test_connections_the_upstream_hangs_up_on_cost_no_request(router: Callable[..., Router],
                                                              upstreams: Callable[..., Upstream]) -> None:
    hanging = upstreams("stable", hang_up=True)
    running = router(table(("v1", hanging, 1)))
    answers = traffic(running, clients=2, requests=100)
    assert {status for status, _, _ in answers} == {200} and len(hanging.bodies) == 200
    assert running.count("v1", code="200") == 200


ECHO_RUNTIME = """
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class EchoModel(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        data = NumpyCodec.decode_input(payload.inputs[0])
        return InferenceResponse(model_name=self.name, outputs=[NumpyCodec.encode_output("y", data * 2)])
"""


@pytest.fixture
def mlserver(tmp_path: Path) -> Iterator[str]:
    """A real MLServer 1.7 from the serving environment, one echo model in an inference worker."""
    models = tmp_path / "models"
    (models / "echo").mkdir(parents=True)
    (models / "echo" / "echo_runtime.py").write_text(ECHO_RUNTIME)
    (models / "echo" / "model-settings.json").write_text(json.dumps({"name": "echo",
                                                                      "implementation": "echo_runtime.EchoModel"}))
    ports = []
    for _ in range(3):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    (models / "settings.json").write_text(json.dumps({
        "http_port": ports[0], "grpc_port": ports[1], "metrics_port": ports[2], "parallel_workers": 1,
        "host": "127.0.0.1", "debug": False}))
    log = (tmp_path / "mlserver.log").open("wb")
    process = subprocess.Popen([str(SERVE_PYTHON.parent / "mlserver"), "start", str(models)], cwd=models / "echo",
                               env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=log, stderr=subprocess.STDOUT)

    def ready() -> bool:
        assert process.poll() is None, (tmp_path / "mlserver.log").read_text()[-4000:]
        try:
            connection = http.client.HTTPConnection("127.0.0.1", ports[0], timeout=5)
            connection.request("GET", "/v2/models/echo/ready")
            return connection.getresponse().status == 200
        except OSError:
            return False

    try:
        eventually(ready, timeout=120, interval=0.5, what="MLServer ready")
        yield f"127.0.0.1:{ports[0]}"
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_a_real_mlserver_behind_the_router(router: Callable[..., Router], mlserver: str) -> None:
    """Both revisions on one MLServer (one pool): its V2 answers, metadata and readiness pass through,
    and its keep-alive timeout (uvicorn's 5 s) never fails a request."""
    document = {"revisions": [{"name": "v1", "upstream": mlserver, "weight": 3},
                              {"name": "v2", "upstream": mlserver, "weight": 1}], "mirror": {"revision": "v2", "percent": 50}}
    running = router(document, python=str(SERVE_PYTHON))
    connection = running.connection()
    payload = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1.0, 2.0, 3.0]}]}

    def predict() -> str:
        connection.request("POST", "/v2/models/echo/infer", body=json.dumps(payload).encode(),
                           headers={"content-type": "application/json"})
        response = connection.getresponse()
        body = json.loads(response.read())
        assert response.status == 200 and body["outputs"][0]["data"] == [2.0, 4.0, 6.0], body
        return response.getheader("x-loom-revision", "")

    assert Counter(predict() for _ in range(40)) == Counter({"v1": 30, "v2": 10})
    connection.request("GET", "/v2/models/echo")
    response = connection.getresponse()
    assert response.status == 200 and json.loads(response.read())["name"] == "echo"
    connection.request("GET", "/v2/health/ready")
    assert connection.getresponse().read() == b'{"ready": true}'
    time.sleep(5.5)  # MLServer has closed the router's idle connections meanwhile
    assert Counter(predict() for _ in range(4)) == Counter({"v1": 3, "v2": 1})
    connection.request("POST", "/v2/models/missing/infer", body=json.dumps(payload).encode())
    response = connection.getresponse()
    assert response.status == 404 and response.getheader("x-loom-revision") == "v1"
    response.read()
    connection.close()
    # Half of the 34 requests v1 answered were copied to v2, the last one (the missing model) included.
    eventually(lambda: running.count("v2", "mirror") == 17, timeout=10, what="the mirror copies")
    assert running.count("v2", "mirror", "404") == 1 and running.count("v2", "live", "200") == 11
    assert running.count("v1", code="200") == 33 and running.count("v1", code="404") == 1
