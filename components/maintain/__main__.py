"""Iceberg table maintenance for a DataLake: snapshot expiry and small-file compaction.

    python components/maintain --catalog-name NAME --table NS.TABLE [--table ...] expire \
        --older-than 168h --retain-last 5
    python components/maintain --catalog-name NAME --table NS.TABLE [--table ...] compact \
        --engine auto|pyiceberg|spark --target-file-size-bytes 134217728

The catalog properties (pyiceberg's `load_catalog` keys, credentials included) come from the JSON file
named by --catalog-properties-file (a relative path is one of the workload's files, in
$LOOM_WORKLOAD_FILES) or from the LOOM_CATALOG_PROPERTIES environment variable, never from the command
line. The only thing written to stdout is one JSON line with the result, which the operator
records; Spark and everything else write to stderr. Exit status 1 when a table failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from loom.api.datalake import CompactionEngine
from loom.api.meta import Duration, parse_duration
from loom.drivers import iceberg_maintenance, spark
from loom.drivers.iceberg_catalog import open_catalog
from loom.workload_args import add_catalog_arguments, workload_properties

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyspark.sql import SparkSession

AUTO = "auto"
# `auto` rewrites tables below this many bytes of data files in-process with pyiceberg (which holds the
# rewritten files in memory) and hands anything larger to Spark.
SMALL_TABLE_BYTES = 256 * 1024 * 1024


def expire(catalog: Catalog, identifier: str, args: argparse.Namespace) -> dict[str, Any]:
    table = catalog.load_table(identifier)
    before = iceberg_maintenance.table_totals(table)
    cutoff = datetime.now(timezone.utc) - parse_duration(args.older_than)
    expired = iceberg_maintenance.expire_snapshots(table, cutoff, args.retain_last)
    return {
        "snapshotsBefore": before.snapshots,
        "snapshotsExpired": len(expired),
        "snapshotsAfter": len(table.metadata.snapshots),
        "currentSnapshotId": table.metadata.current_snapshot_id,
    }


class Compactor:
    """Runs compaction table by table, starting Spark once and only when a table needs it."""

    def __init__(self, catalog_name: str, properties: Mapping[str, str], args: argparse.Namespace) -> None:
        self.catalog_name = catalog_name
        self.properties = properties
        self.args = args
        self._spark: SparkSession | None = None

    def engine_for(self, total_bytes: int) -> str:
        if self.args.engine != AUTO:
            return self.args.engine
        small = total_bytes < self.args.small_table_bytes
        return CompactionEngine.PYICEBERG.value if small else CompactionEngine.SPARK.value

    def spark(self) -> SparkSession:
        if self._spark is None:
            self._spark = spark.spark_session(
                self.catalog_name,
                self.properties,
                master=self.args.spark_master,
                driver_memory=self.args.spark_driver_memory,
                ivy_dir=self.args.ivy_dir,
            )
        return self._spark

    def __call__(self, catalog: Catalog, identifier: str, args: argparse.Namespace) -> dict[str, Any]:
        table = catalog.load_table(identifier)
        before = iceberg_maintenance.table_totals(table)
        engine = self.engine_for(before.total_bytes)
        if engine == CompactionEngine.SPARK.value:
            counts = spark.rewrite_data_files(
                self.spark(),
                self.catalog_name,
                identifier,
                args.target_file_size_bytes,
                iceberg_maintenance.MIN_INPUT_FILES,
            )
            committed = counts["rewritten_data_files_count"] > 0
        else:
            committed = iceberg_maintenance.compact(table, args.target_file_size_bytes) is not None
        after = iceberg_maintenance.table_totals(catalog.load_table(identifier))
        return {
            "engine": engine,
            "filesBefore": before.data_files,
            "filesAfter": after.data_files,
            "bytesBefore": before.total_bytes,
            "bytesAfter": after.total_bytes,
            "rowsBefore": before.rows,
            "rowsAfter": after.rows,
            "snapshotId": after.snapshot_id if committed else None,
        }

    def close(self) -> None:
        if self._spark is not None:
            self._spark.stop()


def _error(exc: BaseException) -> str:
    """The first line only: Java exceptions carry whole stack traces."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def run(args: argparse.Namespace) -> dict[str, Any]:
    properties = workload_properties(args.catalog_properties_file, args.secret_property)
    catalog = open_catalog(args.catalog_name, properties)
    compactor = Compactor(args.catalog_name, properties, args) if args.action == "compact" else None
    action: Callable[[Catalog, str, argparse.Namespace], dict[str, Any]] = compactor or expire
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    try:
        for identifier in args.table:
            table_started = time.monotonic()
            try:
                result = {"table": identifier, **action(catalog, identifier, args)}
            except Exception as exc:  # one table's failure is reported; the others still run
                result = {"table": identifier, "error": _error(exc)}
            result["durationSeconds"] = round(time.monotonic() - table_started, 3)
            results.append(result)
    finally:
        if compactor is not None:
            compactor.close()
    return {
        "action": args.action,
        "catalog": args.catalog_name,
        "tables": results,
        "durationSeconds": round(time.monotonic() - started, 3),
    }


def parser() -> argparse.ArgumentParser:
    duration = TypeAdapter(Duration).validate_python
    p = argparse.ArgumentParser(
        prog="maintain", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_catalog_arguments(p)
    p.add_argument("--table", action="append", required=True, help="NAMESPACE.TABLE; repeat for several")
    sub = p.add_subparsers(dest="action", required=True)
    e = sub.add_parser("expire", help="expire old snapshots")
    e.add_argument("--older-than", type=duration, default="168h", help="expire snapshots older than this (e.g. 72h)")
    e.add_argument("--retain-last", type=int, default=5, help="always keep this many snapshots per branch")
    c = sub.add_parser("compact", help="rewrite small data files")
    engines = [AUTO, *(engine.value for engine in CompactionEngine)]
    c.add_argument("--engine", choices=engines, default=AUTO, help="auto picks pyiceberg below --small-table-bytes")
    c.add_argument("--target-file-size-bytes", type=int, default=134217728)
    c.add_argument("--small-table-bytes", type=int, default=SMALL_TABLE_BYTES)
    c.add_argument("--spark-master", default="local[2]")
    c.add_argument("--spark-driver-memory", default="512m")
    c.add_argument("--ivy-dir", type=Path, default=spark.DEFAULT_IVY_DIR, help="cache of the Maven jars Spark resolves")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.action == "expire" and args.retain_last < 1:
        raise SystemExit("--retain-last must be at least 1")
    # Keep stdout for the result line alone: anything else (Spark's JVM inherits fd 1) goes to stderr.
    result_out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        result = run(args)
    except Exception as exc:  # the catalog could not be opened: still one line for the operator
        result = {"action": args.action, "catalog": args.catalog_name, "error": _error(exc), "tables": []}
    result_out.write(json.dumps(result, separators=(",", ":")) + "\n")
    result_out.flush()
    failed = "error" in result or any("error" in table for table in result["tables"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
