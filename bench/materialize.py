"""Benchmark: Loom's materialization against `feast materialize-incremental`, side by side, plus the
peak memory of a large Loom materialization.

    .venv/bin/python bench/materialize.py [--entities 50000] [--runs 3] [--big-rows 10000000]
                                          [--big-entities 1000000] [--skip-big]

A throwaway redis-server and an Iceberg SQL catalog (SQLite) holding synthetic user features shaped
like the sample's `user_features` (userId, ratingCount, meanRating, favoriteGenre, eventTimestamp);
synthetic because the comparison needs more entities than MovieLens has users.

  throughput   `python components/materialize` (quality gate, pin, Loom's Redis writer, online count)
               vs `feast materialize-incremental` (the CLI) into fresh projects over the same snapshot;
               both subprocesses, interpreter start included; rows/s = entity rows / wall time,
               median of the runs, alternating which goes first.
  big run      one Loom materialization of --big-rows rows (--big-entities entities, so each has
               several rows and the newest must win) in files of 1 M rows; the child's peak RSS, as
               its own VmHWM read when it exits. Not getrusage: a child started from this process
               (about 800 MiB once Feast is imported) is charged this process's RSS up to its exec,
               which is how an earlier version reported 790 MiB for a 300 k-row run of 380.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from _feature_store import SPEC, start_redis, user_features, user_features_lake

from loom.api.featureset import FeatureSetSpec
from loom.domain.feature_views import FeatureViewDefinition
from loom.drivers import feast_pins, feast_store
from loom.drivers.feast_store import OnlineKind, StoreSettings
from loom.features.materialize import MaterializeRequest
from loom.services.featureset import feature_view_definition

ROOT = Path(__file__).resolve().parent.parent
COMPONENT = ROOT / "components" / "materialize"
FEAST_CLI = Path(sys.executable).with_name("feast")
GIB = 1024**3
# Runs the component given as its first argument, then prints its own peak RSS (VmHWM) last on stderr.
PEAK_AT_EXIT = """import atexit, runpy, sys
def peak():
    with open("/proc/self/status") as status:
        print(next(line for line in status if line.startswith("VmHWM")).strip(), file=sys.stderr)
atexit.register(peak)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


class Bench:
    """A lake table in a fresh SQLite catalog, and fresh Feast projects that read it."""

    def __init__(self, base: Path, redis_address: str) -> None:
        self.base, self.redis = base, redis_address
        lake = user_features_lake(base)
        self.lake_props, self.table, self.lake = lake.properties, lake.table, lake.spec
        self.runs = 0

    @property
    def snapshot(self) -> int:
        return self.table.current_snapshot().snapshot_id

    def fresh_store(self) -> tuple[StoreSettings, FeatureViewDefinition]:
        """A new project and registry, the definition applied, nothing materialized yet."""
        self.runs += 1
        registry = f"sqlite:///{self.base / f'registry-{self.runs}.db'}"
        settings = StoreSettings(f"loom_bench_{self.base.name}_{self.runs}", registry, OnlineKind.REDIS, self.redis)
        definition = feature_view_definition(FeatureSetSpec.model_validate(SPEC), self.lake, f"bench-{self.runs}",
                                             "user-features", registry)
        feast_store.apply(settings, definition)
        return settings, definition

    def request(self, settings: StoreSettings, definition: FeatureViewDefinition) -> str:
        return MaterializeRequest(
            definition=definition.to_json(), store=settings.to_json(), lake_catalog_name="default",
            lake_catalog=self.lake_props, lake_table="bench.user_features", snapshot_id=self.snapshot,
        ).model_dump_json()

    def ours(self) -> tuple[float, int]:
        settings, definition = self.fresh_store()
        request = self.request(settings, definition)
        started = time.perf_counter()
        subprocess.run([sys.executable, str(COMPONENT), "--request", request], check=True, capture_output=True)
        return time.perf_counter() - started, feast_store.online_row_count(settings, definition)

    def feast_cli(self) -> tuple[float, int]:
        settings, definition = self.fresh_store()
        feast_pins.move(definition.source.pin, feast_pins.snapshot_metadata_location(self.table, self.snapshot))
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
        subprocess.run([str(FEAST_CLI), "-c", str(repo), "materialize-incremental", end],
                       check=True, capture_output=True)
        return time.perf_counter() - started, feast_store.online_row_count(settings, definition)


def big_run(base: Path, address: str, rows: int, entities: int) -> None:
    """A lake table of `rows` rows appended in files of at most 1 M rows, materialized by Loom alone."""
    bench = Bench(base, address)
    chunk = 1_000_000
    for i, offset in enumerate(range(0, rows, chunk)):
        bench.table.append(user_features(min(chunk, rows - offset), entities, seed=100 + i))
    settings, definition = bench.fresh_store()
    request = bench.request(settings, definition)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PEAK_AT_EXIT, str(COMPONENT), "--request", request],
                          check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    peak = int(proc.stderr.strip().splitlines()[-1].split()[1]) * 1024  # "VmHWM:  N kB"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["onlineRowCount"] == feast_store.online_row_count(settings, definition)
    print(f"{'loom, big run':28s} {rows} rows, {result['rowsWritten']} entities written in {seconds:.1f} s "
          f"({rows / seconds:,.0f} rows read/s, rowsPerSecond {result['rowsPerSecond']:,.0f})"
          f" | peak RSS {peak / 2**20:,.0f} MiB | {'under' if peak < GIB else 'OVER'} 1 GiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entities", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--big-rows", type=int, default=10_000_000)
    parser.add_argument("--big-entities", type=int, default=1_000_000)
    parser.add_argument("--skip-big", action="store_true", help="leave out the big run (quick runs)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="loom-bench-materialize-") as tmp:
        base = Path(tmp)
        server, address = start_redis(base)
        try:
            if not args.skip_big:
                (base / "big").mkdir()
                big_run(base / "big", address, args.big_rows, args.big_entities)
            (base / "small").mkdir()
            bench = Bench(base / "small", address)
            bench.table.append(user_features(args.entities, args.entities, seed=7))
            print(f"{args.entities} entities, redis at {address}, {args.runs} runs, medians")
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
        finally:
            server.terminate()
            server.wait(timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
