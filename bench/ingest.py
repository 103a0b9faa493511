"""Benchmark: the ingest component vs a plain pyiceberg `table.append` of the same parquet files, on
both of its paths, side by side in one run.

    .venv/bin/python bench/ingest.py [--rows 5000000] [--files 10] [--zero-copy-rows 50000000]
                                     [--zero-copy-files 50] [--runs 3]

Synthetic MovieLens-like ratings (userId, movieId, rating, timestamp over 1995-2016) in parquet files,
loaded into fresh tables of one SQLite-backed SQL catalog, shaped like the sample's `ratings` table
(partitioned by year(timestamp)). Contenders, in rotating order per run:

  mixed       --rows in --files files, half of them of the table's exact schema and each within one
              year (registered as they are), half with rows over many years (rewritten).
  rewrite     --rows in --files files whose rows span many years: no file can be registered as it is,
              so every row is read, converted and written (the rewrite path alone).
  zero-copy   --zero-copy-rows in --zero-copy-files files of the table's exact schema, each within one
              year: every file is registered as it is.

Each is measured two ways, side by side: in a fresh process each (`python components/ingest ...` as
the executors run it, against `python bench/ingest.py --append-into ...`, which loads the catalog and
appends the files' rows with `table.append` in one snapshot), and in this warm process (the
component's `main()` against `table.append`, imports paid and memory already mapped). Prints rows/s and
seconds (medians of the runs) and the ratio baseline seconds / ours (above 1: ours is faster).
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


YEAR_US = (END_US - START_US) // 22


def write_files(directory: Path, rows: int, files: int, one_year_each: bool = False, name: str = "ratings") -> list[Path]:
    """Files of random ratings over 1995-2016, or (one_year_each) each file within one year."""
    import numpy as np  # not in the baseline's process

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(42)
    paths = []
    for i in range(files):
        n = rows // files + (1 if i < rows % files else 0)
        start = START_US + (i % 22) * YEAR_US + 86_400_000_000 if one_year_each else START_US
        end = start + YEAR_US - 2 * 86_400_000_000 if one_year_each else END_US
        table = pa.table({
            "userId": rng.integers(1, 200_000, n),
            "movieId": rng.integers(1, 60_000, n),
            "rating": (rng.integers(1, 11, n) / 2).astype(np.float32),
            "timestamp": pa.array(rng.integers(start, end, n), pa.timestamp("us", tz="UTC")),
        }, schema=ARROW)
        path = directory / f"{name}-{i:03d}.parquet"
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


def measure(catalog: Catalog, prefix: str, rows: int, runs: int,
            contenders: dict[str, Callable[[str], None]]) -> dict[str, list[float]]:
    """Seconds per run of each contender, each loading into a fresh table, in rotating order."""
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for run in range(runs):
        for name in names[run % len(names):] + names[: run % len(names)]:
            identifier = f"bench.{prefix}_{name}_{run}"
            catalog.create_table(identifier, SCHEMA, partition_spec=SPEC)
            started = time.perf_counter()
            contenders[name](identifier)
            seconds[name].append(time.perf_counter() - started)
            assert rows_in(catalog, identifier) == rows, f"{identifier} has the wrong row count"
        print(f"{prefix} run {run + 1}: " + ", ".join(f"{n} {seconds[n][-1]:.2f}s" for n in names), file=sys.stderr)
    return seconds


def append_files(catalog: Catalog, identifier: str, paths: list[Path]) -> None:
    """The baseline: the files' rows through pyiceberg's `table.append`, in one snapshot (all at once,
    or one file at a time in one transaction when there are many)."""
    table = catalog.load_table(identifier)
    if len(paths) <= 10:
        table.append(pa.concat_tables(pq.read_table(path) for path in paths))
        return
    with table.transaction() as tx:
        for path in paths:
            tx.append(pq.read_table(path))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=5_000_000, help="rows of the mixed and the rewrite comparison")
    p.add_argument("--files", type=int, default=10)
    p.add_argument("--zero-copy-rows", type=int, default=50_000_000, help="rows of the zero-copy comparison")
    p.add_argument("--zero-copy-files", type=int, default=50)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--append-into", nargs="+", metavar=("CATALOG_JSON TABLE", "FILE"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.append_into:  # the baseline in a process of its own, as the component runs
        catalog_json, identifier, *files = args.append_into
        append_files(open_catalog("bench", json.loads(Path(catalog_json).read_text())), identifier, [Path(f) for f in files])
        return 0

    with tempfile.TemporaryDirectory(prefix="loom-bench-ingest-") as tmp:
        base = Path(tmp)
        print(f"writing {2 * args.rows:,} + {args.zero_copy_rows:,} rows of parquet ...", file=sys.stderr)
        spread = write_files(base / "spread", args.rows, args.files)
        half = args.files // 2
        mixed = [*write_files(base / "mixed", args.rows // 2, half, one_year_each=True, name="matching"),
                 *write_files(base / "mixed", args.rows - args.rows // 2, args.files - half, name="spread")]
        matching = write_files(base / "matching", args.zero_copy_rows, args.zero_copy_files, one_year_each=True)
        properties = {"type": "sql", "uri": f"sqlite:///{base / 'catalog.db'}", "warehouse": f"file://{base / 'wh'}"}
        (base / "catalog.json").write_text(json.dumps(properties))
        catalog = open_catalog("bench", properties)
        catalog.create_namespace("bench")
        component_main = load_component()

        def cli(identifier: str, directory: str) -> list[str]:
            return ["--catalog-name", "bench", "--catalog-properties-file", str(base / "catalog.json"),
                    "--table", identifier, "--ingest", "bench", "--format", "parquet",
                    "--uri", f"file://{base / directory}/*.parquet"]

        def contenders(directory: str, paths: list[Path], zero_copy_files: int) -> dict[str, Callable[[str], None]]:
            def append_here(identifier: str) -> None:
                append_files(catalog, identifier, paths)

            def append_process(identifier: str) -> None:
                command = [sys.executable, __file__, "--append-into", str(base / "catalog.json"), identifier, *map(str, paths)]
                proc = subprocess.run(command, capture_output=True, text=True)
                assert proc.returncode == 0, proc.stderr

            def ours_here(identifier: str) -> None:
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    assert component_main(cli(identifier, directory)) == 0

            def ours_process(identifier: str) -> None:
                proc = subprocess.run([sys.executable, str(COMPONENT), *cli(identifier, directory)],
                                      capture_output=True, text=True)
                assert proc.returncode == 0, proc.stderr
                assert json.loads(proc.stdout)["zeroCopyFiles"] == zero_copy_files, proc.stderr

            return {"append-process": append_process, "ours-process": ours_process,
                    "append-in-process": append_here, "ours-in-process": ours_here}

        results = (
            ("mixed", args.rows, args.files,
             measure(catalog, "mixed", args.rows, args.runs, contenders("mixed", mixed, half))),
            ("rewrite only", args.rows, args.files,
             measure(catalog, "rewrite", args.rows, args.runs, contenders("spread", spread, 0))),
            ("zero-copy", args.zero_copy_rows, args.zero_copy_files,
             measure(catalog, "zerocopy", args.zero_copy_rows, args.runs,
                     contenders("matching", matching, args.zero_copy_files))),
        )
        catalog.close()

    print(f"ingest vs pyiceberg table.append of the same parquet files, SQLite SQL catalog, median of {args.runs} runs")
    print("ratio = baseline seconds / ours (above 1: ours is faster)")
    for where in ("process", "in-process"):
        title = ("each in a fresh process, as a workload runs (interpreter start and imports included)"
                 if where == "process" else "in the bench's own warm process (imports paid, no process start)")
        print(f"\n  {title}")
        print(f"  {'path':<38} {'ours':>26} {'baseline (table.append)':>28} {'ratio':>6}")
        for label, n, files, seconds in results:
            mine, base_s = statistics.median(seconds[f"ours-{where}"]), statistics.median(seconds[f"append-{where}"])
            what = f"{label} ({n:,} rows, {files} files)"
            print(f"  {what:<38} {n / mine:>13,.0f} rows/s {mine:>6.2f} s {n / base_s:>15,.0f} rows/s {base_s:>6.2f} s"
                  f" {base_s / mine:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
