"""Iceberg tables through pyiceberg: observe, create, evolve (one transaction per change), drop.

Every write is a single catalog commit, so a table is either exactly as it was or fully changed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import count

from pyiceberg.catalog import Catalog as IcebergCatalog
from pyiceberg.exceptions import CommitFailedException, NoSuchNamespaceError, NoSuchTableError, TableAlreadyExistsError
from pyiceberg.partitioning import PARTITION_FIELD_ID_START, PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table as IcebergTable
from pyiceberg.table import Transaction
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.sorting import UNSORTED_SORT_ORDER, NullOrder, SortDirection, SortField, SortOrder
from pyiceberg.table.update.schema import UpdateSchema
from pyiceberg.table.update.sorting import UpdateSortOrder
from pyiceberg.table.update.spec import UpdateSpec
from pyiceberg.transforms import parse_transform
from pyiceberg.types import NestedField

from loom.api.datalake import Column
from loom.domain.iceberg_types import parse_type
from loom.domain.table_changes import (
    AddColumn,
    AddPartitionField,
    DropColumn,
    MoveColumn,
    RemovePartitionField,
    RenameColumn,
    RenamePartitionField,
    SchemaChange,
    SortKey,
    SpecChange,
    TableChanges,
    UpdateColumn,
)
from loom.drivers import pyiceberg_internals


@dataclass(frozen=True)
class TableState:
    """What Loom reports about a table, read from its metadata and current snapshot summary."""

    name: str
    metadata_location: str
    current_snapshot_id: int | None
    schema_id: int
    spec_id: int
    row_count: int
    data_files: int
    total_bytes: int


def schema_for(columns: Iterable[Column]) -> Schema:
    """The Iceberg schema of declared columns; ids are provisional (pyiceberg assigns fresh ones)."""
    ids = count(1)
    fields = []
    for column in columns:
        field_id = next(ids)
        fields.append(NestedField(field_id, column.name, parse_type(column.type, ids), column.required, column.doc))
    return Schema(*fields)


def observe(table: IcebergTable) -> TableState:
    return observe_metadata(table.name()[-1], table.metadata_location, table.metadata)


def observe_metadata(name: str, metadata_location: str, metadata: TableMetadata) -> TableState:
    """What `observe` reports, from the table's metadata and its location alone."""
    snapshot = metadata.current_snapshot()
    summary = snapshot.summary if snapshot and snapshot.summary else None

    def total(key: str) -> int:
        value = summary.get(key) if summary is not None else None
        return int(value) if value is not None else 0

    return TableState(
        name=name,
        metadata_location=metadata_location,
        current_snapshot_id=snapshot.snapshot_id if snapshot else None,
        schema_id=metadata.current_schema_id,
        spec_id=metadata.default_spec_id,
        row_count=total("total-records"),
        data_files=total("total-data-files"),
        total_bytes=total("total-files-size"),
    )


def ensure_namespace(catalog: IcebergCatalog, namespace: str) -> bool:
    """Create the namespace if it is missing; True when it was created now."""
    if catalog.namespace_exists(namespace):
        return False
    catalog.create_namespace_if_not_exists(namespace)
    return True


def load_table(catalog: IcebergCatalog, namespace: str, name: str) -> IcebergTable | None:
    try:
        return catalog.load_table((namespace, name))
    except NoSuchTableError:
        return None


def create_table(
    catalog: IcebergCatalog, namespace: str, name: str, schema: Schema, changes: TableChanges
) -> tuple[IcebergTable, bool]:
    """Create the table with its partition spec, sort order and properties in one commit; if someone
    created it meanwhile, load theirs (the caller then plans against it). True when created now.

    The layout is built here rather than with update_spec and update_sort_order on a creation
    transaction, which recompute the whole metadata at every step (most of a creation's cost); so the
    plan names each partition field (`schema_plan.plan_creation`)."""
    layout = _definition(schema, changes)
    try:
        created = catalog.create_table((namespace, name), schema, partition_spec=layout.partition_spec,
                                       sort_order=layout.sort_order, properties=dict(layout.properties))
        return created, True
    except (TableAlreadyExistsError, CommitFailedException):  # the SQL catalog reports the race as the latter
        existing = load_table(catalog, namespace, name)
        if existing is None:
            raise
        return existing, False


@dataclass(frozen=True)
class Created:
    """A table as its creation left it: created now (`fresh`), or by another writer meanwhile."""

    metadata_location: str
    metadata: TableMetadata
    fresh: bool


def create_tables(
    catalog: IcebergCatalog, namespace: str, new: Mapping[str, tuple[Schema, TableChanges]]
) -> dict[str, Created | Exception]:
    """Create each table as `create_table` does, each with its whole layout in its own metadata; one
    table's failure stops no other. A SQL catalog gets every catalog row in one transaction
    (`pyiceberg_internals.create_sql_tables`): one commit instead of one per table, and no read of
    each table back."""
    sql = pyiceberg_internals.sql_catalog(catalog)
    if sql is None:
        return {name: _create_alone(catalog, namespace, name, schema, changes) for name, (schema, changes) in new.items()}
    results: dict[str, Created | Exception] = {}
    definitions: dict[str, pyiceberg_internals.TableDefinition] = {}
    for name, (schema, changes) in new.items():
        try:
            definitions[name] = _definition(schema, changes)
        except Exception as error:
            results[name] = error
    for name, made in pyiceberg_internals.create_sql_tables(sql, namespace, definitions).items():
        if made is None:  # another writer created it meanwhile
            results[name] = _existing(catalog, namespace, name)
        else:
            results[name] = made if isinstance(made, Exception) else Created(made.metadata_location, made.metadata, True)
    return {name: results[name] for name in new}


def _create_alone(
    catalog: IcebergCatalog, namespace: str, name: str, schema: Schema, changes: TableChanges
) -> Created | Exception:
    try:
        table, fresh = create_table(catalog, namespace, name, schema, changes)
    except Exception as error:
        return error
    return Created(table.metadata_location, table.metadata, fresh)


def _existing(catalog: IcebergCatalog, namespace: str, name: str) -> Created | Exception:
    try:
        table = load_table(catalog, namespace, name)
    except Exception as error:
        return error
    if table is None:
        return TableAlreadyExistsError(f"Table {namespace}.{name} already exists")
    return Created(table.metadata_location, table.metadata, False)


def _definition(schema: Schema, changes: TableChanges) -> pyiceberg_internals.TableDefinition:
    """The table's whole layout as a creation takes it: schema, partition spec, sort order, properties."""
    return pyiceberg_internals.TableDefinition(
        schema, _partition_spec(schema, changes.spec), _sort_order(schema, changes.sort_order or ()), changes.properties)


def _partition_spec(schema: Schema, changes: Iterable[SpecChange]) -> PartitionSpec:
    fields: list[PartitionField] = []
    for change in changes:
        if not isinstance(change, AddPartitionField) or change.name is None:
            raise ValueError(f"a new table's partition fields are added with their names, not: {change}")
        source = schema.find_field(change.column).field_id
        fields.append(PartitionField(source, PARTITION_FIELD_ID_START + len(fields), parse_transform(change.transform),
                                     change.name))
    return PartitionSpec(*fields)


def _sort_order(schema: Schema, keys: Iterable[SortKey]) -> SortOrder:
    fields = [
        SortField(schema.find_field(key.column).field_id, parse_transform(key.transform),
                  SortDirection.DESC if key.descending else SortDirection.ASC,
                  NullOrder.NULLS_FIRST if key.nulls_first else NullOrder.NULLS_LAST)
        for key in keys
    ]
    return SortOrder(*fields) if fields else UNSORTED_SORT_ORDER


def evolve(table: IcebergTable, changes: TableChanges) -> IcebergTable:
    """Apply one plan as one commit: one new schema, then spec, sort order and properties."""
    with table.transaction() as txn:
        if changes.schema:
            with txn.update_schema() as update:
                for change in changes.schema:
                    _apply_schema_change(update, change)
        _apply_layout(txn, changes)
        if changes.properties:
            txn.set_properties(dict(changes.properties))
    return table


def drop_table(catalog: IcebergCatalog, namespace: str, name: str) -> bool:
    """Drop the table and delete its files; False when it did not exist."""
    try:
        catalog.purge_table((namespace, name))
    except NoSuchTableError:
        return False
    return True


def drop_namespace_if_empty(catalog: IcebergCatalog, namespace: str) -> bool:
    try:
        if catalog.list_tables(namespace):
            return False
        catalog.drop_namespace(namespace)
    except NoSuchNamespaceError:
        return False
    return True


def _apply_schema_change(update: UpdateSchema, change: SchemaChange) -> None:
    if isinstance(change, AddColumn):
        update.add_column(change.path, change.type, doc=change.doc)
    elif isinstance(change, UpdateColumn):
        update.update_column(
            change.path, field_type=change.type, required=False if change.make_optional else None, doc=change.doc
        )
    elif isinstance(change, RenameColumn):
        update.rename_column(change.path, change.new_name)
    elif isinstance(change, DropColumn):
        update.delete_column(change.path)
    elif isinstance(change, MoveColumn):
        if change.after is None:
            update.move_first(change.name)
        else:
            update.move_after(change.name, change.after)


def _apply_layout(txn: Transaction, changes: TableChanges) -> None:
    """Partition spec and sort order; these resolve column names against the schema just updated."""
    if changes.spec:
        with txn.update_spec() as spec:
            for change in changes.spec:
                _apply_spec_change(spec, change)
    if changes.sort_order is not None:
        with txn.update_sort_order() as order:
            for key in changes.sort_order:
                _sort(order, key)


def _apply_spec_change(spec: UpdateSpec, change: SpecChange) -> None:
    if isinstance(change, AddPartitionField):
        spec.add_field(change.column, parse_transform(change.transform), change.name)
    elif isinstance(change, RemovePartitionField):
        spec.remove_field(change.name)
    elif isinstance(change, RenamePartitionField):
        spec.rename_field(change.name, change.new_name)


def _sort(order: UpdateSortOrder, key: SortKey) -> None:
    add = order.desc if key.descending else order.asc
    add(key.column, parse_transform(key.transform), NullOrder.NULLS_FIRST if key.nulls_first else NullOrder.NULLS_LAST)
