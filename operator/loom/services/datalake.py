"""DataLake reconcile: open the Iceberg catalog, then run each step (tables here; ingestion and
maintenance join as further steps) and merge what the steps report into conditions and status."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyiceberg.catalog import Catalog as IcebergCatalog

from loom.api.datalake import DataLakeSpec, DataLakeStatus, Table, TableStatus
from loom.api.kinds import DATALAKE
from loom.api.meta import API_VERSION, DeletionPolicy
from loom.domain.errors import SecretNotFoundError
from loom.domain.outcome import Event, Observed, Outcome
from loom.domain.workloads import OwnerRef
from loom.drivers import iceberg_tables as tables
from loom.drivers.iceberg_catalog import catalog_properties, open_catalog
from loom.services import lake_ingest, lake_maintenance
from loom.services.context import ReconcileContext
from loom.services.schema_plan import Refusal, plan_creation, plan_table

log = logging.getLogger(__name__)

CATALOG_READY = "CatalogReady"
SCHEMA_COMPATIBLE = "SchemaCompatible"
TABLES_READY = "TablesReady"


@dataclass(frozen=True)
class Lake:
    """What every step gets. `catalog_properties` hold the Secret's values: hand them to workloads
    only through Secrets, never into status, events or logs."""

    spec: DataLakeSpec
    ctx: ReconcileContext
    catalog: IcebergCatalog
    catalog_properties: Mapping[str, str]
    secret_keys: tuple[str, ...]
    previous: DataLakeStatus


@dataclass(frozen=True)
class StepResult:
    """One step's report: conditions, top-level status fields, per-table status fields (TableStatus
    field names, merged by table name), events, and when to look again."""

    conditions: tuple[Observed, ...] = ()
    fields: Mapping[str, Any] = field(default_factory=dict)
    tables: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    events: tuple[Event, ...] = ()
    retry_after: float | None = None


Step = Callable[[Lake], StepResult]


class _Redactor:
    """Replaces Secret values in messages that leave the operator (exception texts can quote a URI)."""

    def __init__(self, secret: Mapping[str, str]) -> None:
        self.values = sorted((v for v in secret.values() if v), key=len, reverse=True)

    def __call__(self, text: object) -> str:
        message = str(text)
        for value in self.values:
            message = message.replace(value, "***")
        return message


def read_secret(spec: DataLakeSpec, ctx: ReconcileContext) -> dict[str, str]:
    """The Secret keys that join the catalog properties (one key when `secretRef.key` is set)."""
    ref = spec.catalog.secret_ref
    if ref is None:
        return {}
    values = ctx.kube.get_secret(ctx.namespace, ref.name)
    if ref.key is None:
        return values
    if ref.key not in values:
        raise SecretNotFoundError(f"Secret {ctx.namespace}/{ref.name} has no key {ref.key!r}")
    return {ref.key: values[ref.key]}


# --- tables step ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TableResult:
    state: tables.TableState | None
    created: bool = False
    changes: Sequence[str] = ()
    refusals: tuple[Refusal, ...] = ()


def _reconcile_table(lake: Lake, table: Table) -> _TableResult:
    current = tables.load_table(lake.catalog, lake.spec.namespace, table.name)
    if current is None:
        creation = plan_creation(table)
        if creation.refusals:
            return _TableResult(None, refusals=creation.refusals)
        schema = tables.schema_for(table.columns)
        current, created = tables.create_table(lake.catalog, lake.spec.namespace, table.name, schema, creation.changes)
        if created:
            return _TableResult(tables.observe(current), created=True)
    plan = plan_table(table, lake.spec.schema_evolution, current.metadata)
    if plan.refusals:
        return _TableResult(tables.observe(current), refusals=plan.refusals)
    if plan.changes:
        tables.evolve(current, plan.changes)
    return _TableResult(tables.observe(current), changes=plan.changes.describe())


_OBSERVED = ("current_snapshot_id", "schema_id", "spec_id", "row_count", "data_files", "total_bytes")


def _table_fields(state: tables.TableState | None) -> dict[str, Any]:
    """The TableStatus fields this step owns; all None for a table that does not exist."""
    return {name: getattr(state, name) if state else None for name in _OBSERVED}


def reconcile_tables(lake: Lake) -> StepResult:
    """Create missing tables (a table Loom had seen before comes back empty, with a Warning), evolve
    the others where the plan is safe; a refused table stays untouched and the others go on."""
    redact = _Redactor(lake.catalog_properties)
    namespace = lake.spec.namespace
    seen = {t.name for t in lake.previous.tables if t.schema_id is not None}
    states: dict[str, Mapping[str, Any]] = {}
    created: list[str] = []
    refused: list[str] = []
    errors: list[str] = []
    events: list[Event] = []
    for table in lake.spec.tables:
        try:
            result = _reconcile_table(lake, table)
        except Exception as error:  # one table's failure must not stop the others; retried below
            log.warning("table %s.%s: %s", namespace, table.name, redact(error))
            errors.append(f"table {table.name}: {redact(error)}")
            continue
        states[table.name] = _table_fields(result.state)
        refused += [f"table {table.name}: {r}" for r in result.refusals]
        if result.created and table.name in seen:
            events.append(Event(
                "Warning", "TableRecreated",
                f"table {namespace}.{table.name} was missing from the catalog (dropped outside Loom); "
                "recreated it empty",
            ))
        elif result.created:
            created.append(table.name)
        if result.changes:
            events.append(Event("Normal", "TableEvolved", f"table {namespace}.{table.name}: " + "; ".join(result.changes)))
    if created:
        events.insert(0, Event("Normal", "TablesCreated", f"created in {namespace}: " + ", ".join(created)))

    declared = len(lake.spec.tables)
    existing = sum(1 for row in states.values() if row["schema_id"] is not None)
    if refused:
        compatible = Observed(SCHEMA_COMPATIBLE, False, "SchemaChangeRefused",
                              "; ".join(refused) + " (refused tables are left unchanged)")
    else:
        compatible = Observed(SCHEMA_COMPATIBLE, True, "Compatible", "the declared tables are compatible with the catalog")
    if errors:
        ready = Observed(TABLES_READY, False, "TableError", "; ".join(errors))
    elif existing < declared:
        ready = Observed(TABLES_READY, False, "TableNotCreated",
                         f"{declared - existing} of {declared} table(s) cannot be created")
    else:
        ready = Observed(TABLES_READY, True, "Reconciled", f"{declared} table(s) in namespace {namespace}")
    return StepResult(
        conditions=(compatible, ready),
        fields={} if errors else {"table_count": existing},  # unknown while some table cannot be read
        tables=states,
        events=tuple(events),
        retry_after=lake.ctx.config.dependency_retry_seconds if errors else None,
    )


# --- ingest step ---------------------------------------------------------------------------------


def reconcile_ingest(lake: Lake) -> StepResult:
    """Keep one workload per `spec.ingest[]` and report `Ingested` plus each table's last ingest,
    read from the table's own exactly-once record."""
    namespace = lake.spec.namespace
    properties = {
        t.name: table.properties
        for t in lake.spec.tables
        if (table := tables.load_table(lake.catalog, namespace, t.name)) is not None
    }
    owner = OwnerRef(API_VERSION, DATALAKE.kind, lake.ctx.name, lake.ctx.uid)
    report = lake_ingest.reconcile(
        lake.spec, lake.ctx.namespace, lake.ctx.name, owner, lake.ctx.executor, properties, lake.secret_keys
    )
    return StepResult(
        conditions=report.conditions,
        tables={table: {"last_ingest": last} for table, last in report.last_ingest.items()},
        retry_after=report.retry_after,
    )


def reconcile_maintenance(lake: Lake) -> StepResult:
    """Scheduled snapshot expiry and compaction of the declared tables (`Maintained`)."""
    owner = OwnerRef(API_VERSION, DATALAKE.kind, lake.ctx.name, lake.ctx.uid)
    conditions, retry_after = lake_maintenance.reconcile(
        lake.spec, lake.ctx.namespace, lake.ctx.name, owner, lake.ctx.executor, lake.secret_keys
    )
    return StepResult(conditions=conditions, retry_after=retry_after)


STEPS: tuple[Step, ...] = (reconcile_tables, reconcile_ingest, reconcile_maintenance)


# --- reconcile -----------------------------------------------------------------------------------


def _previous_status(ctx: ReconcileContext) -> DataLakeStatus:
    """The status as last written, for what steps carry forward (the last ingest per table)."""
    obj = ctx.kube.get_loom(DATALAKE, ctx.namespace, ctx.name) or {}
    return DataLakeStatus.model_validate(obj.get("status") or {})


def _merge(spec: DataLakeSpec, previous: DataLakeStatus, results: Sequence[StepResult]) -> dict[str, Any]:
    """Per declared table: what was recorded before (the last ingest; everything, for a table a step
    could not look at this time), overlaid with what the steps report now."""
    before = {t.name: t for t in previous.tables}
    rows = []
    for table in spec.tables:
        old = before.get(table.name)
        row: dict[str, Any] = old.model_dump() if old else {"name": table.name}
        for result in results:
            row.update(result.tables.get(table.name, {}))
        rows.append(TableStatus.model_validate(row))
    fields: dict[str, Any] = {"tables": rows}
    for result in results:
        fields.update(result.fields)
    return fields


def reconcile(spec: DataLakeSpec, ctx: ReconcileContext) -> Outcome:
    """Catalog first (CatalogReady), then every step against the open catalog."""
    retry = ctx.config.dependency_retry_seconds
    try:
        secret = read_secret(spec, ctx)
    except SecretNotFoundError as error:
        return Outcome((Observed(CATALOG_READY, False, "SecretNotFound", str(error)),), retry_after=retry)
    redact = _Redactor(secret)
    properties = catalog_properties(spec.catalog, secret)
    try:
        catalog = open_catalog(spec.catalog.name, properties)
    except Exception as error:  # unreachable database, bad URI, missing driver: all reported alike
        return Outcome((Observed(CATALOG_READY, False, "CatalogUnavailable", redact(error)),), retry_after=retry)
    try:
        try:
            created = tables.ensure_namespace(catalog, spec.namespace)
        except Exception as error:
            return Outcome((Observed(CATALOG_READY, False, "CatalogUnavailable", redact(error)),), retry_after=retry)
        previous = _previous_status(ctx)
        lake = Lake(spec, ctx, catalog, properties, tuple(sorted(secret)), previous)
        results = [step(lake) for step in STEPS]
    finally:
        catalog.close()
    catalog_ready = Observed(CATALOG_READY, True, "Connected", f"namespace {spec.namespace} in {spec.catalog.type} catalog")
    events = [Event("Normal", "NamespaceCreated", f"created namespace {spec.namespace}")] if created else []
    retries = [r.retry_after for r in results if r.retry_after is not None]
    return Outcome(
        (catalog_ready, *(c for r in results for c in r.conditions)),
        _merge(spec, previous, results),
        retry_after=min(retries) if retries else None,
        events=(*events, *(e for r in results for e in r.events)),
    )


class CatalogUnavailableError(RuntimeError):
    """The catalog could not be reached or changed; the message has the Secret's values redacted."""


def delete(spec: DataLakeSpec, ctx: ReconcileContext) -> list[str]:
    """On deletion: Retain keeps everything; Delete purges the declared tables, then the namespace
    if nothing else lives in it. Returns the tables dropped now."""
    if spec.deletion_policy != DeletionPolicy.DELETE:
        return []
    secret = read_secret(spec, ctx)
    try:
        catalog = open_catalog(spec.catalog.name, catalog_properties(spec.catalog, secret))
        try:
            dropped = [t.name for t in spec.tables if tables.drop_table(catalog, spec.namespace, t.name)]
            tables.drop_namespace_if_empty(catalog, spec.namespace)
        finally:
            catalog.close()
    except Exception as error:  # re-raised without the original, whose text may quote a credential
        raise CatalogUnavailableError(_Redactor(secret)(error)) from None
    return dropped
