"""Benchmark: Loom's online feature reads against Feast's `get_online_features`, side by side.

    .venv/bin/python bench/feature_online.py [--entities 50000] [--runs 5] [--reads 2000] [--conditions quiet loaded]

A throwaway redis-server and an Iceberg SQL catalog (SQLite) holding synthetic user features shaped
like the sample's `user_features` (userId, ratingCount, meanRating, favoriteGenre, eventTimestamp),
written online by Feast (`write_to_online_store`); synthetic because the comparison needs more
entities than MovieLens has users.

Three readers of the same store, for 1 and for 100 entities, which return identical values (asserted
before timing):

  serve    components/serve/online.py's `OnlineReader`, what Loom's model servers call
           (Feast-free: keys and values in Feast's layout, one held connection, hiredis)
  driver   `loom.drivers.feast_online.OnlineFeatureReader` (keys and values by Feast's helpers)
  feast    `FeatureStore.get_online_features(...).to_dict()` on the same store

Each run times every reader's reads back to back (the order of readers alternating between runs)
and takes their p50/p99; the table shows medians over runs and Feast's figure divided by ours. Two
conditions (`--conditions` runs one alone, to repeat the quiet one on a shared machine):

  quiet    redis-server pinned to CPU 0 and this process to CPU 1 (sched_setaffinity, as `taskset`)
  loaded   the same, with a busy loop pinned beside each (`taskset -c 0` and `-c 1`): both compete
           for their core all the time, with the same placement in every run

The machine may be shared: the load average is printed with the results. Nothing touches the garbage
collector, as the serving runtime does not (Loom's reads free what they allocate: a run of them
triggers no collection).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _feature_store import SPEC, start_redis, user_features, user_features_lake

from loom.api.featureset import FeatureSetSpec
from loom.drivers import feast_store
from loom.drivers.feast_online import OnlineFeatureReader
from loom.drivers.feast_store import OnlineKind, StoreSettings
from loom.services.featureset import feature_view_definition

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "components"))
from serve.online import OnlineReader, OnlineSource  # noqa: E402

READERS = ("serve", "driver", "feast")
BUSY_LOOP = "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    pass"
Read = Callable[[Sequence[Mapping[str, Any]]], dict[str, list[Any]]]


def materialized_store(base: Path, redis_address: str, entities: int) -> tuple[StoreSettings, str]:
    """A Feast project whose view holds `entities` users online, as Feast itself writes them."""
    lake = user_features_lake(base)
    data = user_features(entities, entities, seed=7)
    lake.table.append(data)
    registry = f"sqlite:///{base / 'registry.db'}"
    settings = StoreSettings("loom_bench", registry, OnlineKind.REDIS, redis_address)
    definition = feature_view_definition(FeatureSetSpec.model_validate(SPEC), lake.spec, "bench", "user-features",
                                         registry)
    feast_store.apply(settings, definition)
    feast_store.open_store(settings).write_to_online_store(definition.name, data.to_pandas())
    return settings, definition.name


def readers(settings: StoreSettings, view: str) -> dict[str, Read]:
    driver = OnlineFeatureReader(settings, view)
    serve = OnlineReader(OnlineSource(settings.online_connection, settings.project, view, {"userId": "INT64"},
                                      driver.features))
    store = feast_store.open_store(settings)
    refs = [f"{view}:{f}" for f in driver.features]
    return {"serve": serve.read, "driver": driver.read,
            "feast": lambda rows: store.get_online_features(features=refs, entity_rows=rows).to_dict()}


def percentiles(read: Read, rows: Sequence[Mapping[str, Any]], reads: int) -> tuple[float, float]:
    for _ in range(min(200, reads)):
        read(rows)
    samples = np.empty(reads)
    clock = time.perf_counter_ns
    for i in range(reads):
        started = clock()
        read(rows)
        samples[i] = clock() - started
    p50, p99 = np.percentile(samples, [50, 99]) / 1e6
    return float(p50), float(p99)


@contextlib.contextmanager
def condition(name: str, redis_pid: int) -> Iterator[None]:
    """redis-server on CPU 0 and this process on CPU 1; loaded, a busy loop beside each of them, so
    each shares its core with a process that always wants it, the same way in every run."""
    everything = set(range(os.cpu_count() or 1))
    os.sched_setaffinity(redis_pid, {0})
    os.sched_setaffinity(0, {1})
    burners: list[subprocess.Popen[bytes]] = []
    if name == "loaded":  # each loop ends when this process is gone, however it ends
        burners = [subprocess.Popen(["taskset", "-c", str(cpu), sys.executable, "-c", BUSY_LOOP]) for cpu in (0, 1)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
        os.sched_setaffinity(redis_pid, everything)
        os.sched_setaffinity(0, everything)


def measure(read: dict[str, Read], rows: Sequence[Mapping[str, Any]], runs: int, reads: int
            ) -> dict[str, tuple[float, float]]:
    """Median p50 and p99 of each reader over the runs."""
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in READERS}
    for run_number in range(runs):
        order = READERS if run_number % 2 == 0 else READERS[::-1]
        for name in order:
            results[name].append(percentiles(read[name], rows, reads))
    return {name: (statistics.median(r[0] for r in got), statistics.median(r[1] for r in got))
            for name, got in results.items()}


def show(label: str, got: dict[str, tuple[float, float]]) -> None:
    f50, f99 = got["feast"]
    cells = [f"feast {f50:6.3f} / {f99:6.3f} ms"]
    for name in ("serve", "driver"):
        o50, o99 = got[name]
        cells.append(f"{name} {o50:6.3f} / {o99:6.3f} ms = {f50 / o50:4.1f}x / {f99 / o99:4.1f}x")
    print(f"{label:22s} " + " | ".join(cells), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entities", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--reads", type=int, default=2000, help="timed reads of 1 entity per run (100 entities: /4)")
    parser.add_argument("--conditions", nargs="+", choices=["quiet", "loaded"], default=["quiet", "loaded"])
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so redis-server is stopped too

    with tempfile.TemporaryDirectory(prefix="loom-bench-online-") as tmp:
        server, address = start_redis(Path(tmp))
        try:
            settings, view = materialized_store(Path(tmp), address, args.entities)
            read = readers(settings, view)
            rng = random.Random(11)
            requests = {size: [{"userId": u} for u in rng.sample(range(1, args.entities + 1), size)]
                        for size in (1, 100)}
            for rows in requests.values():
                assert read["serve"](rows) == read["driver"](rows) == read["feast"](rows)
            print(f"{args.entities} entities online, redis at {address}, {os.cpu_count()} cores; medians of"
                  f" {args.runs} runs of back-to-back reads; p50 / p99, speed-up = feast / ours\n")
            for name in args.conditions:
                with condition(name, server.pid):
                    load = os.getloadavg()[0]
                    for size, rows in requests.items():
                        reads = args.reads if size == 1 else max(args.reads // 4, 100)
                        label = f"{name}, {size} entit{'y' if size == 1 else 'ies'}"
                        show(label, measure(read, rows, args.runs, reads))
                    print(f"{'':22s} (load average {load:.1f} -> {os.getloadavg()[0]:.1f})", flush=True)
        finally:
            server.terminate()
            server.wait(timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
