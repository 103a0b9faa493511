"""A DataLake's catalog work as whole calls that open the catalog and close it again, so that they can
run in the driver helper (drivers/host.py): the operator then holds neither pyiceberg's catalogs and
SQLAlchemy nor their connections and files, whatever number of lakes it reconciled.

A table crosses as what status reports of it and its metadata (the schema plan is made against it). An
evolution names the metadata it was planned from and is refused when the table moved on meanwhile, so a
change is committed against exactly what was planned, as when observe and act shared one table.

A reconcile's changes go as one call (`write`), and a deletion's drops as one (`drop`), on one open catalog: opening a SQL catalog builds an
SQLAlchemy engine, checks the catalog's own tables and starts with an empty statement cache, which cost
more than creating a table when each table was a call of its own."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from loom.api.datalake import Column
from loom.domain.errors import error_name
from loom.domain.table_changes import TableChanges
from loom.drivers import iceberg_tables as tables
from loom.drivers.host import out_of_process
from loom.drivers.iceberg_catalog import open_catalog
from loom.drivers.iceberg_owner import TableOwner, recorded_owner

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog as IcebergCatalog
    from pyiceberg.table import Table as IcebergTable
    from pyiceberg.table.metadata import TableMetadata


class TableChangedError(RuntimeError):
    """Another writer committed to the table after it was observed; the next reconcile plans again."""


@dataclass(frozen=True)
class LoadedTable:
    """A table that exists: what status reports of it, and the metadata its evolution is planned from."""

    state: tables.TableState
    metadata: TableMetadata

    @property
    def owner(self) -> TableOwner | None:
        """The DataLake the table records as its owner, if any."""
        return recorded_owner(self.metadata.properties)


@dataclass(frozen=True)
class LakeRead:
    """Whether the namespace exists, the declared tables that could be read (None: not in the catalog),
    and why each other one could not be."""

    namespace_exists: bool
    tables: Mapping[str, LoadedTable | None] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)


@contextmanager
def _catalog(name: str, properties: Mapping[str, str]) -> Iterator[IcebergCatalog]:
    catalog = open_catalog(name, properties)
    try:
        yield catalog
    finally:
        catalog.close()


def _loaded(table: IcebergTable) -> LoadedTable:
    return LoadedTable(tables.observe(table), table.metadata)


@out_of_process()
def read(name: str, properties: Mapping[str, str], namespace: str, names: Sequence[str]) -> LakeRead:
    """The namespace and each named table; one table that cannot be read does not hide the others."""
    with _catalog(name, properties) as catalog:
        if not catalog.namespace_exists(namespace):
            return LakeRead(False, {table: None for table in names})
        found: dict[str, LoadedTable | None] = {}
        errors: dict[str, str] = {}
        for table in names:
            try:
                loaded = tables.load_table(catalog, namespace, table)
            except Exception as error:
                errors[table] = str(error)
                continue
            found[table] = _loaded(loaded) if loaded is not None else None
        return LakeRead(True, found, errors)


@dataclass(frozen=True)
class NewTable:
    """A table to create with its declared columns and the layout of its creation plan."""

    name: str
    columns: tuple[Column, ...]
    changes: TableChanges


@dataclass(frozen=True)
class Evolution:
    """One plan for a table, committed only on the metadata file it was planned from."""

    name: str
    planned_from: str
    changes: TableChanges


@dataclass(frozen=True)
class TableWritten:
    """What a creation or evolution left: the table as committed (`created`: a creation that made it
    now, not another writer meanwhile), or `error`, why it failed."""

    table: LoadedTable | None = None
    created: bool = False
    error: str = ""


@dataclass(frozen=True)
class LakeWritten:
    """Whether the namespace was created now (`namespace_error`: why it could not be), and each table's
    result by name."""

    namespace_created: bool = False
    namespace_error: str = ""
    tables: Mapping[str, TableWritten] = field(default_factory=dict)


@out_of_process()
def write(name: str, properties: Mapping[str, str], namespace: str, create_namespace: bool,
          changes: Sequence[NewTable | Evolution]) -> LakeWritten:
    """A reconcile's catalog changes on one open catalog: the namespace if asked, then the new tables
    (`iceberg_tables.create_tables`: in one transaction on a SQL catalog), then each evolution in one
    commit of its own; a table that fails does not stop or hide the others."""
    with _catalog(name, properties) as catalog:
        created, namespace_error = False, ""
        if create_namespace:
            try:
                created = tables.ensure_namespace(catalog, namespace)
            except Exception as error:
                namespace_error = str(error)
        written = _create(catalog, namespace, [change for change in changes if isinstance(change, NewTable)])
        for change in changes:
            if isinstance(change, Evolution):
                try:
                    written[change.name] = _evolve(catalog, namespace, change)
                except Exception as error:
                    written[change.name] = TableWritten(error=str(error))
        return LakeWritten(created, namespace_error, {change.name: written[change.name] for change in changes})


def _create(catalog: IcebergCatalog, namespace: str, new: Sequence[NewTable]) -> dict[str, TableWritten]:
    """Each new table as created, or why it could not be (a failure of the catalog fails each)."""
    written: dict[str, TableWritten] = {}
    schemas = {}
    for table in new:
        try:
            schemas[table.name] = (tables.schema_for(table.columns), table.changes)
        except Exception as error:
            written[table.name] = TableWritten(error=str(error))
    if not schemas:
        return written
    try:
        created = tables.create_tables(catalog, namespace, schemas)
    except Exception as error:
        return {**written, **{table_name: TableWritten(error=str(error)) for table_name in schemas}}
    for table_name, result in created.items():
        if isinstance(result, Exception):
            written[table_name] = TableWritten(error=str(result))
        else:
            state = tables.observe_metadata(table_name, result.metadata_location, result.metadata)
            written[table_name] = TableWritten(LoadedTable(state, result.metadata), result.fresh)
    return written


def _evolve(catalog: IcebergCatalog, namespace: str, change: Evolution) -> TableWritten:
    current = tables.load_table(catalog, namespace, change.name)
    if current is None or current.metadata_location != change.planned_from:
        raise TableChangedError("changed by another writer since it was observed; planning again against it")
    return TableWritten(_loaded(tables.evolve(current, change.changes)))


@dataclass(frozen=True)
class Dropped:
    """The tables dropped now, in order (one already gone is not). When a drop failed, `error` says why
    (`<type>: <message>`) and `stopped_at` names the table it failed at (None: the namespace); nothing
    after it was tried."""

    tables: tuple[str, ...] = ()
    error: str = ""
    stopped_at: str | None = None


@out_of_process()
def drop(name: str, properties: Mapping[str, str], namespace: str, names: Sequence[str],
         namespace_if_empty: bool) -> Dropped:
    """Drop the tables and delete their files, then the namespace if asked and nothing else lives in
    it, on one open catalog; the first failure stops the rest."""
    with _catalog(name, properties) as catalog:
        dropped: list[str] = []
        for table in names:
            try:
                if tables.drop_table(catalog, namespace, table):
                    dropped.append(table)
            except Exception as error:
                return Dropped(tuple(dropped), f"{error_name(error)}: {error}", table)
        if namespace_if_empty:
            try:
                tables.drop_namespace_if_empty(catalog, namespace)
            except Exception as error:
                return Dropped(tuple(dropped), f"{error_name(error)}: {error}")
        return Dropped(tuple(dropped))
