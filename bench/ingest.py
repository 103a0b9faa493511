"""Benchmark: the ingest component vs a plain pyiceberg `table.append` of the same parquet files.

    .venv/bin/python bench/ingest.py [--rows 5000000] [--files 10] [--runs 3]

Synthetic MovieLens-like ratings (userId, movieId, rating, timestamp over 1995-2016) in several parquet
files, loaded into two fresh tables of one SQLite-backed SQL catalog per run, shaped like the sample's
`ratings` table (partitioned by year(timestamp)). Three contenders, in rotating order per run:

  plain       read the files with pyarrow, `table.append(concatenated)` (one process, imports paid)
  component   `main()` of components/ingest in this process: listing, record, strict conversion,
              chunked writes, the exactly-once commit (the per-row cost of the component)
  subprocess  `python components/ingest ...` as the executors run it, interpreter start and imports
              (about a second of pyiceberg/SQLAlchemy/pyarrow imports) included

Prints rows/s (median of the runs) for each and its ratio to plain.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import YearTransform
from pyiceberg.types import FloatType, LongType, NestedField, TimestamptzType

from loom.drivers.iceberg_catalog import open_catalog

ROOT = Path(__file__).resolve().parent.parent
COMPONENT = ROOT / "components" / "ingest"
SCHEMA = Schema(
    NestedField(1, "userId", LongType(), required=True),
    NestedField(2, "movieId", LongType(), required=True),
    NestedField(3, "rating", FloatType(), required=True),
    NestedField(4, "timestamp", TimestamptzType(), required=True),
)
SPEC = PartitionSpec(PartitionField(source_id=4, field_id=1000, transform=YearTransform(), name="timestamp_year"))
ARROW = pa.schema([
    pa.field("userId", pa.int64(), nullable=False),
    pa.field("movieId", pa.int64(), nullable=False),
    pa.field("rating", pa.float32(), nullable=False),
    pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
])
START_US, END_US = 788_918_400_000_000, 1_483_228_800_000_000  # 1995-01-01 .. 2017-01-01


def write_files(directory: Path, rows: int, files: int) -> list[Path]:
    rng = np.random.default_rng(42)
    paths = []
    for i in range(files):
        n = rows // files + (1 if i < rows % files else 0)
        table = pa.table({
            "userId": rng.integers(1, 200_000, n),
            "movieId": rng.integers(1, 60_000, n),
            "rating": (rng.integers(1, 11, n) / 2).astype(np.float32),
            "timestamp": pa.array(rng.integers(START_US, END_US, n), pa.timestamp("us", tz="UTC")),
        }, schema=ARROW)
        path = directory / f"ratings-{i:03d}.parquet"
        pq.write_table(table, path)
        paths.append(path)
    return paths


def load_component() -> Callable[[list[str]], int]:
    sys.path.insert(0, str(COMPONENT))
    spec = importlib.util.spec_from_file_location("ingest_component", COMPONENT / "__main__.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.main


def rows_in(catalog: Catalog, identifier: str) -> int:
    snapshot = catalog.load_table(identifier).current_snapshot()
    return int(snapshot.summary["total-records"]) if snapshot and snapshot.summary else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=5_000_000)
    p.add_argument("--files", type=int, default=10)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="loom-bench-ingest-") as tmp:
        base = Path(tmp)
        (base / "in").mkdir()
        print(f"writing {args.rows:,} rows in {args.files} parquet files ...", file=sys.stderr)
        paths = write_files(base / "in", args.rows, args.files)
        properties = {"type": "sql", "uri": f"sqlite:///{base / 'catalog.db'}", "warehouse": f"file://{base / 'wh'}"}
        (base / "catalog.json").write_text(json.dumps(properties))
        catalog = open_catalog("bench", properties)
        catalog.create_namespace("bench")
        component_main = load_component()

        def cli(identifier: str) -> list[str]:
            return ["--catalog-name", "bench", "--catalog-properties-file", str(base / "catalog.json"),
                    "--table", identifier, "--ingest", "bench", "--format", "parquet",
                    "--uri", f"file://{base / 'in'}/*.parquet"]

        def plain(identifier: str) -> None:
            table = catalog.load_table(identifier)
            table.append(pa.concat_tables(pq.read_table(path) for path in paths))

        def component(identifier: str) -> None:
            with contextlib.redirect_stdout(io.StringIO()):  # its one JSON result line
                assert component_main(cli(identifier)) == 0

        def subproc(identifier: str) -> None:
            proc = subprocess.run([sys.executable, str(COMPONENT), *cli(identifier)], capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr

        contenders: dict[str, Callable[[str], None]] = {"plain": plain, "component": component, "subprocess": subproc}
        seconds: dict[str, list[float]] = {name: [] for name in contenders}
        names = list(contenders)
        for run in range(args.runs):
            order = names[run % len(names):] + names[: run % len(names)]
            for name in order:
                identifier = f"bench.{name}_{run}"
                catalog.create_table(identifier, SCHEMA, partition_spec=SPEC)
                started = time.perf_counter()
                contenders[name](identifier)
                seconds[name].append(time.perf_counter() - started)
                assert rows_in(catalog, identifier) == args.rows, f"{identifier} has the wrong row count"
            print(f"run {run + 1}: " + ", ".join(f"{n} {seconds[n][-1]:.2f}s" for n in names), file=sys.stderr)
        catalog.close()

    rate = {name: args.rows / statistics.median(s) for name, s in seconds.items()}
    print(f"ingest of {args.rows:,} rows in {args.files} parquet files, median of {args.runs} runs")
    for name in names:
        ratio = "" if name == "plain" else f"   ratio {rate[name] / rate['plain']:.2f}"
        print(f"  {name:<11} {rate[name]:>12,.0f} rows/s   ({statistics.median(seconds[name]):.2f} s){ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
