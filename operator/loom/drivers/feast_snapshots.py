"""Reads of a lake table for the feature pipeline: the rows of one snapshot as Arrow batches, and
what a snapshot added since the one last materialized.

Materialization follows event time, but lake data arrives late (MovieLens is replayed from 2016):
Feast's own `materialize_incremental` would start after the previous run's end and skip every row
whose event time is older. So the window starts at the earliest event time a new snapshot added,
read from the Iceberg file statistics of the appended files.

pyiceberg and pyarrow are imported by the functions that use them: the operator imports this module
(through `features.materialize`) for names only, and only materialization runs read a table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.table import Table

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Changes:
    """What `snapshot_id` holds that the previously materialized snapshot did not."""

    everything: bool  # no usable history: first run, rollback, overwrite/delete, expired snapshot
    added_files: int = 0
    earliest_event: datetime | None = None  # over the added files; None when their stats lack it


def scan_batches(table: Table, snapshot_id: int, columns: Sequence[str]) -> pa.RecordBatchReader:
    """The snapshot's rows, only these columns, one batch at a time (memory stays bounded)."""
    return table.scan(snapshot_id=snapshot_id, selected_fields=tuple(columns)).to_arrow_batch_reader()


def changes_since(table: Table, snapshot_id: int, previous: int | None, timestamp_field: str) -> Changes:
    """Appended files between the two snapshots and their earliest event time. Compactions
    (`replace`) change no data and are skipped; anything else means start over."""
    from pyiceberg.conversions import from_bytes
    from pyiceberg.table.snapshots import Operation, ancestors_of

    target = table.snapshot_by_id(snapshot_id)
    if target is None:
        raise ValueError(f"table {'.'.join(table.name())} has no snapshot {snapshot_id}")
    if previous is None or table.snapshot_by_id(previous) is None:
        return Changes(everything=True)
    if previous == snapshot_id:
        return Changes(everything=False)
    between = []
    for snapshot in ancestors_of(target, table.metadata):
        if snapshot.snapshot_id == previous:
            break
        between.append(snapshot)
    else:
        return Changes(everything=True)
    operations = {s.summary.operation if s.summary else None for s in between}
    if not operations <= {Operation.APPEND, Operation.REPLACE}:
        return Changes(everything=True)
    scan = table.incremental_append_scan(
        from_snapshot_id_exclusive=previous, to_snapshot_id_inclusive=snapshot_id
    )
    files = [task.file for task in scan.plan_files()]
    schema = table.metadata.schema_by_id(target.schema_id) if target.schema_id is not None else table.schema()
    field = (schema or table.schema()).find_field(timestamp_field)
    bounds = [f.lower_bounds.get(field.field_id) if f.lower_bounds else None for f in files]
    if not files or any(b is None for b in bounds):
        return Changes(everything=False, added_files=len(files))
    kind = field.field_type
    earliest = min(_as_datetime(kind, from_bytes(kind, b)) for b in bounds)  # type: ignore[arg-type]
    return Changes(everything=False, added_files=len(files), earliest_event=earliest)


def _as_datetime(field_type: object, value: int) -> datetime:
    """An Iceberg lower bound of a time column as an aware UTC datetime."""
    from pyiceberg.types import DateType, TimestampNanoType, TimestampType, TimestamptzNanoType, TimestamptzType

    if isinstance(field_type, (TimestampType, TimestamptzType)):
        return EPOCH + timedelta(microseconds=value)
    if isinstance(field_type, (TimestampNanoType, TimestamptzNanoType)):
        return EPOCH + timedelta(microseconds=value // 1000)
    if isinstance(field_type, DateType):
        return datetime.combine(date.fromordinal(EPOCH.date().toordinal() + value), datetime.min.time(), timezone.utc)
    raise TypeError(f"event time column has type {field_type}, not a timestamp or date")
