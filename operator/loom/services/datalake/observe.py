"""Everything a DataLake's decision reads, gathered into one value: the catalog (reachable or why not),
each declared table as loaded once, whether the other DataLakes its tables name as their owners still
exist, the ingests' records in their tables, this lake's workloads with their runs, and the object's
own status as Kopf delivered it (never read again with a GET). A failure to reach an external system
is observed here, never raised."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from pydantic import ValidationError

from loom.api.datalake import DataLakeSpec, DataLakeStatus, LastIngest
from loom.api.kinds import DATALAKE
from loom.api.meta import API_VERSION
from loom.builders.labels import owned_by
from loom.domain.workloads import OwnerRef, WorkloadStatus
from loom.drivers import ingest_record
from loom.drivers.iceberg_lake import LoadedTable
from loom.drivers.kube import Kube
from loom.services.context import ReconcileContext
from loom.services.datalake.session import CATALOG_UNAVAILABLE, Session, Unreachable

log = logging.getLogger(__name__)

EXECUTOR_UNAVAILABLE = "ExecutorUnavailable"


@dataclass(frozen=True)
class OwnerSeen:
    """Whether a DataLake another lake's table records as its owner still exists: True, False (gone,
    or replaced by a new object of the same name), None when it could not be read (`error` says why)."""

    exists: bool | None
    error: str = ""


@dataclass(frozen=True)
class DataLakeObserved:
    """`tables` holds the declared tables that could be read (None: not in the catalog), `table_errors`
    the others; `owners` says, by uid, whether each other DataLake a table records as its owner still
    exists; `workloads` are the runs (newest first) of every workload labelled as this lake's.
    `retry_seconds` is the operator's backoff after an external failure, carried here so that the
    decision depends on its arguments alone."""

    namespace: str
    owner: OwnerRef
    status: DataLakeStatus
    retry_seconds: float
    catalog: Unreachable | None = None
    secret_keys: tuple[str, ...] = ()
    namespace_exists: bool = True
    tables: Mapping[str, LoadedTable | None] = field(default_factory=dict)
    table_errors: Mapping[str, str] = field(default_factory=dict)
    owners: Mapping[str, OwnerSeen] = field(default_factory=dict)
    ingest_records: Mapping[str, LastIngest] = field(default_factory=dict)
    workloads: Mapping[str, tuple[WorkloadStatus, ...]] = field(default_factory=dict)
    executor: Unreachable | None = None


def previous_status(ctx: ReconcileContext) -> DataLakeStatus:
    """The status as Kopf delivered it; one that no longer parses counts as none (it is rewritten)."""
    try:
        return DataLakeStatus.model_validate(ctx.status or {})
    except ValidationError:
        return DataLakeStatus()


def observe(spec: DataLakeSpec, ctx: ReconcileContext, session: Session) -> DataLakeObserved:
    seen = DataLakeObserved(
        namespace=ctx.namespace,
        owner=OwnerRef(API_VERSION, DATALAKE.kind, ctx.name, ctx.uid),
        status=previous_status(ctx),
        retry_seconds=ctx.config.dependency_retry_seconds,
        catalog=session.failure,
        secret_keys=session.secret_keys,
    )
    if session.failure is not None:
        return seen
    try:
        read = session.read([table.name for table in spec.tables])
    except Exception as error:
        return replace(seen, catalog=Unreachable(CATALOG_UNAVAILABLE, session.redact(error)))
    errors = {}
    for name, message in read.errors.items():  # one table's failure must not hide the others
        log.warning("table %s.%s: %s", spec.namespace, name, session.redact(message))
        errors[name] = f"table {name}: {session.redact(message)}"
    workloads, executor = _workloads(ctx)
    return replace(seen, namespace_exists=read.namespace_exists, tables=read.tables, table_errors=errors,
                   owners=_owners(read.tables, ctx.uid, ctx.kube), ingest_records=_records(spec, read.tables),
                   workloads=workloads, executor=executor)


def _owners(found: Mapping[str, LoadedTable | None], uid: str, kube: Kube) -> dict[str, OwnerSeen]:
    """Each other DataLake the tables record as their owner, looked up once: it exists when an object
    of its namespace and name has its uid."""
    others = {t.owner.uid: t.owner for t in found.values() if t is not None and t.owner and t.owner.uid != uid}
    seen = {}
    for owner in others.values():
        try:
            body = kube.get_loom(DATALAKE, owner.namespace, owner.name)
        except Exception as error:  # the API server failed or refused (another namespace may be forbidden)
            seen[owner.uid] = OwnerSeen(None, f"DataLake {owner} cannot be read: {error}")
            continue
        current = (body or {}).get("metadata", {}).get("uid")
        seen[owner.uid] = OwnerSeen(current == owner.uid)
    return seen


def _records(spec: DataLakeSpec, found: Mapping[str, LoadedTable | None]) -> dict[str, LastIngest]:
    """Each ingest's last commit, from the record it keeps in its table's properties."""
    records = {}
    for ingest in spec.ingest:
        table = found.get(ingest.table)
        record = ingest_record.last_ingest(table.metadata.properties, ingest.name) if table is not None else None
        if record is not None:
            records[ingest.name] = record
    return records


def _workloads(ctx: ReconcileContext) -> tuple[dict[str, tuple[WorkloadStatus, ...]], Unreachable | None]:
    try:
        names = ctx.executor.names(ctx.namespace, owned_by(DATALAKE.kind, ctx.name))
        return {name: tuple(ctx.executor.runs(ctx.namespace, name)) for name in sorted(names)}, None
    except Exception as error:  # the Kubernetes API, or the local executor's state directory
        return {}, Unreachable(EXECUTOR_UNAVAILABLE, f"workloads cannot be listed: {error}")
