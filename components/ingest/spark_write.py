"""--engine spark: Spark rewrites the files that cannot be registered as they are, for inputs one
machine's pyiceberg cannot get through in time (Spark in local mode here; a cluster master with
--spark-master).

Exactly once, as for every path: Spark never commits to the table's main branch, where readers look
and where the ingest's record lives. It appends the rows to a branch of their own,
`loom_ingest_<ingest>_<random>`, created for this run: a commit that adds only a ref and a snapshot
no reader of main sees. The ingest then takes the data files that snapshot added (made by Iceberg's
own Spark writer: field ids, partitions, statistics) and commits them to main together with the
record, removing the branch, in the one commit of `load.commit` with the same requirements as any
other path: the record and the rows land together or not at all, and a concurrent run of the same
ingest makes this one re-plan. A run killed after Spark's write leaves only a branch nobody reads; the
retry plans again from the record, and its commit removes that stale branch with its own.

Conversion is as strict as in-process: a column the table lacks, a missing required column or an
integer for a timestamp is refused before Spark writes, and with ANSI SQL a value that does not
convert, or a null in a required column, fails the write; both end the run as an input error."""

from __future__ import annotations

import argparse
import re
import secrets
from types import TracebackType
from typing import TYPE_CHECKING

from load import Staged, log
from pyarrow import fs
from pyiceberg.manifest import DataFile, ManifestEntryStatus
from pyiceberg.table import Table
from source_files import SourceError, SourceFile

from loom.drivers import spark

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

# Spark settings of an ingest: strict conversion (ANSI casts), nulls in required columns checked row
# by row while writing rather than refused for a nullable source type, timestamps as Iceberg's.
SESSION_CONF = {
    "spark.sql.ansi.enabled": "true",
    "spark.sql.iceberg.check-nullability": "false",
    "spark.sql.session.timeZone": "UTC",
}
# Spark error classes that mean the input cannot be loaded as it is (running again cannot help).
INPUT_ERRORS = ("CAST_INVALID_INPUT", "CAST_OVERFLOW", "NOT_NULL_ASSERT_VIOLATION", "NULL value appeared in non-nullable",
                "MALFORMED_RECORD", "CANNOT_PARSE", "FAILED_READ_FILE", "INCOMPATIBLE_DATA")


def branch_pattern(ingest: str) -> re.Pattern[str]:
    return re.compile(rf"^loom_ingest_{re.escape(ingest.replace('-', '_'))}_[0-9a-f]{{12}}$")


def _quote(part: str) -> str:
    return "`" + part.replace("`", "``") + "`"


class SparkRewriter:
    """Starts Spark once, on first use, and stops it when the run ends."""

    def __init__(self, catalog_name: str, properties: dict[str, str], args: argparse.Namespace) -> None:
        self.catalog_name = catalog_name
        self.properties = properties
        self.args = args
        self._spark: SparkSession | None = None

    def __enter__(self) -> SparkRewriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self._spark is not None:
            self._spark.stop()

    def session(self) -> SparkSession:
        if self._spark is None:
            log("starting Spark")
            self._spark = spark.spark_session(
                self.catalog_name, self.properties, master=self.args.spark_master,
                driver_memory=self.args.spark_driver_memory, app=f"loom-ingest-{self.args.ingest}", conf=SESSION_CONF,
            )
        return self._spark

    def __call__(self, table: Table, filesystem: fs.FileSystem, files: list[SourceFile],
                 args: argparse.Namespace) -> Staged:
        session = self.session()
        ident = ".".join(_quote(p) for p in (self.catalog_name, *args.table.split(".")))
        branch = f"loom_ingest_{args.ingest.replace('-', '_')}_{secrets.token_hex(6)}"
        target = session.table(ident).schema
        log(f"reading {len(files)} file(s) with Spark into branch {branch}")
        rows = _conformed(_read(session, args.format, files), target, files)
        try:
            session.sql(f"ALTER TABLE {ident} CREATE BRANCH {_quote(branch)}")
            rows.writeTo(f"{ident}.{_quote('branch_' + branch)}").append()
        except Exception as error:
            _remove_branch(table, branch)
            text = str(error)
            if type(error).__name__ == "AnalysisException" or any(marker in text for marker in INPUT_ERRORS):
                raise SourceError(f"{files[0].uri} (one of {len(files)}): {text.strip().splitlines()[0]}") from error
            raise
        table.refresh()
        stale = tuple(b for b in table.metadata.refs if branch_pattern(args.ingest).match(b) and b != branch)
        return Staged([], _added_files(table, branch), (branch, *stale))


def _read(session: SparkSession, fmt: str, files: list[SourceFile]) -> DataFrame:
    paths = [f.uri for f in files]
    if fmt == "parquet":
        return session.read.option("mergeSchema", "true").parquet(*paths)
    if fmt == "csv":
        # Every value as a string, converted below; each file's header must name the same columns.
        return session.read.options(header="true", inferSchema="false", enforceSchema="false").csv(paths)
    return session.read.json(paths)


def _conformed(rows: DataFrame, target: StructType, files: list[SourceFile]) -> DataFrame:
    """The rows in the table's columns and types; SourceError for what no row could fix."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DateType, IntegralType, TimestampNTZType, TimestampType

    where = f"{files[0].uri} (one of {len(files)})" if len(files) > 1 else files[0].uri
    have = {f.name: f for f in rows.schema.fields}
    extra = [name for name in have if name not in target.names]
    if extra:
        raise SourceError(f"{where}: column {extra[0]!r} is not in the table (table columns: {', '.join(target.names)})")
    columns = []
    for field in target.fields:
        source = have.get(field.name)
        if source is None:
            if not field.nullable:
                raise SourceError(f"{where}: required column {field.name!r} is missing")
            columns.append(F.lit(None).cast(field.dataType).alias(field.name))
            continue
        temporal = isinstance(field.dataType, (TimestampType, TimestampNTZType, DateType))
        if temporal and isinstance(source.dataType, IntegralType):
            raise SourceError(f"{where}: column {field.name!r} holds integers but the table wants {field.dataType.simpleString()}; "
                              "write timestamps/dates as such (or ISO-8601 strings), not as numbers of unknown unit")
        columns.append(F.col(field.name).cast(field.dataType).alias(field.name))
    return rows.select(columns)


def _remove_branch(table: Table, branch: str) -> None:
    table.refresh()
    if branch in table.metadata.refs:
        table.manage_snapshots().remove_branch(branch).commit()


def _added_files(table: Table, branch: str) -> list[DataFile]:
    """The data files the branch's snapshot added (not those it shares with main)."""
    snapshot = table.snapshot_by_name(branch)
    if snapshot is None:
        raise RuntimeError(f"Spark's write left no snapshot on branch {branch}")
    return [
        entry.data_file
        for manifest in snapshot.manifests(table.io)
        if manifest.added_snapshot_id == snapshot.snapshot_id
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True)
        if entry.status == ManifestEntryStatus.ADDED and entry.snapshot_id == snapshot.snapshot_id
    ]
