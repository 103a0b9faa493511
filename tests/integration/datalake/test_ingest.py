"""The ingest component (`python components/ingest`) against real pyiceberg SQL catalogs: formats,
append and overwrite, exactly-once across re-runs, kills, concurrent runs and snapshot expiry, and
malformed files that leave the table exactly as it was."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.transforms import YearTransform
from pyiceberg.types import FloatType, IntegerType, LongType, NestedField, StringType, TimestamptzType

from loom.domain.workloads import EXIT_INPUT_ERROR
from loom.drivers import iceberg_maintenance, ingest_record
from tests.conftest import ROOT
from tests.integration.datalake.conftest import CATALOG_NAME, CatalogUnderTest

COMPONENT = ROOT / "components" / "ingest"
RATINGS = Schema(
    NestedField(1, "userId", LongType(), required=True),
    NestedField(2, "movieId", LongType(), required=True),
    NestedField(3, "rating", FloatType(), required=True),
    NestedField(4, "timestamp", TimestamptzType(), required=True),
)
YEAR = PartitionSpec(PartitionField(source_id=4, field_id=1000, transform=YearTransform(), name="timestamp_year"))
MOVIES = Schema(
    NestedField(1, "movieId", LongType(), required=True),
    NestedField(2, "title", StringType()),
    NestedField(3, "year", IntegerType()),
)
ARROW_RATINGS = pa.schema([
    pa.field("userId", pa.int64()), pa.field("movieId", pa.int64()),
    pa.field("rating", pa.float32()), pa.field("timestamp", pa.timestamp("us", tz="UTC")),
])
T0 = 1_400_000_000_000_000  # 2014-05-13, in microseconds


def ratings(first_user: int, n: int) -> pa.Table:
    """n distinct rows; userId identifies a row, so duplicates are easy to see."""
    users = np.arange(first_user, first_user + n, dtype=np.int64)
    return pa.table({
        "userId": users,
        "movieId": users % 97,
        "rating": ((users % 10 + 1) / 2).astype(np.float32),
        "timestamp": pa.array(T0 + users * 600_000_000, pa.timestamp("us", tz="UTC")),  # 10 minutes apart
    }, schema=ARROW_RATINGS)


def write(path: Path, table: pa.Table, fmt: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        pq.write_table(table, path)
    elif fmt == "csv":
        cols = {c: table.column(c).to_pylist() for c in table.column_names}
        lines = [",".join(table.column_names)]
        for i in range(table.num_rows):
            lines.append(",".join(_csv_value(cols[c][i]) for c in table.column_names))
        path.write_text("\n".join(lines) + "\n")
    else:
        rows = table.to_pylist()
        path.write_text("".join(json.dumps({k: _json_value(v) for k, v in r.items()}) + "\n" for r in rows))
    return path


def _csv_value(value: object) -> str:
    return "" if value is None else value.isoformat() if isinstance(value, datetime) else str(value)


def _json_value(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value


def component(
    properties: dict[str, str], table: str, uri: str, fmt: str = "parquet", mode: str = "append",
    ingest: str = "load", extra: tuple[str, ...] = (),
) -> list[str]:
    return [sys.executable, str(COMPONENT), "--catalog-name", CATALOG_NAME, "--table", f"lake.{table}",
            "--ingest", ingest, "--format", fmt, "--uri", uri, "--mode", mode, *extra]


def env(properties: dict[str, str]) -> dict[str, str]:
    return {**os.environ, "LOOM_CATALOG_PROPERTIES": json.dumps(properties)}


def run(properties: dict[str, str], *args: object, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(component(properties, *args, **kw), env=env(properties), capture_output=True, text=True, timeout=300)  # type: ignore[arg-type]


def ok(proc: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def user_ids(table: Table) -> list[int]:
    table.refresh()
    return sorted(table.scan(selected_fields=("userId",)).to_arrow().column("userId").to_pylist())


def data_files_on_disk(table: Table) -> set[Path]:
    return set(Path(table.location().removeprefix("file://"), "data").rglob("*.parquet"))


@pytest.fixture
def lake(iceberg_catalog: CatalogUnderTest) -> tuple[dict[str, str], Catalog]:
    properties, catalog = iceberg_catalog
    catalog.create_namespace("lake")
    catalog.create_table("lake.ratings", RATINGS, partition_spec=YEAR)
    catalog.create_table("lake.movies", MOVIES)
    return properties, catalog


@pytest.fixture
def sqlite_lake(sql_catalog_sqlite: CatalogUnderTest) -> tuple[dict[str, str], Catalog]:
    properties, catalog = sql_catalog_sqlite
    catalog.create_namespace("lake")
    catalog.create_table("lake.ratings", RATINGS, partition_spec=YEAR)
    catalog.create_table("lake.movies", MOVIES)
    return properties, catalog


def test_append_commits_each_file_once(lake: tuple[dict[str, str], Catalog], tmp_path: Path) -> None:
    properties, catalog = lake
    incoming = tmp_path / "in"
    write(incoming / "a.parquet", ratings(0, 300), "parquet")
    write(incoming / "b.parquet", ratings(300, 200), "parquet")
    uri = f"file://{incoming}/*.parquet"

    first = ok(run(properties, "ratings", uri))
    table = catalog.load_table("lake.ratings")
    assert user_ids(table) == list(range(500))
    assert (first["files"], first["rows"]) == (2, 500)
    snapshot = table.current_snapshot()
    assert first["snapshotId"] == snapshot.snapshot_id
    assert snapshot.summary[ingest_record.SUMMARY_NAME] == "load"
    assert json.loads(snapshot.summary[ingest_record.SUMMARY_FILES]) == [f"file://{incoming}/a.parquet", f"file://{incoming}/b.parquet"]
    assert set(ingest_record.committed_files(table.properties, "load")) == {f"file://{incoming}/{n}.parquet" for n in "ab"}
    assert ingest_record.last_ingest(table.properties, "load").snapshot_id == snapshot.snapshot_id

    again = ok(run(properties, "ratings", uri))
    table.refresh()
    assert again["files"] == 0 and table.current_snapshot().snapshot_id == snapshot.snapshot_id
    assert len(table.metadata.snapshots) == 1

    write(incoming / "c.parquet", ratings(500, 100), "parquet")
    third = ok(run(properties, "ratings", uri))
    assert (third["files"], third["rows"]) == (1, 100)
    assert user_ids(table) == list(range(600))
    assert json.loads(table.current_snapshot().summary[ingest_record.SUMMARY_FILES]) == [f"file://{incoming}/c.parquet"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_text_formats_convert_to_the_table_schema(sqlite_lake: tuple[dict[str, str], Catalog], tmp_path: Path, fmt: str) -> None:
    properties, catalog = sqlite_lake
    source = ratings(0, 50)
    write(tmp_path / "in" / f"part-0.{fmt}", source.slice(0, 30), fmt)
    write(tmp_path / "in" / f"part-1.{fmt}", source.slice(30), fmt)
    ok(run(properties, "ratings", f"file://{tmp_path}/in/*.{fmt}", fmt))
    got = catalog.load_table("lake.ratings").scan().to_arrow().sort_by("userId")
    assert got.select(source.column_names).cast(ARROW_RATINGS).equals(source)


def test_optional_columns_may_be_absent_or_null(sqlite_lake: tuple[dict[str, str], Catalog], tmp_path: Path) -> None:
    properties, catalog = sqlite_lake
    (tmp_path / "movies.jsonl").write_text('{"movieId": 1, "title": "Heat"}\n{"movieId": 2, "title": null, "year": 1995}\n')
    ok(run(properties, "movies", f"file://{tmp_path}/movies.jsonl", "jsonl"))
    rows = catalog.load_table("lake.movies").scan().to_arrow().sort_by("movieId").to_pylist()
    assert rows == [{"movieId": 1, "title": "Heat", "year": None}, {"movieId": 2, "title": None, "year": 1995}]


def test_overwrite_replaces_when_the_files_change(lake: tuple[dict[str, str], Catalog], tmp_path: Path) -> None:
    properties, catalog = lake
    movies = tmp_path / "movies.parquet"
    pq.write_table(pa.table({"movieId": [1, 2], "title": ["Heat", "Casino"], "year": [1995, 1995]},
                            schema=pa.schema([("movieId", pa.int64()), ("title", pa.string()), ("year", pa.int32())])), movies)
    uri = f"file://{movies}"
    ok(run(properties, "movies", uri, mode="overwrite"))
    table = catalog.load_table("lake.movies")
    first = table.current_snapshot().snapshot_id

    assert ok(run(properties, "movies", uri, mode="overwrite"))["files"] == 0  # unchanged: nothing to do
    table.refresh()
    assert table.current_snapshot().snapshot_id == first

    pq.write_table(pa.table({"movieId": [3], "title": ["Fargo"], "year": [1996]},
                            schema=pa.schema([("movieId", pa.int64()), ("title", pa.string()), ("year", pa.int32())])), movies)
    os.utime(movies, ns=(movies.stat().st_atime_ns, movies.stat().st_mtime_ns + 1_000_000_000))
    ok(run(properties, "movies", uri, mode="overwrite"))
    table.refresh()
    assert table.scan().to_arrow().to_pylist() == [{"movieId": 3, "title": "Fargo", "year": 1996}]

    movies.unlink()  # no file matches: overwrite never empties the table on its own
    assert ok(run(properties, "movies", uri, mode="overwrite"))["files"] == 0
    table.refresh()
    assert table.scan().to_arrow().num_rows == 1


MALFORMED = {
    "bad value": ("csv", "userId,movieId,rating,timestamp\n1,2,3.5,2015-01-01T00:00:00Z\n2,3,great,2015-01-01T00:00:00Z\n",
                  "column 'rating' (string) cannot be read as float"),
    "unknown column": ("jsonl", '{"userId": 1, "movieId": 2, "rating": 3.5, "timestamp": "2015-01-01T00:00:00Z", "color": "red"}\n',
                       "column 'color' is not in the table"),
    "null in required": ("csv", "userId,movieId,rating,timestamp\n1,,3.5,2015-01-01T00:00:00Z\n",
                         "column 'movieId' is required but has 1 null value(s)"),
    "missing required": ("csv", "userId,rating,timestamp\n1,3.5,2015-01-01T00:00:00Z\n", "required column 'movieId' is missing"),
    "number for a timestamp": ("jsonl", '{"userId": 1, "movieId": 2, "rating": 3.5, "timestamp": 1420070400}\n',
                               "Column(/timestamp) changed from string to number"),
    "not parquet": ("parquet", "this is not a parquet file\n", "cannot read as parquet"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_file_fails_and_leaves_the_table_as_it_was(
    sqlite_lake: tuple[dict[str, str], Catalog], tmp_path: Path, case: str
) -> None:
    properties, catalog = sqlite_lake
    fmt, text, expected = MALFORMED[case]
    ok(run(properties, "ratings", f"file://{write(tmp_path / 'seed.parquet', ratings(0, 10), 'parquet')}", ingest="seed"))
    table = catalog.load_table("lake.ratings")
    before = (table.metadata_location, table.current_snapshot().snapshot_id, data_files_on_disk(table))
    # a good file sorts first, so its rows are already written when the bad one is read
    write(tmp_path / "in" / f"a-good.{fmt}", ratings(100, 20), fmt)
    bad = tmp_path / "in" / f"b-bad.{fmt}"
    bad.write_text(text)

    proc = run(properties, "ratings", f"file://{tmp_path}/in/*.{fmt}", fmt)
    assert proc.returncode == EXIT_INPUT_ERROR  # the same file fails the same way: not retried
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ingest load failed: file://{bad}") and expected in last and last.endswith("nothing committed"), last
    table.refresh()
    assert (table.metadata_location, table.current_snapshot().snapshot_id, data_files_on_disk(table)) == before
    assert ingest_record.committed_files(table.properties, "load") == {}


def test_integer_timestamps_are_refused(sqlite_lake: tuple[dict[str, str], Catalog], tmp_path: Path) -> None:
    """Seconds or microseconds? A parquet int64 column is never guessed into a timestamp."""
    properties, catalog = sqlite_lake
    pq.write_table(ratings(0, 5).set_column(3, "timestamp", pa.array([1420070400] * 5, pa.int64())), tmp_path / "t.parquet")
    proc = run(properties, "ratings", f"file://{tmp_path}/t.parquet")
    assert proc.returncode == EXIT_INPUT_ERROR
    assert "column 'timestamp' holds integers (int64) but the table wants timestamp[us, tz=UTC]" in proc.stderr.splitlines()[-1]
    assert catalog.load_table("lake.ratings").current_snapshot() is None


def _start(properties: dict[str, str], uri: str, chunk_bytes: int) -> subprocess.Popen[str]:
    return subprocess.Popen(component(properties, "ratings", uri, extra=("--chunk-bytes", str(chunk_bytes))),
                            env=env(properties), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_line(proc: subprocess.Popen[str], predicate: Callable[[str], bool]) -> list[str]:
    seen: list[str] = []
    assert proc.stderr is not None
    for line in proc.stderr:
        seen.append(line)
        if predicate(line):
            return seen
    raise AssertionError(f"the run ended before the expected progress: {''.join(seen)}")


def test_killed_run_then_retry_commits_each_file_once(lake: tuple[dict[str, str], Catalog], tmp_path: Path) -> None:
    """SIGKILL in the middle of a real run (timed by its own progress lines: several files read and
    chunks written, nothing committed yet), then the retry: every row exactly once."""
    properties, catalog = lake
    files, per_file = 8, 40_000
    for i in range(files):
        write(tmp_path / "in" / f"r-{i:02d}.parquet", ratings(i * per_file, per_file), "parquet")
    table = catalog.load_table("lake.ratings")
    proc = _start(properties, f"file://{tmp_path}/in/*.parquet", chunk_bytes=1 << 20)
    _wait_for_line(proc, lambda line: line.startswith(f"reading 5/{files} "))
    assert data_files_on_disk(table), "chunks of the first files should be written by now"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    table.refresh()
    assert table.current_snapshot() is None  # nothing was committed

    result = ok(run(properties, "ratings", f"file://{tmp_path}/in/*.parquet"))
    assert (result["files"], result["rows"]) == (files, files * per_file)
    assert user_ids(table) == list(range(files * per_file))
    assert ok(run(properties, "ratings", f"file://{tmp_path}/in/*.parquet"))["files"] == 0


def test_concurrent_runs_commit_each_file_once(lake: tuple[dict[str, str], Catalog], tmp_path: Path) -> None:
    """Three runs of one ingest and one run of another ingest on the same table, all at once: the
    losers of a commit race either build on the winner (other ingest) or re-plan (same ingest)."""
    properties, catalog = lake
    for i in range(4):
        write(tmp_path / "in" / f"r-{i}.parquet", ratings(i * 5000, 5000), "parquet")
    write(tmp_path / "other" / "o.parquet", ratings(20_000, 1000), "parquet")
    commands = [component(properties, "ratings", f"file://{tmp_path}/in/*.parquet") for _ in range(3)]
    commands.append(component(properties, "ratings", f"file://{tmp_path}/other/*.parquet", ingest="other"))
    procs = [subprocess.Popen(c, env=env(properties), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in commands]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    committed = [json.loads(out.strip().splitlines()[-1])["files"] for out, _ in outputs]
    assert sum(committed[:3]) == 4 and committed[3] == 1, committed  # whoever committed, each file once
    table = catalog.load_table("lake.ratings")
    assert user_ids(table) == list(range(21_000))
    assert set(ingest_record.committed_files(table.properties, "load")) == {f"file://{tmp_path}/in/r-{i}.parquet" for i in range(4)}
    assert set(ingest_record.committed_files(table.properties, "other")) == {f"file://{tmp_path}/other/o.parquet"}


def test_record_survives_snapshot_expiry_and_compaction(lake: tuple[dict[str, str], Catalog], tmp_path: Path) -> None:
    properties, catalog = lake
    uri = f"file://{tmp_path}/in/*.parquet"
    for i in range(3):
        write(tmp_path / "in" / f"r-{i}.parquet", ratings(i * 100, 100), "parquet")
        ok(run(properties, "ratings", uri))
    table = catalog.load_table("lake.ratings")
    iceberg_maintenance.compact(table, 128 * 1024 * 1024)
    table.refresh()
    iceberg_maintenance.expire_snapshots(table, datetime.now(timezone.utc) + timedelta(hours=1), retain_last=1)
    table.refresh()
    assert len(table.metadata.snapshots) == 1
    assert table.current_snapshot().summary.get(ingest_record.SUMMARY_NAME) is None  # the history naming the files is gone
    assert ok(run(properties, "ratings", uri))["files"] == 0
    assert user_ids(table) == list(range(300))


def test_large_input_streams_in_bounded_chunks(sqlite_lake: tuple[dict[str, str], Catalog], tmp_path: Path) -> None:
    """One file bigger than the chunk: written as several chunks, committed as one snapshot."""
    properties, catalog = sqlite_lake
    write(tmp_path / "big.parquet", ratings(0, 200_000), "parquet")
    result = ok(run(properties, "ratings", f"file://{tmp_path}/big.parquet", extra=("--chunk-bytes", str(1 << 20))))
    table = catalog.load_table("lake.ratings")
    assert result["rows"] == 200_000 and len(table.metadata.snapshots) == 1
    files = data_files_on_disk(table)
    years = {p.parent.name for p in files}
    assert len(files) > len(years)  # a year spanning two chunks has a file from each
    assert user_ids(table) == list(range(200_000))

