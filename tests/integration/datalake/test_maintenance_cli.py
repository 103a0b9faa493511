"""The maintain component as the operator runs it: a separate process, catalog properties from a file or
the environment, one JSON line on stdout. The Spark run here starts its own JVM through
`drivers.spark.spark_session`, against PostgreSQL, with the password only in the properties."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.table.snapshots import Operation

from tests.conftest import ROOT
from tests.integration.datalake.conftest import CATALOG_NAME, CatalogUnderTest
from tests.integration.datalake.test_maintenance import needs_iceberg_runtime

APPENDS = 40
SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("name", pa.string())])


def small_files(catalog: Catalog) -> pa.Table:
    catalog.create_namespace_if_not_exists("lake")
    table = catalog.create_table("lake.ratings", schema=SCHEMA)
    for i in range(APPENDS):
        table.append(pa.table({"id": range(i * 50, i * 50 + 50), "name": [f"n{i}"] * 50}, schema=SCHEMA))
    return sorted_rows(catalog)


def sorted_rows(catalog: Catalog) -> pa.Table:
    return catalog.load_table("lake.ratings").scan().to_arrow().sort_by("id")


def maintain(
    *args: str, properties: dict[str, str], via_file: Path | None = None
) -> tuple[int, dict[str, Any], str]:
    """Run the component; returns its exit code, its one stdout line parsed, and its stderr."""
    env = {k: v for k, v in os.environ.items() if k != "LOOM_CATALOG_PROPERTIES"}
    options = ["--catalog-name", CATALOG_NAME]
    if via_file:  # as the executors pass it: a workload file, named relative to $LOOM_WORKLOAD_FILES
        via_file.write_text(json.dumps(properties))
        options += ["--catalog-properties-file", via_file.name]
        env["LOOM_WORKLOAD_FILES"] = str(via_file.parent)
    else:
        env["LOOM_CATALOG_PROPERTIES"] = json.dumps(properties)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "components" / "maintain"), *options, *args],
        capture_output=True, text=True, env=env, timeout=600,
    )
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, f"stdout must be one JSON line, got {proc.stdout!r}; stderr: {proc.stderr[-2000:]}"
    return proc.returncode, json.loads(lines[0]), proc.stderr


def test_compact_auto_then_expire(sql_catalog_sqlite: CatalogUnderTest) -> None:
    properties, catalog = sql_catalog_sqlite
    before = small_files(catalog)

    code, result, _ = maintain("--table", "lake.ratings", "compact", "--engine", "auto", properties=properties)
    assert code == 0, result
    [table] = result["tables"]
    assert table["engine"] == "pyiceberg", "a tiny table is compacted in-process"
    assert (table["filesBefore"], table["filesAfter"]) == (APPENDS, 1)
    assert table["rowsBefore"] == table["rowsAfter"] == APPENDS * 50
    assert table["bytesAfter"] < table["bytesBefore"]
    assert table["snapshotId"] == catalog.load_table("lake.ratings").current_snapshot().snapshot_id
    assert sorted_rows(catalog).equals(before)

    code, result, _ = maintain(
        "--table", "lake.ratings", "expire", "--older-than", "0s", "--retain-last", "3", properties=properties
    )
    assert code == 0, result
    [table] = result["tables"]
    counts = (table["snapshotsBefore"], table["snapshotsExpired"], table["snapshotsAfter"])
    assert counts == (APPENDS + 1, APPENDS - 2, 3)
    reloaded = catalog.load_table("lake.ratings")
    assert len(reloaded.snapshots()) == 3
    assert table["currentSnapshotId"] == reloaded.current_snapshot().snapshot_id
    assert sorted_rows(catalog).equals(before)


@needs_iceberg_runtime
def test_spark_on_postgres_keeps_the_password_out_of_the_output(
    sql_catalog_postgres: CatalogUnderTest, tmp_path: Path
) -> None:
    properties, catalog = sql_catalog_postgres
    before = small_files(catalog)
    password = catalog.properties["uri"].split(":")[2].split("@")[0]

    code, result, stderr = maintain(
        "--table", "lake.ratings", "compact", "--engine", "spark",
        properties=properties, via_file=tmp_path / "catalog.json",
    )
    assert code == 0, result
    [table] = result["tables"]
    assert table["engine"] == "spark"
    assert (table["filesBefore"], table["filesAfter"]) == (APPENDS, 1)
    assert table["rowsBefore"] == table["rowsAfter"] == APPENDS * 50
    current = catalog.load_table("lake.ratings").current_snapshot()
    assert table["snapshotId"] == current.snapshot_id and current.summary.operation == Operation.REPLACE
    assert sorted_rows(catalog).equals(before)
    assert password not in json.dumps(result) and password not in stderr


def test_failures_are_reported_per_table(sql_catalog_sqlite: CatalogUnderTest) -> None:
    properties, catalog = sql_catalog_sqlite
    before = small_files(catalog)
    location = catalog.load_table("lake.ratings").metadata_location

    code, result, _ = maintain(
        "--table", "lake.missing", "--table", "lake.ratings", "expire", "--retain-last", "1", properties=properties
    )
    assert code == 1
    missing, ratings = result["tables"]
    assert missing["table"] == "lake.missing" and missing["error"].startswith("NoSuchTableError")
    assert ratings["snapshotsExpired"] == 0, "the default olderThan (168h) keeps today's snapshots"
    assert catalog.load_table("lake.ratings").metadata_location == location, "nothing to expire: no commit"
    assert sorted_rows(catalog).equals(before)

    unreachable = {"type": "sql", "uri": "postgresql+psycopg2://loom:s3cret-pw@127.0.0.1:1/lake"}
    code, result, stderr = maintain("--table", "lake.ratings", "compact", properties=unreachable)
    assert code == 1 and result["error"].startswith("OperationalError") and result["tables"] == []
    assert "s3cret-pw" not in json.dumps(result) and "s3cret-pw" not in stderr
