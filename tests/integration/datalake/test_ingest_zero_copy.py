"""Zero-copy ingest against real SQL catalogs (SQLite, PostgreSQL): parquet files that already match the
table are registered as its data files where they are, in the commit that carries the ingest's record,
so a killed or raced run still commits each file once and never deletes a source file; files that do
not match are rewritten as before."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.table import Table, TableProperties

from loom.drivers import iceberg_maintenance, ingest_record
from tests.integration.datalake.test_ingest import (
    T0,
    _wait_for_line,
    component,
    data_files_on_disk,
    env,
    lake,  # noqa: F401  (fixture)
    ok,
    ratings,
    run,
    sqlite_lake,  # noqa: F401  (fixture)
    user_ids,
)

MATCHING = pa.schema([
    pa.field("userId", pa.int64(), nullable=False), pa.field("movieId", pa.int64(), nullable=False),
    pa.field("rating", pa.float32(), nullable=False), pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
])
YEAR_US = 365 * 86400 * 1_000_000


def matching(first_user: int, n: int) -> pa.Table:
    """n rows of the ratings table's exact schema, all in one year (so in one partition)."""
    users = np.arange(first_user, first_user + n, dtype=np.int64)
    return pa.table({
        "userId": users, "movieId": users % 97, "rating": ((users % 10 + 1) / 2).astype(np.float32),
        "timestamp": pa.array(T0 + users % 1000 * 1_000_000, pa.timestamp("us", tz="UTC")),
    }, schema=MATCHING)


def write_matching(path: Path, rows: pa.Table, **options: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(rows, path, **options)  # type: ignore[arg-type]
    return path


def file_paths(table: Table) -> set[str]:
    table.refresh()
    return set(table.inspect.files().column("file_path").to_pylist())


def test_matching_files_are_registered_where_they_are(lake: tuple[dict[str, str], Catalog], tmp_path: Path) -> None:  # noqa: F811
    properties, catalog = lake
    sources = [write_matching(tmp_path / "in" / f"m-{i}.parquet", matching(i * 1000, 1000)) for i in range(3)]
    before = {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in sources}
    uri = f"file://{tmp_path}/in/*.parquet"

    result = ok(run(properties, "ratings", uri))
    assert (result["files"], result["zeroCopyFiles"], result["rows"]) == (3, 3, 3000)
    table = catalog.load_table("lake.ratings")
    assert file_paths(table) == {f"file://{p}" for p in sources}  # the sources themselves
    assert not data_files_on_disk(table)  # nothing written into the warehouse
    assert user_ids(table) == list(range(3000))
    assert table.properties[TableProperties.DEFAULT_NAME_MAPPING]
    assert {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in sources} == before
    record = ingest_record.last_ingest(table.properties, "load")
    assert record is not None and (record.files, record.zero_copy_files) == (3, 3)
    # Partition pruning sees the partition derived from the statistics.
    assert table.scan(row_filter="timestamp < '2000-01-01T00:00:00+00:00'").to_arrow().num_rows == 0

    assert ok(run(properties, "ratings", uri))["files"] == 0  # each file once
    assert user_ids(table) == list(range(3000))


def test_a_mixed_run_registers_some_and_rewrites_the_rest(sqlite_lake: tuple[dict[str, str], Catalog], tmp_path: Path) -> None:  # noqa: F811
    properties, catalog = sqlite_lake
    registered = write_matching(tmp_path / "in" / "a.parquet", matching(0, 500))
    write_matching(tmp_path / "in" / "b.parquet", ratings(500, 100))  # nullable columns: rewritten
    proc = run(properties, "ratings", f"file://{tmp_path}/in/*.parquet")
    result = ok(proc)
    assert (result["files"], result["zeroCopyFiles"]) == (2, 1)
    assert "registered 1 file(s) zero-copy, rewrote 1" in proc.stderr.strip().splitlines()[-1]
    assert "b.parquet does not match the table as it is (" in proc.stderr
    table = catalog.load_table("lake.ratings")
    assert f"file://{registered}" in file_paths(table) and len(data_files_on_disk(table)) == 1
    assert user_ids(table) == list(range(600))


def _spans_years(path: Path) -> None:
    rows = matching(0, 100)
    write_matching(path, rows.set_column(3, "timestamp", pa.array(T0 + np.arange(100) * YEAR_US // 10, pa.timestamp("us", tz="UTC"))))


NOT_MATCHING = {
    "spans partitions": _spans_years,
    "no statistics": lambda path: write_matching(path, matching(0, 100), write_statistics=False),
    "other field ids": lambda path: write_matching(
        path, matching(0, 100).cast(pa.schema([f.with_metadata({b"PARQUET:field_id": str(5 - i).encode()})
                                               for i, f in enumerate(MATCHING)]))),
    "an optional column for a required one": lambda path: write_matching(path, matching(0, 100).cast(
        pa.schema([f.with_nullable(True) for f in MATCHING]))),
    "a narrower type": lambda path: write_matching(path, matching(0, 100).cast(
        pa.schema([*MATCHING][:2] + [pa.field("rating", pa.float64(), nullable=False), MATCHING.field(3)]))),
}


@pytest.mark.parametrize("case", sorted(NOT_MATCHING))
def test_files_that_do_not_match_are_rewritten(sqlite_lake: tuple[dict[str, str], Catalog], tmp_path: Path, case: str) -> None:  # noqa: F811
    properties, catalog = sqlite_lake
    source = tmp_path / "in" / "x.parquet"
    NOT_MATCHING[case](source)
    result = ok(run(properties, "ratings", f"file://{source}"))
    assert (result["files"], result["zeroCopyFiles"], result["rows"]) == (1, 0, 100)
    table = catalog.load_table("lake.ratings")
    assert f"file://{source}" not in file_paths(table)
    assert user_ids(table) == list(range(100))


def test_no_zero_copy_rewrites_matching_files(sqlite_lake: tuple[dict[str, str], Catalog], tmp_path: Path) -> None:  # noqa: F811
    properties, catalog = sqlite_lake
    source = write_matching(tmp_path / "m.parquet", matching(0, 100))
    result = ok(run(properties, "ratings", f"file://{source}", extra=("--no-zero-copy",)))
    assert (result["files"], result["zeroCopyFiles"]) == (1, 0)
    assert f"file://{source}" not in file_paths(catalog.load_table("lake.ratings"))


def test_killed_zero_copy_run_then_retry_commits_each_file_once(lake: tuple[dict[str, str], Catalog], tmp_path: Path) -> None:  # noqa: F811
    """SIGKILL after the matching files were registered and while the others are being rewritten
    (nothing committed yet), then the retry: every file once, and no source file touched."""
    properties, catalog = lake
    sources = [write_matching(tmp_path / "in" / f"a-{i}.parquet", matching(i * 1000, 1000)) for i in range(6)]
    for i in range(3):
        sources.append(write_matching(tmp_path / "in" / f"b-{i}.parquet", ratings(6000 + i * 40_000, 40_000)))
    stamps = {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in sources}
    uri = f"file://{tmp_path}/in/*.parquet"
    proc = subprocess.Popen(component(properties, "ratings", uri, extra=("--chunk-bytes", str(1 << 20))),
                            env=env(properties), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = _wait_for_line(proc, lambda line: line.startswith("reading 2/3 "))
    assert any(line.startswith("registering 6 of 9 file(s)") for line in seen), seen
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    table = catalog.load_table("lake.ratings")
    assert table.current_snapshot() is None  # nothing was committed

    result = ok(run(properties, "ratings", uri))
    assert (result["files"], result["zeroCopyFiles"], result["rows"]) == (9, 6, 6000 + 3 * 40_000)
    assert user_ids(table) == list(range(6000 + 3 * 40_000))
    assert ok(run(properties, "ratings", uri))["files"] == 0
    assert {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in sources} == stamps


def test_concurrent_zero_copy_runs_commit_each_file_once_and_keep_the_sources(
    lake: tuple[dict[str, str], Catalog], tmp_path: Path  # noqa: F811
) -> None:
    """Three runs of one ingest at once: the losers re-plan, and what they give up never includes a
    registered file (the sources stay where they are, all of them in the table once)."""
    properties, catalog = lake
    sources = [write_matching(tmp_path / "in" / f"a-{i}.parquet", matching(i * 1000, 1000)) for i in range(5)]
    uri = f"file://{tmp_path}/in/*.parquet"
    procs = [subprocess.Popen(component(properties, "ratings", uri), env=env(properties), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    assert sum(json.loads(out.strip().splitlines()[-1])["files"] for out, _ in outputs) == 5
    assert all(p.exists() for p in sources)
    table = catalog.load_table("lake.ratings")
    assert file_paths(table) == {f"file://{p}" for p in sources}
    assert user_ids(table) == list(range(5000))


def test_overwrite_and_compaction_leave_registered_sources_in_place(
    sqlite_lake: tuple[dict[str, str], Catalog], tmp_path: Path  # noqa: F811
) -> None:
    """Replacing or compacting registered files changes what the table refers to, never the sources."""
    properties, catalog = sqlite_lake
    first = write_matching(tmp_path / "in" / "a.parquet", matching(0, 100))
    uri = f"file://{tmp_path}/in/*.parquet"
    assert ok(run(properties, "ratings", uri, mode="overwrite"))["zeroCopyFiles"] == 1
    second = write_matching(tmp_path / "in" / "b.parquet", matching(100, 100))
    assert ok(run(properties, "ratings", uri, mode="overwrite"))["zeroCopyFiles"] == 2
    table = catalog.load_table("lake.ratings")
    assert user_ids(table) == list(range(200))  # the overwrite replaced a.parquet by a.parquet and b.parquet

    assert iceberg_maintenance.compact(table, 128 * 1024 * 1024) is not None
    assert f"file://{first}" not in file_paths(table) and user_ids(table) == list(range(200))
    assert first.exists() and second.exists()
