"""Iceberg table upkeep with pyiceberg: snapshot expiry, and small-file compaction for tables small
enough to rewrite in one process (large tables go to Spark, see `drivers/spark.py`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
from pyiceberg.exceptions import CommitStateUnknownException
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.manifest import DataFile
from pyiceberg.table import FileScanTask, Table
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.refs import SnapshotRefType
from pyiceberg.table.snapshots import ancestors_of
from pyiceberg.typedef import Record

from loom.drivers import pyiceberg_internals

# Iceberg's rewrite_data_files treats files under 75% of the target as too small (min-file-size-bytes).
SMALL_FILE_RATIO = 0.75
# A partition is worth rewriting once it holds this many small files; Spark gets the same option.
MIN_INPUT_FILES = 2
# Marks compaction commits, so readers of the history can tell them from data changes: pyiceberg 0.12
# can only write them as `overwrite` snapshots (its summary code refuses Iceberg's `replace`).
COMPACTION_PROPERTY = "loom.maintenance"


@dataclass(frozen=True)
class TableTotals:
    """What the current snapshot holds, from its summary (written by pyiceberg and Spark alike)."""

    snapshot_id: int | None
    data_files: int
    total_bytes: int
    rows: int
    snapshots: int


def table_totals(table: Table) -> TableTotals:
    snapshot = table.current_snapshot()
    summary = snapshot.summary if snapshot else None

    def total(key: str) -> int:
        value = summary.get(key) if summary is not None else None
        return int(value) if value is not None else 0

    return TableTotals(
        snapshot_id=snapshot.snapshot_id if snapshot else None,
        data_files=total("total-data-files"),
        total_bytes=total("total-files-size"),
        rows=total("total-records"),
        snapshots=len(table.metadata.snapshots),
    )


def snapshots_to_expire(metadata: TableMetadata, older_than: datetime, retain_last: int) -> list[int]:
    """Snapshot ids that are older than `older_than` and not kept by any rule: every branch keeps the
    `retain_last` newest snapshots of its own history (or the branch's own min-snapshots-to-keep when
    larger), and branch and tag heads are never expired, so the current snapshot always survives."""
    kept: set[int] = set()
    for ref in metadata.refs.values():
        kept.add(ref.snapshot_id)
        if ref.snapshot_ref_type == SnapshotRefType.BRANCH:
            keep = max(retain_last, ref.min_snapshots_to_keep or 0)
            history = ancestors_of(metadata.snapshot_by_id(ref.snapshot_id), metadata)
            kept.update(snapshot.snapshot_id for _, snapshot in zip(range(keep), history))
    cutoff_ms = int(older_than.timestamp() * 1000)
    return sorted(
        s.snapshot_id for s in metadata.snapshots if s.timestamp_ms < cutoff_ms and s.snapshot_id not in kept
    )


def expire_snapshots(table: Table, older_than: datetime, retain_last: int) -> list[int]:
    """Remove the expired snapshots from the table's metadata in one commit; returns their ids.
    pyiceberg only edits metadata: the data files of expired snapshots stay where they are."""
    expired = snapshots_to_expire(table.metadata, older_than, retain_last)
    if expired:
        table.maintenance.expire_snapshots().by_ids(expired).commit()
    return expired


@dataclass(frozen=True)
class Rewrite:
    """The files a compaction replaces and the rows they hold."""

    tasks: list[FileScanTask]
    rows: pa.Table | None


def _partition_groups(tasks: Iterable[FileScanTask], min_size: int) -> list[list[FileScanTask]]:
    """Small files grouped by (spec, partition); only groups with enough of them to be worth a rewrite.
    Files with delete files attached are rewritten too, which applies the deletes."""
    groups: dict[tuple[int, Record], list[FileScanTask]] = defaultdict(list)
    for task in tasks:
        if task.file.file_size_in_bytes < min_size or task.delete_files:
            groups[(task.file.spec_id, task.file.partition)].append(task)
    return [
        group
        for group in groups.values()
        if len(group) >= MIN_INPUT_FILES or any(task.delete_files for task in group)
    ]


def plan_rewrite(table: Table, target_file_size_bytes: int) -> Rewrite:
    """Choose the files to compact in the current snapshot and read their rows (deletes applied)."""
    min_size = int(target_file_size_bytes * SMALL_FILE_RATIO)
    groups = _partition_groups(table.scan().plan_files(), min_size)
    tasks = [task for group in groups for task in group]
    if not tasks:
        return Rewrite(tasks=[], rows=None)
    scan = ArrowScan(table.metadata, table.io, table.schema(), AlwaysTrue())
    return Rewrite(tasks=tasks, rows=scan.to_table(tasks))


def compact(table: Table, target_file_size_bytes: int) -> int | None:
    """Rewrite the table's small files into files of about `target_file_size_bytes` (pyiceberg measures
    it in uncompressed Arrow bytes) in a single snapshot that removes the old files and adds the new.
    The commit is refused if the table changed underneath; the files written for it are removed then.
    Returns the new snapshot id, or None when there was nothing to compact."""
    rewrite = plan_rewrite(table, target_file_size_bytes)
    if rewrite.rows is None:
        return None
    added: list[DataFile] = []
    try:
        with table.transaction() as txn:
            with txn.update_snapshot(snapshot_properties={COMPACTION_PROPERTY: "compaction"}).overwrite() as files:
                for task in rewrite.tasks:
                    files.delete_data_file(task.file)
                written = pyiceberg_internals.write_data_files(
                    table, rewrite.rows, files.commit_uuid, target_file_size_bytes=target_file_size_bytes
                )
                for data_file in written:
                    added.append(data_file)
                    files.append_data_file(data_file)
    except CommitStateUnknownException:
        raise  # the commit may have landed: its files must stay
    except Exception:
        for data_file in added:
            table.io.delete(data_file.file_path)
        raise
    snapshot = table.current_snapshot()
    return snapshot.snapshot_id if snapshot else None
