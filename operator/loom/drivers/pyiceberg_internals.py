"""The pyiceberg internals Loom relies on, in one place: writing a table's data files without
committing them (split by partition in one pass over the rows), committing a transaction's staged
changes exactly once with requirements of its own, and creating many tables of a SQL catalog in one
transaction. pyiceberg 0.12 has no public call for any of them.

No other Loom module imports a private pyiceberg name or edits pyiceberg objects behind its back;
tests/integration/datalake/test_pyiceberg_internals.py pins each behaviour used here against real
pyiceberg, so a pyiceberg upgrade that changes one fails there, by name.

pyarrow and SQLAlchemy are imported by the calls that need them: the driver helper creates a lake's
tables with metadata files alone, and a catalog that is not SQL needs no SQLAlchemy."""

from __future__ import annotations

import itertools
import sys
import uuid
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError
from pyiceberg.io import load_file_io
from pyiceberg.manifest import DataFile
from pyiceberg.partitioning import PartitionFieldValue, PartitionKey, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.serializers import ToOutputFile
from pyiceberg.table import (
    DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE,
    CommitTableResponse,
    Table,
    TableProperties,
    Transaction,
    WriteTask,
)
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata, new_table_metadata
from pyiceberg.table.sorting import SortOrder
from pyiceberg.table.update import TableRequirement
from pyiceberg.utils.config import Config
from pyiceberg.utils.properties import property_as_int

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog.sql import SqlCatalog
    from sqlalchemy import Insert
    from sqlalchemy.orm import Session

SPLIT_ROWS = 128 * 1024  # rows sorted by partition at a time: small enough to stay in the CPU's caches
SPLIT_THREADS = 4  # Arrow's sort and take release the GIL


def write_data_files(
    table: Table,
    rows: pa.Table,
    write_uuid: uuid.UUID,
    counter: itertools.count[int] | None = None,
    target_file_size_bytes: int | None = None,
) -> Iterator[DataFile]:
    """Write `rows` as parquet data files of the table's current schema and default partition spec
    (split by partition, bin-packed to the target size) and describe them as DataFiles, committing
    nothing. Files are written as the iterator is consumed, so a caller that records each one can
    delete exactly those after a failure.

    Relies on `pyiceberg.io.pyarrow._dataframe_to_data_files`, the writer behind pyiceberg's own
    append and overwrite, and for a partitioned table on the pieces it is made of (`WriteTask`,
    `bin_pack_arrow_table`, `write_file`) fed by `split_by_partition`: the ingest component commits
    its files together with its exactly-once record, and compaction adds them to an overwrite that
    deletes the files they replace; both need the files before (and apart from) any snapshot. File
    names are `00000-<counter>-<write_uuid>`, so one write_uuid with one shared counter keeps the
    files of several calls apart.

    `target_file_size_bytes` overrides the table's write.target-file-size-bytes for this write only:
    the writer reads the size from the metadata it is given, so it is handed a copy of the table's
    metadata with the property changed (the table itself is not touched)."""
    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    metadata = table.metadata
    if target_file_size_bytes is not None:
        target = {TableProperties.WRITE_TARGET_FILE_SIZE_BYTES: str(target_file_size_bytes)}
        metadata = metadata.model_copy(update={"properties": {**metadata.properties, **target}})
    if metadata.spec().is_unpartitioned() or rows.num_rows == 0:
        yield from _dataframe_to_data_files(metadata, rows, table.io, write_uuid, counter)
        return
    yield from _write_partitioned(metadata, rows, table, write_uuid, counter or itertools.count(0))


def _write_partitioned(
    metadata: TableMetadata, rows: pa.Table, table: Table, write_uuid: uuid.UUID, counter: itertools.count[int]
) -> Iterator[DataFile]:
    """What `_dataframe_to_data_files` does for a partitioned table (the same tasks for the same writer,
    `write_file`), with the rows split by partition in one pass instead of one filter of the whole
    table per partition, which costs partitions x rows."""
    from pyiceberg.io.pyarrow import bin_pack_arrow_table, pyarrow_to_schema, write_file

    target_file_size: int = property_as_int(  # type: ignore[assignment]  # never None: it has a default
        metadata.properties, TableProperties.WRITE_TARGET_FILE_SIZE_BYTES, TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT
    )
    task_schema = pyarrow_to_schema(
        rows.schema,
        name_mapping=metadata.schema().name_mapping,
        downcast_ns_timestamp_to_us=Config().get_bool(DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE) or False,
        format_version=metadata.format_version,
    )
    tasks = (
        WriteTask(write_uuid=write_uuid, task_id=next(counter), schema=task_schema, record_batches=batches, partition_key=key)
        for key, part in split_by_partition(metadata.spec(), metadata.schema(), rows)
        for batches in bin_pack_arrow_table(part, target_file_size)
    )
    yield from write_file(table.io, metadata, tasks)


def split_by_partition(spec: PartitionSpec, schema: Schema, rows: pa.Table) -> Iterator[tuple[PartitionKey, pa.Table]]:
    """The rows of each partition of `spec`, in their order, as one contiguous table per partition.

    Each slice of SPLIT_ROWS rows is sorted by its partition values (a stable sort) and cut where they
    change; the slices are split in parallel and a partition's pieces are then put together."""
    import pyarrow as pa
    import pyarrow.compute as pc

    names = [_column_name(schema, field.source_id) for field in spec.fields]
    transforms = [field.transform.pyarrow_transform(schema.find_field(field.source_id).field_type) for field in spec.fields]

    def split(batch: pa.RecordBatch) -> list[tuple[tuple[object, ...], pa.RecordBatch]]:
        keys = [transform(_column(batch, name)) for transform, name in zip(transforms, names)]
        plain = [key.storage if isinstance(key, pa.ExtensionArray) else key for key in keys]  # e.g. UUIDs
        if all(len(pc.run_end_encode(key).run_ends) == 1 for key in plain):
            return [(tuple(key[0].as_py() for key in keys), batch)]
        order = pc.sort_indices(pa.table(plain, names=[str(i) for i in range(len(keys))]),
                                sort_keys=[(str(i), "ascending") for i in range(len(keys))])
        batch, keys = batch.take(order), [key.take(order) for key in keys]
        ends = sorted(set().union(*(pc.run_end_encode(key.take(order)).run_ends.to_pylist() for key in plain)))
        return [(tuple(key[start].as_py() for key in keys), batch.slice(start, end - start))
                for start, end in zip([0, *ends], ends)]

    pieces: dict[tuple[object, ...], list[pa.RecordBatch]] = {}
    with ThreadPoolExecutor(max_workers=SPLIT_THREADS) as pool:
        for split_batch in pool.map(split, rows.to_batches(max_chunksize=SPLIT_ROWS)):
            for values, piece in split_batch:
                pieces.setdefault(values, []).append(piece)
    while pieces:  # each partition's pieces are let go once they are put together
        values, parts = pieces.popitem()
        key = PartitionKey([PartitionFieldValue(field, value) for field, value in zip(spec.fields, values)], spec, schema)
        yield key, pa.Table.from_batches(parts, rows.schema).combine_chunks()


def _column_name(schema: Schema, field_id: int) -> str:
    name = schema.find_column_name(field_id)
    if name is None:
        raise ValueError(f"the schema has no field {field_id}, which the partition spec refers to")
    return name


def _column(batch: pa.RecordBatch, path: str) -> pa.Array:
    """A column by name, or a nested field by its dotted path (as pyiceberg names partition sources)."""
    import pyarrow.compute as pc

    if path in batch.schema.names:
        return batch.column(path)
    top, *rest = path.split(".")
    return pc.struct_field(batch.column(top), rest)


def commit_once(
    catalog: Catalog, table: Table, transaction: Transaction, requirements: Iterable[TableRequirement] = ()
) -> CommitTableResponse:
    """Commit what `transaction` staged on `table` in one catalog commit, with `requirements` added
    to the transaction's own; raises CommitFailedException when any requirement no longer holds.

    Relies on `Transaction._requirements` and `Transaction._updates`: the staged updates, and the
    requirements the staged snapshot was built on (the main branch still at the snapshot it read).
    `Transaction.commit_transaction` would retry a refused commit by rebasing the staged snapshot on
    the new head; the ingest component must instead look at what the concurrent commit changed
    (its own exactly-once record) before it commits again, so it commits through
    `Catalog.commit_table` exactly once."""
    staged = (*transaction._requirements, *requirements)
    return catalog.commit_table(table, staged, transaction._updates)


@dataclass(frozen=True)
class TableDefinition:
    """What `Catalog.create_table` takes of a table, beside its name."""

    schema: Schema
    partition_spec: PartitionSpec
    sort_order: SortOrder
    properties: Mapping[str, str]


@dataclass(frozen=True)
class NewMetadata:
    """A table created now: its first metadata file and what it holds."""

    metadata_location: str
    metadata: TableMetadata


def sql_catalog(catalog: Catalog) -> SqlCatalog | None:
    """The catalog if it is pyiceberg's SQL catalog (its module is loaded when one exists, so other
    catalogs do not load SQLAlchemy to find out)."""
    sql = sys.modules.get("pyiceberg.catalog.sql")
    return cast("SqlCatalog", catalog) if sql is not None and isinstance(catalog, sql.SqlCatalog) else None


def create_sql_tables(
    catalog: SqlCatalog, namespace: str, tables: Mapping[str, TableDefinition]
) -> dict[str, NewMetadata | Exception | None]:
    """Create each table as `SqlCatalog.create_table` does (its first metadata file, then its catalog
    row), with every row inserted in one transaction: create_table checks the namespace and reads its
    properties twice per table, commits once per table and reads the table back, several times the
    work of the creation itself. (Writing the files from a thread pool was slower on a local
    warehouse: serializing the metadata holds the GIL.)

    Per table: what was created, the error that stopped it, or None when the catalog already has a
    table of that name (another writer created it; its metadata file written here is left unused, as
    create_table leaves it). A row refused in the shared transaction rolls it back, and the rows are
    then inserted one transaction each, as create_table does, so each name is still created by one
    writer only. Relies on `SqlCatalog._create_table_row` (the row of the catalog's schema version)
    and repeats `MetastoreCatalog._get_default_warehouse_location` once for all the tables."""
    from pyiceberg.catalog.sql import IcebergTables
    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError
    from sqlalchemy.orm import Session

    if not catalog.namespace_exists(namespace):
        raise NoSuchNamespaceError(f"Namespace does not exist: {namespace}")
    base = _namespace_location(catalog, namespace)
    results: dict[str, NewMetadata | Exception | None] = {}
    planned: dict[str, NewMetadata] = {}
    for name, table in tables.items():
        try:
            location, properties = f"{base}/{name}", dict(table.properties)
            metadata_location = load_location_provider(location, properties).new_table_metadata_file_location()
            planned[name] = NewMetadata(metadata_location, new_table_metadata(
                table.schema, table.partition_spec, table.sort_order, location, properties))
        except Exception as error:
            results[name] = error

    io = load_file_io(properties=catalog.properties, location=base)
    written: dict[str, NewMetadata] = {}
    for name, created in planned.items():
        try:
            ToOutputFile.table_metadata(created.metadata, io.new_output(created.metadata_location))
        except Exception as error:
            results[name] = error
        else:
            written[name] = created
    rows = {name: catalog._create_table_row(namespace, name, created.metadata_location)
            for name, created in written.items()}
    with Session(catalog.engine) as session:
        try:
            if rows:
                session.execute(insert(IcebergTables), list(rows.values()))
                session.commit()
            results.update(written)
        except IntegrityError:
            session.rollback()
            for name, row in rows.items():
                results[name] = _insert_alone(session, insert(IcebergTables).values(**row), written[name])
    return {name: results[name] for name in tables}


def _insert_alone(session: Session, row: Insert, created: NewMetadata) -> NewMetadata | Exception | None:
    """One table's row in a transaction of its own, as `SqlCatalog.create_table` inserts it."""
    from sqlalchemy.exc import IntegrityError

    try:
        session.execute(row)
        session.commit()
    except IntegrityError:
        session.rollback()
        return None
    except Exception as error:
        session.rollback()
        return error
    return created


def _namespace_location(catalog: SqlCatalog, namespace: str) -> str:
    """Where the namespace's tables go by default: its `location` property, else `<warehouse>/<namespace>`."""
    location = catalog.load_namespace_properties(namespace).get("location")
    if location:
        return location.rstrip("/")
    warehouse = catalog.properties.get("warehouse")
    if not warehouse:
        raise ValueError("No default path is set, please specify a location when creating a table")
    return f"{warehouse.rstrip('/')}/{namespace}"
