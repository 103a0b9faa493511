"""`--engine spark` ingest on real data: Spark in local mode (the Iceberg Spark runtime from the cached
Maven resolution, as compaction uses it) writes the files that cannot be registered into a branch of
their own, and the commit that moves them to main carries the ingest's record. A retried run commits
each file once; a killed run leaves main untouched and its branch is removed by the retry."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from pyiceberg.catalog import Catalog

from loom.domain.workloads import EXIT_INPUT_ERROR
from loom.drivers import ingest_record
from tests.integration.datalake.test_ingest import (
    _wait_for_line,
    component,
    env,
    ok,
    ratings,
    run,
    sqlite_lake,  # noqa: F401  (fixture)
    user_ids,
    write,
)
from tests.integration.datalake.test_ingest_zero_copy import matching, write_matching
from tests.support.spark import needs_iceberg_runtime

SPARK = ("--engine", "spark", "--spark-driver-memory", "512m")


pytestmark = needs_iceberg_runtime


def test_spark_ingest_commits_each_file_once_with_the_record(
    sqlite_lake: tuple[dict[str, str], Catalog], tmp_path: Path  # noqa: F811
) -> None:
    properties, catalog = sqlite_lake
    write(tmp_path / "in" / "a.parquet", ratings(0, 3000), "parquet")  # nullable columns: rewritten
    write(tmp_path / "in" / "b.csv", ratings(3000, 500), "csv")
    write_matching(tmp_path / "in" / "c.parquet", matching(3500, 500))  # registered as it is
    uri = f"file://{tmp_path}/in/*.parquet"

    result = ok(run(properties, "ratings", uri, extra=SPARK))
    assert (result["files"], result["zeroCopyFiles"], result["rows"]) == (2, 1, 3000 + 500)
    table = catalog.load_table("lake.ratings")
    assert user_ids(table) == [*range(3000), *range(3500, 4000)]
    assert set(table.metadata.refs) == {"main"}  # Spark's branch went with the commit
    assert set(ingest_record.committed_files(table.properties, "load")) == {
        f"file://{tmp_path}/in/a.parquet", f"file://{tmp_path}/in/c.parquet"}
    paths = table.inspect.files().column("file_path").to_pylist()
    assert sorted(p.endswith("/in/c.parquet") for p in paths) == [False, True]  # one Spark wrote, and c.parquet

    head = table.current_snapshot().snapshot_id
    again = ok(run(properties, "ratings", uri, extra=SPARK))  # the retry of a run that committed
    assert again["files"] == 0
    table.refresh()
    assert table.current_snapshot().snapshot_id == head and table.current_snapshot().parent_snapshot_id is None

    csv = ok(run(properties, "ratings", f"file://{tmp_path}/in/*.csv", "csv", ingest="text", extra=SPARK))
    assert (csv["files"], csv["zeroCopyFiles"]) == (1, 0)
    assert user_ids(table) == list(range(4000))


def test_killed_spark_run_then_retry_commits_each_file_once(
    sqlite_lake: tuple[dict[str, str], Catalog], tmp_path: Path  # noqa: F811
) -> None:
    """SIGKILL once Spark has started on the files (nothing committed to main), then the retry."""
    properties, catalog = sqlite_lake
    for i in range(3):
        write(tmp_path / "in" / f"r-{i}.parquet", ratings(i * 2000, 2000), "parquet")
    uri = f"file://{tmp_path}/in/*.parquet"
    proc = subprocess.Popen(component(properties, "ratings", uri, extra=SPARK), env=env(properties),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_line(proc, lambda line: line.startswith("reading 3 file(s) with Spark"))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    table = catalog.load_table("lake.ratings")
    assert table.current_snapshot() is None

    result = ok(run(properties, "ratings", uri, extra=SPARK))
    assert (result["files"], result["rows"]) == (3, 6000)
    assert user_ids(table) == list(range(6000))
    assert set(table.metadata.refs) == {"main"}
    assert ok(run(properties, "ratings", uri, extra=SPARK))["files"] == 0


def test_a_value_spark_cannot_convert_is_an_input_error(
    sqlite_lake: tuple[dict[str, str], Catalog], tmp_path: Path  # noqa: F811
) -> None:
    properties, catalog = sqlite_lake
    bad = tmp_path / "bad.csv"
    bad.write_text("userId,movieId,rating,timestamp\n1,2,great,2015-01-01T00:00:00Z\n")
    proc = run(properties, "ratings", f"file://{bad}", "csv", extra=SPARK)
    assert proc.returncode == EXIT_INPUT_ERROR, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"ingest load failed: file://{bad}")
    table = catalog.load_table("lake.ratings")
    assert table.current_snapshot() is None and set(table.metadata.refs) <= {"main"}
