"""One ingest run: plan the files to load, stage them as data files of the table, commit them together
with the ingest's record, exactly once.

Exactly once. The files an ingest has committed are recorded in the table's own properties
(`loom.drivers.ingest_record`), set in the *same catalog commit* as the data: the data and the record
land together or not at all, so a run killed at any point (reading, writing data files, committing)
leaves either no trace in the table's main branch or the whole commit, and its retry skips exactly
what is in. The record is not derived from snapshot summaries, because snapshot expiry drops old
snapshots and compaction rewrites their files: a history-based record would forget files and load
them twice. Files are identified by URI (size and mtime are kept alongside): `append` loads each URI at
most once and never re-reads a file that changed after it was committed (it says so on stderr);
`overwrite` replaces the table with all matching files whenever the set of (URI, size, mtime) differs
from the one it last loaded, and does nothing when no file matches (it never empties a table on its own).

Staging. A parquet file that already matches the table is registered as it is (`register`, zero-copy);
the others are rewritten by the engine: pyiceberg in this process, streaming rows in chunks of
--chunk-bytes (Arrow bytes) so memory stays bounded, or Spark (`spark_write`). Whatever the path, the
data files reach the main branch only through `commit` below, with the record: so the guarantee is
the same for every path. All files of a run become one snapshot.

The commit asserts that the table's main branch is still where the run started. When another writer
got there first (a compaction, another ingest), the same data files are committed on top of the new
head, unless the concurrent commit changed this ingest's record, the partition spec, or (with files
registered as they are, which were checked against it) the schema: then the run starts over and
re-plans, so two runs of one ingest can never both commit a file. (pyiceberg's own commit retry would
rebase the append blindly, which is why the commit is made once, by `pyiceberg_internals.commit_once`.)
A run that gives up deletes the data files it wrote; registered files are the sources themselves and
are never deleted.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

import pyarrow as pa
from pyarrow import fs
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table, TableProperties
from pyiceberg.table.update import AssertCurrentSchemaId, AssertDefaultSpecId, AssertTableUUID, TableRequirement
from pyiceberg.table.update.snapshot import ManageSnapshots
from register import register
from source_files import SourceFile, list_files, read_batches

from loom.api.datalake import LastIngest
from loom.drivers import ingest_record, pyiceberg_internals
from loom.drivers.ingest_record import Stamp

COMMIT_ATTEMPTS = 5


class Replan(Exception):
    """The staged data files cannot be committed as they are: another run of the same ingest
    committed meanwhile, or the partition spec (or schema) they were made for changed. Plan again."""


@dataclass(frozen=True)
class Plan:
    files: list[SourceFile]  # to read and commit
    record: dict[str, Stamp]  # the ingest's committed set once this commit lands
    based_on: dict[str, Stamp]  # the committed set this plan was made against


@dataclass(frozen=True)
class Staged:
    """Data files ready to commit: `registered` are source files themselves (never deleted), `written`
    were written for this run, `branches` hold an engine's uncommitted snapshot of them (removed by
    the commit, or when the run gives up)."""

    registered: list[DataFile]
    written: list[DataFile]
    branches: tuple[str, ...] = ()

    @property
    def data_files(self) -> list[DataFile]:
        return [*self.registered, *self.written]


# How an engine rewrites files that cannot be registered: (table, filesystem, files, args) -> Staged.
Rewriter = Callable[[Table, fs.FileSystem, list[SourceFile], argparse.Namespace], Staged]


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


def rewrite_in_process(table: Table, filesystem: fs.FileSystem, files: list[SourceFile], args: argparse.Namespace) -> Staged:
    """Every row of the files as Iceberg data files of the table, written by pyiceberg in this process
    (not yet committed). On a bad file the data files written so far are deleted: nothing refers to them."""
    target = table.schema().as_arrow()

    def batches() -> Iterator[pa.RecordBatch]:
        for i, source in enumerate(files, 1):
            log(f"reading {i}/{len(files)} {source.uri} ({source.size} bytes)")
            yield from read_batches(filesystem, source, args.format, target)

    write_uuid, counter = uuid.uuid4(), itertools.count()
    written: list[DataFile] = []
    try:
        for chunk in _chunks(batches(), args.chunk_bytes):
            arrow = pa.Table.from_batches(chunk, target)
            written += pyiceberg_internals.write_data_files(table, arrow, write_uuid, counter)
    except BaseException:
        discard(table, Staged([], written))
        raise
    return Staged([], written)


def stage(table: Table, filesystem: fs.FileSystem, files: list[SourceFile], args: argparse.Namespace,
          rewrite: Rewriter) -> Staged:
    """Register what matches the table as it is (parquet, unless --no-zero-copy); rewrite the rest."""
    registered: dict[str, DataFile] = {}
    if args.zero_copy and args.format == "parquet":
        registration = register(table, filesystem, files)
        registered = registration.registered
        for uri, reason in registration.rewrite.items():
            log(f"{uri} does not match the table as it is ({reason}); rewriting it")
        if registered:
            log(f"registering {len(registered)} of {len(files)} file(s) as they are (zero-copy)")
    rest = [f for f in files if f.uri not in registered]
    written = rewrite(table, filesystem, rest, args) if rest else Staged([], [])
    return Staged(list(registered.values()), written.written, written.branches)


def discard(table: Table, staged: Staged) -> None:
    """Undo what staging did: the branches go, then the files written for this run."""
    if staged.branches:
        table.refresh()
        manage = table.manage_snapshots()
        for branch in staged.branches:
            if branch in table.metadata.refs:
                manage.remove_branch(branch)
        manage.commit()
    for data_file in staged.written:
        table.io.delete(data_file.file_path)


def commit(
    catalog: Catalog, table: Table, ingest: str, mode: str, work: Plan, staged: Staged, spec_id: int
) -> LastIngest:
    """One snapshot with the data files and the updated record, on top of whatever the branch head is
    by then, unless this ingest's record, the partition spec the files were staged for or, with files
    registered as they are, the schema they were checked against moved meanwhile (Replan)."""
    summary = {
        ingest_record.SUMMARY_NAME: ingest,
        ingest_record.SUMMARY_FILES: json.dumps([f.uri for f in work.files]),
    }
    schema_id = table.metadata.current_schema_id
    rows = sum(f.record_count for f in staged.data_files)
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        tx = table.transaction()
        for branch in staged.branches:
            ManageSnapshots(tx).remove_branch(branch).commit()
        if mode == "overwrite":
            tx.delete(AlwaysTrue(), snapshot_properties=summary)
        with tx.update_snapshot(snapshot_properties=summary).fast_append() as append:
            for data_file in staged.data_files:
                append.append_data_file(data_file)
        snapshot = tx.table_metadata.current_snapshot()
        assert snapshot is not None
        last = LastIngest(
            time=datetime.fromtimestamp(snapshot.timestamp_ms / 1000, timezone.utc),
            files=len(work.files),
            zero_copy_files=len(staged.registered),
            rows=rows,
            snapshot_id=snapshot.snapshot_id,
        )
        properties = ingest_record.record(ingest, work.record, last)
        if staged.registered and table.metadata.name_mapping() is None:
            # Files without Iceberg field ids are read through the table's name mapping, as add_files sets it.
            properties[TableProperties.DEFAULT_NAME_MAPPING] = table.schema().name_mapping.model_dump_json()
        tx.set_properties(properties)
        # The transaction's own requirements assert the branch head the snapshot was built on.
        requirements: list[TableRequirement] = [
            AssertTableUUID(uuid=table.metadata.table_uuid), AssertDefaultSpecId(default_spec_id=spec_id)
        ]
        if staged.registered:
            requirements.append(AssertCurrentSchemaId(current_schema_id=schema_id))
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
            if staged.registered and table.metadata.current_schema_id != schema_id:
                raise Replan("the table's schema changed meanwhile") from error
            if any(branch not in table.metadata.refs for branch in staged.branches):
                raise Replan("the branch holding the written files is gone") from error
    raise CommitFailedException(f"the table kept changing; gave up after {COMMIT_ATTEMPTS} attempts")


def ingest(catalog: Catalog, args: argparse.Namespace, rewrite: Rewriter) -> dict[str, object]:
    for _ in range(COMMIT_ATTEMPTS):
        table = catalog.load_table(args.table)
        filesystem, found = list_files(args.uri)
        work = plan(found, ingest_record.committed_files(table.properties, args.ingest), args.mode)
        if not work.files:
            log(f"nothing to ingest: {len(found)} file(s) match {args.uri}, none new")
            return {"files": 0, "rows": 0, "snapshotId": table.metadata.current_snapshot_id}
        started = time.monotonic()
        spec_id = table.metadata.default_spec_id
        staged = stage(table, filesystem, work.files, args, rewrite)
        try:
            last = commit(catalog, table, args.ingest, args.mode, work, staged, spec_id)
        except Replan as error:
            discard(table, staged)
            log(f"{error}; planning again")
            continue
        except CommitFailedException:
            discard(table, staged)  # the commit certainly did not land
            raise
        seconds = time.monotonic() - started
        log(f"committed snapshot {last.snapshot_id}: {ingest_record.paths(last)} ({last.rows} row(s)) in {seconds:.1f}s")
        return last.model_dump(mode="json", by_alias=True)
    raise Replan(f"ingest {args.ingest} had to start over {COMMIT_ATTEMPTS} times; giving up")
