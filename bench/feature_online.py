"""Benchmark: Loom's online feature path and materialization against plain Feast, side by side.

    .venv/bin/python bench/feature_online.py [--entities 50000] [--runs 3] [--reads 2000]

A throwaway redis-server and an Iceberg SQL catalog (SQLite) holding synthetic user features shaped
like the sample's `user_features` (userId, ratingCount, meanRating, favoriteGenre, eventTimestamp);
synthetic because the comparison needs more entities than MovieLens has users.

  online reads   `OnlineFeatureReader.read` (what Loom's model servers call: pipelined HMGETs of
                 Feast's key layout, decoded by Feast's helpers) vs `FeatureStore.get_online_features`
                 on the same store, for 1 and for 100 entities; p50/p99 per run, medians over runs.
                 Both return identical values (asserted before timing).
  materialize    `python components/materialize` (quality gate, pin, Feast materialize, online count)
                 vs `feast materialize-incremental` (the CLI) into fresh projects over the same
                 snapshot; both as subprocesses, interpreter start and `import feast` included;
                 rows/s = entity rows written / wall time, median of the runs.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import redis

from loom.api.datalake import DataLakeSpec
from loom.api.featureset import FeatureSetSpec
from loom.devcluster.served import free_port
from loom.domain.feature_views import FeatureViewDefinition
from loom.drivers import feast_pins, feast_store
from loom.drivers.feast_online import OnlineFeatureReader
from loom.drivers.feast_store import OnlineKind, StoreSettings
from loom.drivers.iceberg_catalog import open_catalog
from loom.features.materialize import MaterializeRequest
from loom.services.featureset import feature_view_definition

ROOT = Path(__file__).resolve().parent.parent
COMPONENT = ROOT / "components" / "materialize"
FEAST_CLI = Path(sys.executable).with_name("feast")
GENRES = ["Drama", "Comedy", "Action", "Thriller", "Romance", "Sci-Fi", "Adventure", "Crime"]
SPEC: dict[str, Any] = {
    "source": {"dataLakeRef": {"name": "bench", "table": "user_features"}, "timestampField": "eventTimestamp"},
    "entities": [{"name": "user", "joinKeys": ["userId"]}],
    "features": [{"name": "ratingCount", "dtype": "Int64"}, {"name": "meanRating", "dtype": "Float64"},
                 {"name": "favoriteGenre", "dtype": "String"}],
    "ttl": "0s",
}


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port),
                             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            return proc, f"127.0.0.1:{port}"
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def user_features(entities: int) -> pa.Table:
    rng = np.random.default_rng(7)
    # Recent events: `feast materialize-incremental` starts a first run a year back (ttl 0) or one ttl
    # back, whichever applies, so historical rows would never reach its online store.
    start = datetime.now(timezone.utc) - timedelta(days=300)
    return pa.table({
        "userId": pa.array(np.arange(1, entities + 1), pa.int64()),
        "ratingCount": pa.array(rng.integers(1, 2000, entities), pa.int64()),
        "meanRating": pa.array(np.round(rng.uniform(0.5, 5.0, entities), 3), pa.float64()),
        "favoriteGenre": pa.array([GENRES[i] for i in rng.integers(0, len(GENRES), entities)], pa.string()),
        "eventTimestamp": pa.array([start + timedelta(minutes=int(m)) for m in rng.integers(0, 400_000, entities)],
                                   pa.timestamp("us", tz="UTC")),
    })


class Bench:
    def __init__(self, base: Path, redis_address: str, entities: int) -> None:
        self.base, self.redis = base, redis_address
        self.lake_props = {"type": "sql", "uri": f"sqlite:///{base / 'lake.db'}", "warehouse": f"file://{base / 'wh'}"}
        catalog = open_catalog("default", self.lake_props)
        catalog.create_namespace("bench")
        data = user_features(entities)
        self.table = catalog.create_table(("bench", "user_features"), schema=data.schema)
        self.table.append(data)
        self.snapshot = self.table.current_snapshot().snapshot_id
        self.lake = DataLakeSpec.model_validate({
            "catalog": {"type": "sql", "uri": self.lake_props["uri"], "warehouse": self.lake_props["warehouse"]},
            "namespace": "bench",
            "tables": [{"name": "user_features", "columns": [{"name": "userId", "type": "long"}]}],
        })
        self.runs = 0

    def fresh_store(self) -> tuple[StoreSettings, FeatureViewDefinition]:
        """A new project and registry, the definition applied, nothing materialized yet."""
        self.runs += 1
        namespace = f"bench-{self.runs}"
        registry = f"sqlite:///{self.base / f'registry-{self.runs}.db'}"
        settings = StoreSettings(f"loom_bench_{self.runs}", registry, OnlineKind.REDIS, self.redis)
        definition = feature_view_definition(FeatureSetSpec.model_validate(SPEC), self.lake, namespace,
                                             "user-features", registry)
        feast_store.apply(settings, definition)
        return settings, definition

    def ours(self) -> tuple[float, int]:
        settings, definition = self.fresh_store()
        request = MaterializeRequest(
            definition=definition.to_json(), store=settings.to_json(), lake_catalog_name="default",
            lake_catalog=self.lake_props, lake_table="bench.user_features", snapshot_id=self.snapshot,
        )
        started = time.perf_counter()
        subprocess.run([sys.executable, str(COMPONENT), "--request", request.model_dump_json()],
                       check=True, capture_output=True)
        return time.perf_counter() - started, feast_store.online_row_count(settings, definition)

    def feast_cli(self) -> tuple[float, int]:
        settings, definition = self.fresh_store()
        pin = definition.source.pin
        feast_pins.move(pin, feast_pins.snapshot_metadata_location(self.table, self.snapshot))
        repo = self.base / f"repo-{self.runs}"
        repo.mkdir()
        (repo / "feature_store.yaml").write_text(
            f"project: {settings.project}\nprovider: local\n"
            f"registry:\n  registry_type: sql\n  path: {settings.registry_uri}\n  cache_ttl_seconds: 0\n"
            f"online_store:\n  type: redis\n  connection_string: {self.redis}\n"
            "offline_store:\n  type: duckdb\nentity_key_serialization_version: 3\n"
        )
        end = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        started = time.perf_counter()
        command = [str(FEAST_CLI), "-c", str(repo), "materialize-incremental", end]
        subprocess.run(command, check=True, capture_output=True)
        return time.perf_counter() - started, feast_store.online_row_count(settings, definition)


def percentiles(call: Callable[[], object], reads: int) -> tuple[float, float]:
    for _ in range(min(200, reads)):
        call()
    samples = []
    for _ in range(reads):
        started = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - started) / 1e6)
    return float(np.percentile(samples, 50)), float(np.percentile(samples, 99))


def online_latency(settings: StoreSettings, view: str, entities: int, runs: int, reads: int) -> None:
    store = feast_store.open_store(settings)
    reader = OnlineFeatureReader(settings, view)
    refs = [f"{view}:{f}" for f in reader.features]
    rng = random.Random(11)
    for size in (1, 100):
        rows = [{"userId": u} for u in rng.sample(range(1, entities + 1), size)]
        assert reader.read(rows) == store.get_online_features(features=refs, entity_rows=rows).to_dict()
        ours: list[tuple[float, float]] = []
        feast: list[tuple[float, float]] = []
        for run in range(runs):
            contenders = [(ours, lambda: reader.read(rows)),
                          (feast, lambda: store.get_online_features(features=refs, entity_rows=rows))]
            for results, call in contenders if run % 2 == 0 else contenders[::-1]:
                results.append(percentiles(call, reads if size == 1 else max(reads // 4, 100)))
        show(f"online read, {size} entit{'y' if size == 1 else 'ies'}", ours, feast)


def show(what: str, ours: Sequence[tuple[float, float]], feast: Sequence[tuple[float, float]]) -> None:
    o50, o99 = (statistics.median(x[i] for x in ours) for i in (0, 1))
    f50, f99 = (statistics.median(x[i] for x in feast) for i in (0, 1))
    print(f"{what:28s} loom p50 {o50:7.3f} ms  p99 {o99:7.3f} ms | feast p50 {f50:7.3f} ms  p99 {f99:7.3f} ms"
          f" | speed-up p50 {f50 / o50:4.1f}x  p99 {f99 / o99:4.1f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entities", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--reads", type=int, default=2000, help="timed reads of 1 entity per run (100-entity: /4)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="loom-bench-features-") as tmp:
        base = Path(tmp)
        server, address = start_redis(base)
        try:
            bench = Bench(base, address, args.entities)
            print(f"{args.entities} entities, redis at {address}, {args.runs} runs, medians\n")
            times: dict[str, list[float]] = {"loom": [], "feast": []}
            for run in range(args.runs):
                order = [("loom", bench.ours), ("feast", bench.feast_cli)]
                for name, contender in order if run % 2 == 0 else order[::-1]:
                    seconds, rows = contender()
                    assert rows == args.entities, f"{name} wrote {rows} rows"
                    times[name].append(seconds)
            loom_s, feast_s = statistics.median(times["loom"]), statistics.median(times["feast"])
            print(f"{'materialize (subprocess)':28s} loom {args.entities / loom_s:8.0f} rows/s ({loom_s:.2f} s)"
                  f" | feast materialize-incremental {args.entities / feast_s:8.0f} rows/s ({feast_s:.2f} s)"
                  f" | ratio {feast_s / loom_s:4.2f}x")
            settings, definition = bench.fresh_store()
            bench_request = MaterializeRequest(
                definition=definition.to_json(), store=settings.to_json(), lake_catalog_name="default",
                lake_catalog=bench.lake_props, lake_table="bench.user_features", snapshot_id=bench.snapshot)
            subprocess.run([sys.executable, str(COMPONENT), "--request", bench_request.model_dump_json()],
                           check=True, capture_output=True)
            online_latency(settings, definition.name, args.entities, args.runs, args.reads)
        finally:
            server.terminate()
            server.wait(timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
