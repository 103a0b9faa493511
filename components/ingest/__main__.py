"""Load source files into an Iceberg table, each file committed exactly once.

    python components/ingest --catalog-name NAME --table NS.TABLE --ingest NAME \\
        --format parquet|csv|jsonl --uri 'file:///data/ratings/*.parquet' [--mode append|overwrite] \\
        [--secret-property CATALOG_KEY=ENV_VAR ...]

The catalog properties come as a JSON object in the file named by --catalog-properties-file (a relative
path is one of the workload's files, in $LOOM_WORKLOAD_FILES) or in $LOOM_CATALOG_PROPERTIES, as for
components/maintain; each --secret-property adds one property whose value is in an environment
variable (a secretKeyRef in a cluster), so credentials never appear on a command line or in a manifest.
Progress goes to stderr; the result is one JSON line on stdout; a failure ends with one line naming the
file and column, exit status 1, and nothing committed.

Exactly once. The files an ingest has committed are recorded in the table's own properties
(`loom.drivers.ingest_record`), set in the *same catalog commit* as the data: the data and the record
land together or not at all, so a run killed at any point (reading, writing data files, committing)
leaves either no trace in the table or the whole commit, and its retry skips exactly what is in. The
record is not derived from snapshot summaries, because snapshot expiry drops old snapshots and
compaction rewrites their files: a history-based record would forget files and load them twice.
Files are identified by URI (size and mtime are kept alongside): `append` loads each URI at most once
and never re-reads a file that changed after it was committed (it says so on stderr); `overwrite`
replaces the table with all matching files whenever the set of (URI, size, mtime) differs from the one
it last loaded, and does nothing when no file matches (it never empties a table on its own).

The commit asserts that the table's main branch is still where the run started. When another writer
got there first (a compaction, another ingest), the same data files are committed on top of the new
head, unless the concurrent commit changed this ingest's record (or the partition spec): then the run
starts over and re-plans, so two runs of one ingest can never both commit a file. (pyiceberg's own commit
retry would rebase the append blindly, which is why the commit is made once, by
`pyiceberg_internals.commit_once`.)

All files of a run become one snapshot. Rows stream through in chunks of --chunk-bytes (Arrow bytes),
each written to data files before the next is read, so memory stays bounded for any input size.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
import traceback
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

import pyarrow as pa
from pyarrow import fs
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table
from pyiceberg.table.update import AssertDefaultSpecId, AssertTableUUID
from source_files import SourceError, SourceFile, list_files, read_batches

from loom.api.datalake import LastIngest
from loom.domain.workloads import EXIT_INPUT_ERROR
from loom.drivers import ingest_record, pyiceberg_internals
from loom.drivers.iceberg_catalog import open_catalog
from loom.drivers.ingest_record import Stamp
from loom.workload_args import add_catalog_arguments, workload_properties

COMMIT_ATTEMPTS = 5
CHUNK_BYTES = 256 * 1024 * 1024


class Replan(Exception):
    """The written data files cannot be committed as they are: another run of the same ingest
    committed meanwhile, or the partition spec changed. Plan and write again."""


@dataclass(frozen=True)
class Plan:
    files: list[SourceFile]  # to read and commit
    record: dict[str, Stamp]  # the ingest's committed set once this commit lands
    based_on: dict[str, Stamp]  # the committed set this plan was made against


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def plan(found: list[SourceFile], committed: Mapping[str, Stamp], mode: str) -> Plan:
    stamps = {f.uri: (f.size, f.mtime_ns) for f in found}
    if mode == "overwrite":
        same = not found or stamps == dict(committed)
        return Plan([] if same else found, stamps, dict(committed))
    for f in found:
        if f.uri in committed and committed[f.uri] != stamps[f.uri]:
            log(f"{f.uri} changed since it was committed; append never loads a file twice, skipping it")
    new = [f for f in found if f.uri not in committed]
    return Plan(new, {**committed, **{f.uri: stamps[f.uri] for f in new}}, dict(committed))


def _chunks(batches: Iterator[pa.RecordBatch], limit: int) -> Iterator[list[pa.RecordBatch]]:
    chunk: list[pa.RecordBatch] = []
    size = 0
    for batch in batches:
        chunk.append(batch)
        size += batch.nbytes
        if size >= limit:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def write_data_files(
    table: Table, filesystem: fs.FileSystem, files: list[SourceFile], fmt: str, chunk_bytes: int
) -> list[DataFile]:
    """Every row of the files as Iceberg data files of the table (not yet committed). On a bad file
    the data files written so far are deleted: nothing refers to them."""
    target = table.schema().as_arrow()

    def batches() -> Iterator[pa.RecordBatch]:
        for i, source in enumerate(files, 1):
            log(f"reading {i}/{len(files)} {source.uri} ({source.size} bytes)")
            yield from read_batches(filesystem, source, fmt, target)

    write_uuid, counter = uuid.uuid4(), itertools.count()
    written: list[DataFile] = []
    try:
        for chunk in _chunks(batches(), chunk_bytes):
            arrow = pa.Table.from_batches(chunk, target)
            written += pyiceberg_internals.write_data_files(table, arrow, write_uuid, counter)
    except BaseException:
        delete_files(table, written)
        raise
    return written


def delete_files(table: Table, data_files: Iterable[DataFile]) -> None:
    for data_file in data_files:
        table.io.delete(data_file.file_path)


def commit(
    catalog: Catalog, table: Table, ingest: str, mode: str, work: Plan, data_files: list[DataFile], spec_id: int
) -> LastIngest:
    """One snapshot with the data files and the updated record, on top of whatever the branch head is
    by then, unless this ingest's record or the partition spec the files were written for moved
    meanwhile (Replan)."""
    summary = {
        ingest_record.SUMMARY_NAME: ingest,
        ingest_record.SUMMARY_FILES: json.dumps([f.uri for f in work.files]),
    }
    rows = sum(f.record_count for f in data_files)
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        tx = table.transaction()
        if mode == "overwrite":
            tx.delete(AlwaysTrue(), snapshot_properties=summary)
        with tx.update_snapshot(snapshot_properties=summary).fast_append() as append:
            for data_file in data_files:
                append.append_data_file(data_file)
        snapshot = tx.table_metadata.current_snapshot()
        assert snapshot is not None
        last = LastIngest(
            time=datetime.fromtimestamp(snapshot.timestamp_ms / 1000, timezone.utc),
            files=len(work.files),
            rows=rows,
            snapshot_id=snapshot.snapshot_id,
        )
        tx.set_properties(ingest_record.record(ingest, work.record, last))
        # The transaction's own requirements assert the branch head the snapshot was built on.
        requirements = (AssertTableUUID(uuid=table.metadata.table_uuid), AssertDefaultSpecId(default_spec_id=spec_id))
        try:
            pyiceberg_internals.commit_once(catalog, table, tx, requirements)
            return last
        except CommitFailedException as error:
            log(f"commit attempt {attempt} lost to a concurrent commit: {error}")
            table.refresh()
            if ingest_record.committed_files(table.properties, ingest) != work.based_on:
                raise Replan(f"another run of ingest {ingest} committed meanwhile") from error
            if table.metadata.default_spec_id != spec_id:
                raise Replan("the table's partition spec changed meanwhile") from error
    raise CommitFailedException(f"the table kept changing; gave up after {COMMIT_ATTEMPTS} attempts")


def ingest(catalog: Catalog, args: argparse.Namespace) -> dict[str, object]:
    for _ in range(COMMIT_ATTEMPTS):
        table = catalog.load_table(args.table)
        filesystem, found = list_files(args.uri)
        work = plan(found, ingest_record.committed_files(table.properties, args.ingest), args.mode)
        if not work.files:
            log(f"nothing to ingest: {len(found)} file(s) match {args.uri}, none new")
            return {"files": 0, "rows": 0, "snapshotId": table.metadata.current_snapshot_id}
        started = time.monotonic()
        spec_id = table.metadata.default_spec_id
        data_files = write_data_files(table, filesystem, work.files, args.format, args.chunk_bytes)
        try:
            last = commit(catalog, table, args.ingest, args.mode, work, data_files, spec_id)
        except Replan as error:
            delete_files(table, data_files)
            log(f"{error}; planning again")
            continue
        except CommitFailedException:
            delete_files(table, data_files)  # the commit certainly did not land
            raise
        seconds = time.monotonic() - started
        log(f"committed snapshot {last.snapshot_id}: {last.files} file(s), {last.rows} row(s) in {seconds:.1f}s")
        return last.model_dump(mode="json", by_alias=True)
    raise Replan(f"ingest {args.ingest} had to start over {COMMIT_ATTEMPTS} times; giving up")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ingest", description=__doc__.split("\n\n")[0])
    add_catalog_arguments(p)
    p.add_argument("--table", required=True, help="NAMESPACE.TABLE")
    p.add_argument("--ingest", required=True, help="name of the ingest (keys its record in the table)")
    p.add_argument("--format", required=True, choices=("parquet", "csv", "jsonl"))
    p.add_argument("--uri", required=True, help="file:// or s3:// path or glob")
    p.add_argument("--mode", default="append", choices=("append", "overwrite"))
    p.add_argument("--chunk-bytes", type=int, default=CHUNK_BYTES, help="Arrow bytes held in memory at once")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    properties = workload_properties(args.catalog_properties_file, args.secret_property)
    secrets = [properties[item.partition("=")[0]] for item in args.secret_property]

    def fail(message: str, code: int = 1) -> int:
        for value in secrets:
            message = message.replace(value, "***")
        log(f"ingest {args.ingest} failed: {message}")
        return code

    catalog = open_catalog(args.catalog_name, properties)
    try:
        result = ingest(catalog, args)
    except SourceError as error:
        return fail(f"{error}; nothing committed", EXIT_INPUT_ERROR)
    except Exception as error:  # the traceback for the log, then the one-line verdict last
        traceback.print_exc()
        return fail(f"{type(error).__name__}: {error}")
    finally:
        catalog.close()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
