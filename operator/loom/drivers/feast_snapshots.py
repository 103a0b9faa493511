"""Reads of a lake table for the feature pipeline: the rows of one snapshot as Arrow batches, the
newest row per entity of an event-time window, and what a snapshot added since the one last
materialized.

Materialization follows event time, but lake data arrives late (MovieLens is replayed from 2016):
Feast's own `materialize_incremental` would start after the previous run's end and skip every row
whose event time is older. So the window starts at the earliest event time a new snapshot added,
read from the Iceberg file statistics of the appended files.

pyiceberg and pyarrow are imported by the functions that use them: the operator imports this module
(through `features.materialize`) for names only, and only materialization runs read a table."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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
    """The snapshot's rows, only these columns, one data file at a time. pyiceberg's own reader
    hands every file of a scan to its thread pool at once and keeps each file's batches until they
    are read, so a consumer slower than the reads (DuckDB, the writer) held most of the table in
    memory; here at most one file's batches are in memory, whatever the table's size."""
    import pyarrow as pa
    from pyiceberg.io.pyarrow import ArrowScan, schema_to_pyarrow

    scan = table.scan(snapshot_id=snapshot_id, selected_fields=tuple(columns))
    projected = scan.projection()
    target = schema_to_pyarrow(projected)

    def batches() -> Iterator[pa.RecordBatch]:
        for task in scan.plan_files():
            reader = ArrowScan(scan.table_metadata, scan.io, projected, scan.row_filter, scan.case_sensitive)
            yield from reader.to_record_batches([task])

    return pa.RecordBatchReader.from_batches(target, batches()).cast(target)


class NewestRows:
    """The newest row per entity with `start <= event time <= end`, as Feast's offline stores pick it
    for `materialize` (latest event time, then latest created time; ties between identical times
    pick either row, as in Feast), kept in a DuckDB database in `spill_dir` between the one pass over
    the snapshot (`load`, which the quality gate watches go by) and the write (`batches`), so the
    gate's verdict comes before anything is written and the snapshot is read once.

    DuckDB partitions the window's rows by entity and keeps the first by descending times (a window
    function, as Feast's own query; `arg_max` of the row would pass values through DuckDB's sort
    keys, which turn -0.0 into 0.0) within `memory_limit`, spilling beyond it. So memory is bounded
    by a batch and the limit whatever the snapshot's size, the choice sees every row of the window (a
    row in a later file with an older event time never replaces a newer one), and each entity is
    written once."""

    def __init__(self, spill_dir: str, memory_limit: str = "128MB", threads: int = 2) -> None:
        import duckdb

        self._con = duckdb.connect(f"{spill_dir}/newest.duckdb", config={
            "memory_limit": memory_limit, "temp_directory": spill_dir, "threads": threads,
            "preserve_insertion_order": False})
        self._schema: pa.Schema | None = None
        self.count = 0

    def __enter__(self) -> NewestRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self._con.close()

    def load(self, snapshot: pa.RecordBatchReader, join_keys: Sequence[str], timestamp_field: str,
             created_field: str | None, start: datetime, end: datetime) -> int:
        """Read the snapshot's batches once and keep the newest row per entity; the entities kept."""
        import pyarrow as pa
        import pyarrow.compute as pc

        ts_type = snapshot.schema.field(timestamp_field).type
        low, high = pa.scalar(start, ts_type), pa.scalar(end, ts_type)
        # DuckDB's partitioning turns -0.0 into 0.0: floats cross it as their bits, viewed as integers.
        schema = pa.schema([f.with_type(_as_bits(f.type)) for f in snapshot.schema])

        failed: list[Exception] = []

        def in_window() -> Iterator[pa.RecordBatch]:
            try:
                for batch in snapshot:
                    ts = batch.column(timestamp_field)
                    chosen = batch.filter(pc.and_(pc.greater_equal(ts, low), pc.less_equal(ts, high)))
                    yield pa.RecordBatch.from_arrays([c.view(_as_bits(c.type)) for c in chosen.columns], schema=schema)
            except Exception as error:  # DuckDB would pass it on as its own error, losing the type
                failed.append(error)
                raise

        self._schema = snapshot.schema
        self._con.register("rows_in_window", pa.RecordBatchReader.from_batches(schema, in_window()))
        keys = ", ".join(_quoted(k) for k in join_keys)
        order = ", ".join(f"{_quoted(c)} DESC" for c in [timestamp_field, *([created_field] if created_field else [])])
        try:
            self._con.execute(f"CREATE TABLE newest AS SELECT * FROM rows_in_window "
                              f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {order}) = 1")
        except Exception:
            if failed:
                raise failed[0] from None
            raise
        self._con.unregister("rows_in_window")
        self.count = int(self._con.execute("SELECT count(*) FROM newest").fetchall()[0][0])
        return self.count

    def batches(self, columns: Sequence[str], batch_rows: int = 65_536) -> Iterator[pa.RecordBatch]:
        """The rows kept, these columns, `batch_rows` at a time, floats as they were read."""
        import pyarrow as pa

        assert self._schema is not None, "load() first"
        floats = [f for f in self._schema if f.name in columns and _as_bits(f.type) != f.type]
        reader = self._con.sql(f"SELECT {', '.join(_quoted(c) for c in columns)} FROM newest").to_arrow_reader(batch_rows)
        for batch in reader:
            for f in floats:
                column = batch.column(f.name)
                kind = f.type
                if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):  # DuckDB's own list kind
                    kind = (pa.list_ if pa.types.is_list(column.type) else pa.large_list)(f.type.value_field)
                batch = batch.set_column(batch.schema.get_field_index(f.name), f.with_type(kind), column.view(kind))
            yield batch


def _as_bits(kind: pa.DataType) -> pa.DataType:
    """The integer type with a float type's bits (also inside a list); other types as they are."""
    import pyarrow as pa

    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        container = pa.list_ if pa.types.is_list(kind) else pa.large_list
        return container(kind.value_field.with_type(_as_bits(kind.value_type)))
    if pa.types.is_floating(kind):
        return {16: pa.int16(), 32: pa.int32(), 64: pa.int64()}[kind.bit_width]
    return kind


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


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
