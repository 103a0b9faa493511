"""Snapshot expiry and small-file compaction against real catalogs (SQLite and PostgreSQL): pyiceberg
in-process, and Spark in local mode opening the same catalog through Iceberg's JDBC catalog. One Spark
JVM serves the whole module; each test gets its own Spark session (catalogs are per session)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyspark
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import ValidationException
from pyiceberg.expressions import LessThan
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Operation
from pyspark.sql import SparkSession

from loom.drivers import iceberg_maintenance as maintenance
from loom.drivers import spark as spark_driver
from tests.integration.datalake.conftest import CATALOG_NAME, CatalogUnderTest
from tests.support.spark import needs_iceberg_runtime

APPENDS = 40
ROWS_PER_APPEND = 75
TARGET = 128 * 1024 * 1024
SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("user", pa.string()),
        pa.field("score", pa.float64()),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("day", pa.date32(), nullable=False),
    ]
)
START = datetime(2024, 3, 1, tzinfo=timezone.utc)


def batch(i: int) -> pa.Table:
    """Rows of append `i`, spread over three days so a day-partitioned table gets three files per append.
    (Partitioned by an identity `day` column: pyiceberg writes through day(ts) only with pyiceberg-core.)"""
    ids = range(i * ROWS_PER_APPEND, (i + 1) * ROWS_PER_APPEND)
    return pa.table(
        {
            "id": list(ids),
            "user": [f"user-{n % 17}" if n % 11 else None for n in ids],
            "score": [n * 0.25 for n in ids],
            "ts": [START + timedelta(days=n % 3, seconds=n) for n in ids],
            "day": [(START + timedelta(days=n % 3)).date() for n in ids],
        },
        schema=SCHEMA,
    )


def many_small_files(catalog: Catalog, name: str, partitioned: bool) -> Table:
    catalog.create_namespace_if_not_exists("lake")
    table = catalog.create_table(f"lake.{name}", schema=SCHEMA)
    if partitioned:
        with table.update_spec() as spec:
            spec.add_identity("day")
    for i in range(APPENDS):
        table.append(batch(i))
    return table


def content(table: Table, snapshot_id: int | None = None) -> pa.Table:
    """All rows, in one order, for exact comparison."""
    rows = table.scan(snapshot_id=snapshot_id).to_arrow()
    return rows.sort_by([(name, "ascending") for name in rows.column_names])


def data_files(table: Table) -> int:
    return len(table.inspect.files())


def parquet_on_disk(warehouse: str) -> set[Path]:
    return set(Path(warehouse.removeprefix("file://")).rglob("*.parquet"))


@pytest.fixture(scope="module")
def spark_jvm() -> Iterator[SparkSession]:
    """The module's one Spark JVM, with the runtime and both JDBC drivers resolved (and cached) once."""
    conf = spark_driver.session_conf(
        spark_driver.SparkCatalog(conf={}, packages=list(spark_driver.JDBC_DRIVERS.values())),
        pyspark.__version__,
        driver_memory="512m",
        ivy_dir=spark_driver.DEFAULT_IVY_DIR,
    )
    # C1-only JIT: these Spark jobs are seconds long, where start-up dominates (about 2x faster here).
    conf["spark.driver.extraJavaOptions"] = "-XX:TieredStopAtLevel=1"
    builder = SparkSession.builder.master("local[2]").appName("loom-test-maintenance")
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def spark_for(jvm: SparkSession, catalog: CatalogUnderTest) -> SparkSession:
    """A session of the shared JVM that sees this test's catalog exactly as the maintain component would."""
    session = jvm.newSession()
    for key, value in spark_driver.spark_catalog(CATALOG_NAME, catalog.properties).conf.items():
        session.conf.set(key, value)
    return session


@pytest.mark.parametrize("partitioned", [False, True], ids=["unpartitioned", "by-day"])
def test_pyiceberg_compaction_keeps_the_data(iceberg_catalog: CatalogUnderTest, partitioned: bool) -> None:
    properties, catalog = iceberg_catalog
    table = many_small_files(catalog, "events", partitioned)
    before, before_id, files_before = content(table), table.current_snapshot().snapshot_id, data_files(table)
    assert files_before == APPENDS * (3 if partitioned else 1)

    new_id = maintenance.compact(table, TARGET)

    reloaded = catalog.load_table("lake.events")
    snapshot = reloaded.current_snapshot()
    assert new_id == snapshot.snapshot_id != before_id
    assert snapshot.parent_snapshot_id == before_id
    assert snapshot.summary.operation == Operation.OVERWRITE
    assert snapshot.summary[maintenance.COMPACTION_PROPERTY] == "compaction"
    assert data_files(reloaded) == (3 if partitioned else 1)
    assert content(reloaded).equals(before)
    assert reloaded.scan().count() == APPENDS * ROWS_PER_APPEND
    assert content(reloaded, before_id).equals(before), "the pre-compaction snapshot still reads the same"
    totals = maintenance.table_totals(reloaded)
    assert (totals.data_files, totals.rows) == (data_files(reloaded), APPENDS * ROWS_PER_APPEND)


def test_pyiceberg_compaction_applies_deletes_and_stops_when_done(sql_catalog_sqlite: CatalogUnderTest) -> None:
    _, catalog = sql_catalog_sqlite
    table = many_small_files(catalog, "events", partitioned=False)
    table.delete(LessThan("id", 30))  # rewrites the first file without those rows
    expected = content(table)

    maintenance.compact(table, TARGET)
    assert data_files(table) == 1
    assert content(table).equals(expected)
    assert table.scan().count() == APPENDS * ROWS_PER_APPEND - 30

    location = table.metadata_location
    assert maintenance.compact(table, TARGET) is None, "a single file is nothing to compact"
    assert catalog.load_table("lake.events").metadata_location == location, "no commit when nothing to do"


def test_refused_compaction_leaves_the_table_as_it_was(sql_catalog_sqlite: CatalogUnderTest) -> None:
    """A writer commits between planning and committing: the compaction is refused, the table is what
    the other writer left, and the files written for the refused commit are gone."""
    properties, catalog = sql_catalog_sqlite
    stale = many_small_files(catalog, "events", partitioned=False)
    other = catalog.load_table("lake.events")
    other.append(batch(APPENDS))
    after_other = catalog.load_table("lake.events")
    expected, files_on_disk = content(after_other), parquet_on_disk(properties["warehouse"])

    with pytest.raises(ValidationException):
        maintenance.compact(stale, TARGET)

    now = catalog.load_table("lake.events")
    assert now.metadata_location == after_other.metadata_location
    assert content(now).equals(expected)
    assert parquet_on_disk(properties["warehouse"]) == files_on_disk


@needs_iceberg_runtime
def test_spark_compaction_through_the_jdbc_catalog(
    iceberg_catalog: CatalogUnderTest, spark_jvm: SparkSession
) -> None:
    """Spark opens the pyiceberg catalog, sees its table, rewrites it, and pyiceberg reads Spark's commit."""
    properties, catalog = iceberg_catalog
    table = many_small_files(catalog, "events", partitioned=True)
    before, before_id = content(table), table.current_snapshot().snapshot_id
    spark = spark_for(spark_jvm, iceberg_catalog)

    seen = spark.sql(f"SELECT count(*) AS n FROM `{CATALOG_NAME}`.lake.events").collect()[0]["n"]
    assert seen == APPENDS * ROWS_PER_APPEND

    counts = spark_driver.rewrite_data_files(spark, CATALOG_NAME, "lake.events", TARGET, maintenance.MIN_INPUT_FILES)
    assert counts["rewritten_data_files_count"] == APPENDS * 3
    assert counts["added_data_files_count"] == 3

    reloaded = catalog.load_table("lake.events")
    snapshot = reloaded.current_snapshot()
    assert snapshot.snapshot_id != before_id and snapshot.parent_snapshot_id == before_id
    assert snapshot.summary.operation == Operation.REPLACE
    assert data_files(reloaded) == 3
    assert content(reloaded).equals(before)
    assert reloaded.scan().count() == APPENDS * ROWS_PER_APPEND

    # And pyiceberg keeps writing on top of Spark's commit, which Spark then sees.
    reloaded.append(batch(APPENDS))
    spark.sql(f"REFRESH TABLE `{CATALOG_NAME}`.lake.events")
    seen = spark.sql(f"SELECT count(*) AS n FROM `{CATALOG_NAME}`.lake.events").collect()[0]["n"]
    assert seen == (APPENDS + 1) * ROWS_PER_APPEND


def test_expiry_keeps_retain_last_and_the_data(iceberg_catalog: CatalogUnderTest) -> None:
    _, catalog = iceberg_catalog
    table = many_small_files(catalog, "events", partitioned=False)
    snapshots = [s.snapshot_id for s in table.snapshots()]
    current, before = table.current_snapshot().snapshot_id, content(table)
    assert len(snapshots) == APPENDS

    expired = maintenance.expire_snapshots(table, datetime.now(timezone.utc) + timedelta(minutes=1), retain_last=5)

    reloaded = catalog.load_table("lake.events")
    kept = [s.snapshot_id for s in reloaded.snapshots()]
    assert kept == snapshots[-5:]
    assert sorted(expired) == sorted(snapshots[:-5])
    assert reloaded.current_snapshot().snapshot_id == current
    assert content(reloaded).equals(before)
    assert content(reloaded, snapshots[-5]).num_rows == (APPENDS - 4) * ROWS_PER_APPEND


def test_expiry_respects_older_than_tags_and_the_current_snapshot(sql_catalog_sqlite: CatalogUnderTest) -> None:
    _, catalog = sql_catalog_sqlite
    table = many_small_files(catalog, "events", partitioned=False)
    history = table.snapshots()
    table.manage_snapshots().create_tag(history[2].snapshot_id, "audit").commit()

    # Only snapshots strictly older than the 30th are candidates, however small retain_last is.
    cutoff = datetime.fromtimestamp(history[29].timestamp_ms / 1000, timezone.utc)
    expired = maintenance.expire_snapshots(table, cutoff, retain_last=1)
    assert all(s.timestamp_ms < history[29].timestamp_ms for s in history if s.snapshot_id in expired)
    assert history[2].snapshot_id not in expired, "a tagged snapshot is kept"
    assert {s.snapshot_id for s in table.snapshots()} >= {s.snapshot_id for s in history[29:]}
    assert content(table, history[2].snapshot_id).num_rows == 3 * ROWS_PER_APPEND

    # Expire everything that may go: the current snapshot and the tag stay, the data reads the same.
    before = content(table)
    maintenance.expire_snapshots(table, datetime.now(timezone.utc) + timedelta(minutes=1), retain_last=1)
    remaining = {s.snapshot_id for s in catalog.load_table("lake.events").snapshots()}
    assert remaining == {history[-1].snapshot_id, history[2].snapshot_id}
    assert content(catalog.load_table("lake.events")).equals(before)

    # Nothing left to expire: no commit at all.
    location = catalog.load_table("lake.events").metadata_location
    assert maintenance.expire_snapshots(table, datetime.now(timezone.utc), retain_last=1) == []
    assert catalog.load_table("lake.events").metadata_location == location


def test_catalog_properties_map_to_iceberg_spark_settings() -> None:
    """The mapping the Spark tests above rely on, for the shapes they cannot start here (REST, S3)."""
    pg = spark_driver.spark_catalog(
        "lake",
        {
            "type": "sql",
            "uri": "postgresql+psycopg2://loom:p%40ss@db.lake:6432/iceberg?sslmode=require",
            "warehouse": "s3://bucket/wh",
            "s3.endpoint": "http://minio:9000",
        },
    )
    assert pg.conf["spark.sql.catalog.lake.uri"] == "jdbc:postgresql://db.lake:6432/iceberg"
    assert pg.conf["spark.sql.catalog.lake.jdbc.user"] == "loom"
    assert pg.conf["spark.sql.catalog.lake.jdbc.password"] == "p@ss"
    assert pg.conf["spark.sql.catalog.lake.jdbc.sslmode"] == "require"
    assert pg.conf["spark.sql.catalog.lake.io-impl"] == "org.apache.iceberg.aws.s3.S3FileIO"
    assert pg.conf["spark.sql.catalog.lake.s3.endpoint"] == "http://minio:9000"
    assert pg.packages == [spark_driver.JDBC_DRIVERS["postgresql"], spark_driver.ICEBERG_AWS_BUNDLE]

    rest = spark_driver.spark_catalog("lake", {"type": "rest", "uri": "https://cat", "credential": "id:secret"})
    assert rest.conf["spark.sql.catalog.lake.type"] == "rest"
    assert rest.conf["spark.sql.catalog.lake.credential"] == "id:secret"
    assert rest.packages == []

    with pytest.raises(ValueError, match="sql and rest"):
        spark_driver.spark_catalog("lake", {"type": "hive", "uri": "thrift://hms:9083"})
    with pytest.raises(ValueError, match="dot"):
        spark_driver.spark_catalog("my.lake", {"type": "rest", "uri": "https://cat"})
    with pytest.raises(RuntimeError, match="pyspark 4.1"):
        spark_driver.iceberg_runtime("4.3.0")
