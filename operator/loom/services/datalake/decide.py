"""The DataLake's decision, pure: from the spec, what was observed and the time, the conditions and
status to report and the actions that bring the catalog and the workloads in step with the spec.

Time is a schedule, not an error. Scheduled ingests and maintenance are submitted and the executor
ticks them (a CronJob, or the local executor's thread); a run that starts or finishes brings the
DataLake back by itself (the executor reports it and the owner is woken), and a failed once-run is
retried by the executor as `Workload.retries` allows. So nothing here waits with `retry_after` or
`requeue_at` for a run or a tick: `retry_after` is only for an external system that failed."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loom.api.datalake import DataLakeSpec, Ingest, LastIngest, TableStatus
from loom.api.meta import DeletionPolicy
from loom.builders import ingest as ingest_builder
from loom.builders import maintenance as maintenance_builder
from loom.builders.lake_access import LakeRef
from loom.domain.outcome import Decision, Observed, Outcome
from loom.domain.schedules import ScheduleError, next_tick, validate
from loom.domain.table_changes import TableChanges
from loom.domain.workloads import EXIT_INPUT_ERROR, Phase, Workload, WorkloadStatus
from loom.drivers import ingest_record
from loom.drivers.iceberg_catalog import catalog_properties
from loom.drivers.iceberg_owner import TableOwner, owner_properties
from loom.drivers.iceberg_tables import TableState
from loom.services.datalake.actions import (
    Action,
    Adoption,
    CreateNamespace,
    CreateTable,
    DeleteWorkload,
    Deletion,
    DropNamespaceIfEmpty,
    DropTable,
    EvolveTable,
    SubmitWorkload,
)
from loom.services.datalake.observe import DataLakeObserved
from loom.services.datalake.ownership import OWNED_ELSEWHERE, Foreign, claim, me, owned
from loom.services.datalake.schema_plan import plan_creation, plan_table

CATALOG_READY = "CatalogReady"
SCHEMA_COMPATIBLE = "SchemaCompatible"
TABLES_READY = "TablesReady"
INGESTED = "Ingested"
MAINTAINED = "Maintained"
# The reason a condition takes when the act step fails at something it reports.
FAILURE_REASONS = {
    CATALOG_READY: "CatalogUnavailable",
    TABLES_READY: "TableError",
    INGESTED: "IngestFailed",
    MAINTAINED: "MaintenanceFailed",
}
MAINTENANCE = {maintenance_builder.EXPIRE: "snapshot expiry", maintenance_builder.COMPACT: "compaction"}
_TABLE_FIELDS = ("current_snapshot_id", "schema_id", "spec_id", "row_count", "data_files", "total_bytes")


def table_fields(state: TableState | None) -> dict[str, Any]:
    """The TableStatus fields read from the catalog; all None for a table that does not exist."""
    return {name: getattr(state, name) if state else None for name in _TABLE_FIELDS}


def decide(spec: DataLakeSpec, observed: DataLakeObserved, now: datetime) -> Decision[Action]:
    if observed.catalog is not None:
        failed = Observed(CATALOG_READY, False, observed.catalog.reason, observed.catalog.message)
        return Decision(Outcome((failed,), retry_after=observed.retry_seconds))
    catalog = Observed(CATALOG_READY, True, "Connected", f"namespace {spec.namespace} in {spec.catalog.type} catalog")
    tables = _tables(spec, observed)
    lake = LakeRef(observed.namespace, observed.owner, catalog_properties(spec.catalog, {}), observed.secret_keys)
    ingest = _ingests(spec, observed, lake, tables, now)
    maintenance = _maintenance(spec, observed, lake, tables.foreign, now)
    stale = _stale(observed, lake, ingest.wanted | maintenance.wanted)
    creating = {a.table.name for a in tables.actions if isinstance(a, CreateTable)}
    fields: dict[str, Any] = {"tables": _rows(spec, observed, creating, tables.foreign)}
    if not observed.table_errors:  # unknown while some table cannot be read
        fields["table_count"] = tables.count
    unknown_owner = any(f.unknown for f in tables.foreign.values())
    external = observed.table_errors or observed.executor is not None or unknown_owner
    return Decision(
        Outcome(
            (catalog, *tables.conditions, *ingest.conditions, *maintenance.conditions),
            fields,
            retry_after=observed.retry_seconds if external else None,
        ),
        (*([CreateNamespace(spec.namespace)] if not observed.namespace_exists else []),
         *tables.actions, *stale, *ingest.actions, *maintenance.actions),
    )


def deletion(spec: DataLakeSpec, owned_tables: Collection[str]) -> tuple[Deletion, ...]:
    """On deletion: Retain keeps everything; Delete purges the declared tables this DataLake owns
    (`owned_tables`, as the tables record), then the namespace if nothing else lives in it."""
    if spec.deletion_policy != DeletionPolicy.DELETE:
        return ()
    return (*(DropTable(t.name) for t in spec.tables if t.name in owned_tables), DropNamespaceIfEmpty(spec.namespace))


# --- tables --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tables:
    conditions: tuple[Observed, ...]
    actions: tuple[Action, ...]
    available: frozenset[str]  # tables that exist, or are created by these actions, and are this lake's
    count: int
    foreign: Mapping[str, Foreign]  # tables another DataLake owns: never touched


def _tables(spec: DataLakeSpec, observed: DataLakeObserved) -> _Tables:
    """Create missing tables (one the status had before comes back empty, with a Warning), evolve the
    others where the plan is safe; a refused table stays untouched and the others go on. Tables are
    created with this DataLake recorded as their owner; an existing one it may adopt is adopted in the
    commit of its plan (alone when the plan is refused); one another DataLake owns is left alone."""
    seen_before = {t.name for t in observed.status.tables if t.schema_id is not None}
    owner = me(observed)
    actions: list[Action] = []
    refused: list[str] = []
    available: set[str] = set()
    foreign: dict[str, Foreign] = {}
    for table in spec.tables:
        if table.name in observed.table_errors:
            continue
        current = observed.tables.get(table.name)
        if current is None:
            plan = plan_creation(owned(table, owner))
            if not plan.refusals:
                actions.append(CreateTable(table, plan.changes, recreated=table.name in seen_before))
                available.add(table.name)
        else:
            whose = claim(table.name, current, owner, observed.owners)
            if isinstance(whose, Foreign):
                foreign[table.name] = whose
                continue
            plan = plan_table(owned(table, owner), spec.schema_evolution, current.metadata)
            available.add(table.name)
            changes = _adoption_only(whose, owner) if plan.refusals else plan.changes
            if changes:
                actions.append(EvolveTable(table.name, changes, whose))
        refused += [f"table {table.name}: {r}" for r in plan.refusals]

    elsewhere = "; ".join(f.message for f in foreign.values())
    if refused:
        compatible = Observed(SCHEMA_COMPATIBLE, False, "SchemaChangeRefused",
                              "; ".join(refused) + " (refused tables are left unchanged)")
    elif foreign:
        compatible = Observed(SCHEMA_COMPATIBLE, False, OWNED_ELSEWHERE, elsewhere)
    else:
        compatible = Observed(SCHEMA_COMPATIBLE, True, "Compatible", "the declared tables are compatible with the catalog")
    declared = len(spec.tables)
    missing = declared - len(available) - len(foreign)
    if observed.table_errors:
        ready = Observed(TABLES_READY, False, "TableError", "; ".join(observed.table_errors.values()))
    elif foreign:
        ready = Observed(TABLES_READY, False, OWNED_ELSEWHERE, elsewhere)
    elif missing:
        ready = Observed(TABLES_READY, False, "TableNotCreated", f"{missing} of {declared} table(s) cannot be created")
    else:
        ready = Observed(TABLES_READY, True, "Reconciled", f"{declared} table(s) in namespace {spec.namespace}")
    return _Tables((compatible, ready), tuple(actions), frozenset(available), len(available), foreign)


def _adoption_only(adoption: Adoption | None, owner: TableOwner) -> TableChanges:
    """What a refused plan still commits: nothing, or the owner record of an adoption."""
    return TableChanges(properties=owner_properties(owner)) if adoption is not None else TableChanges()


def _rows(spec: DataLakeSpec, observed: DataLakeObserved, creating: set[str],
          foreign: Mapping[str, Foreign]) -> list[TableStatus]:
    """Per declared table: what the status had, overlaid with what the catalog shows and the newest
    ingest commit into it. A table that could not be read keeps its row, and so does one about to be
    created until act reports it: if creating it fails, the status still says Loom had it before.
    A table another DataLake owns is not this lake's to report: its row names the owner alone."""
    before = {t.name: t for t in observed.status.tables}
    last = _last_ingests(spec.ingest, observed.ingest_records)
    rows = []
    for table in spec.tables:
        if table.name in foreign:
            rows.append(TableStatus(name=table.name, owned_by=str(foreign[table.name].owner)))
            continue
        old = before.get(table.name)
        row: dict[str, Any] = old.model_dump() if old else {"name": table.name}
        row["owned_by"] = None
        seen = observed.tables.get(table.name)
        if seen is not None or (table.name in observed.tables and table.name not in creating):
            row.update(table_fields(seen.state if seen is not None else None))
        if table.name in last:
            row["last_ingest"] = last[table.name]
        rows.append(TableStatus.model_validate(row))
    return rows


def _last_ingests(ingests: Sequence[Ingest], records: Mapping[str, LastIngest]) -> dict[str, LastIngest]:
    """By table: the newest commit of the ingests into it."""
    last: dict[str, LastIngest] = {}
    for ingest in ingests:
        found = records.get(ingest.name)
        if found is not None and (ingest.table not in last or found.time > last[ingest.table].time):
            last[ingest.table] = found
    return last


# --- workloads -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _State:
    """One workload's verdict: True done or healthy, False failed, None in progress or waiting."""

    status: bool | None
    message: str


@dataclass(frozen=True)
class _Workloads:
    conditions: tuple[Observed, ...] = ()
    actions: tuple[SubmitWorkload, ...] = ()
    wanted: frozenset[str] = frozenset()  # workloads to keep, submitted now or not


def _ingests(spec: DataLakeSpec, observed: DataLakeObserved, lake: LakeRef, tables: _Tables,
             now: datetime) -> _Workloads:
    """One workload per `spec.ingest[]`, submitted once its table is there; `Ingested` over all. An
    ingest into a table another DataLake owns is not wanted: its workload, if any, is removed."""
    if not spec.ingest:
        return _Workloads()
    if observed.executor is not None:
        return _Workloads((Observed(INGESTED, None, observed.executor.reason, observed.executor.message),))
    states: dict[str, _State] = {}
    actions: list[SubmitWorkload] = []
    wanted: set[str] = set()
    for ingest in spec.ingest:
        work = ingest_builder.workload(spec, ingest, lake)
        what = f"ingest {ingest.name}"
        if ingest.table in tables.foreign:
            owner = tables.foreign[ingest.table].owner
            states[ingest.name] = _State(None, f"{what} waits: table {ingest.table} belongs to DataLake {owner}")
            continue
        wanted.add(work.name)
        if ingest.table not in tables.available:
            states[ingest.name] = _State(None, f"{what} waits for table {ingest.table}")
            continue
        state, submit = _judge(work, observed.workloads, what, now)
        states[ingest.name] = _with_last_commit(state, observed.ingest_records.get(ingest.name))
        if submit:
            actions.append(SubmitWorkload(work, INGESTED, ingest.table))
    summary = _summarize(INGESTED, states, ("IngestFailed", "Ingesting", "Ingested"))
    return _Workloads((summary,), tuple(actions), frozenset(wanted))


def _with_last_commit(state: _State, last: LastIngest | None) -> _State:
    """A good verdict says what the ingest's last commit did, including which path its files took
    (registered as they are, or rewritten), so the Event of the flip says it too."""
    if state.status is not True or last is None:
        return state
    done = f"{ingest_record.paths(last)} ({last.rows} row(s), snapshot {last.snapshot_id})"
    return _State(True, f"{state.message}; its last commit {done}")


def _maintenance(spec: DataLakeSpec, observed: DataLakeObserved, lake: LakeRef, foreign: Mapping[str, Foreign],
                 now: datetime) -> _Workloads:
    """Scheduled snapshot expiry and compaction of the declared tables this lake may touch (not those
    another DataLake owns); `Maintained` over both."""
    maintained = [t for t in spec.tables if t.name not in foreign]
    if not maintained:
        return _Workloads()
    desired = maintenance_builder.workloads(spec.model_copy(update={"tables": maintained}), lake)
    if not desired:
        return _Workloads()
    if observed.executor is not None:
        return _Workloads((Observed(MAINTAINED, None, observed.executor.reason, observed.executor.message),))
    states: dict[str, _State] = {}
    actions: list[SubmitWorkload] = []
    for action, work in desired.items():
        states[action], submit = _judge(work, observed.workloads, MAINTENANCE[action], now)
        if submit:
            actions.append(SubmitWorkload(work, MAINTAINED))
    summary = _summarize(MAINTAINED, states, ("MaintenanceFailed", "Maintaining", "Scheduled"))
    return _Workloads((summary,), tuple(actions), frozenset(w.name for w in desired.values()))


def _judge(work: Workload, workloads: Mapping[str, Sequence[WorkloadStatus]], what: str,
           now: datetime) -> tuple[_State, bool]:
    """A workload's verdict from its runs, and whether to submit it."""
    if work.schedule is None:
        return _once(work, workloads, what)
    try:
        validate(work.schedule)
    except ScheduleError as error:
        return _State(False, f"{what} cannot be scheduled: {error}"), False
    return _scheduled(work, workloads.get(work.name, ()), what, now), True


def _once(work: Workload, workloads: Mapping[str, Sequence[WorkloadStatus]], what: str) -> tuple[_State, bool]:
    """A once-workload is submitted when it does not exist and judged by its one run; a run that
    failed has used up its retries, so it stays failed until the spec changes (a new workload)."""
    if work.name not in workloads:
        return _State(None, f"{what} started"), True
    runs = workloads[work.name]
    if not runs:
        return _State(None, f"{what} is pending"), False
    run = runs[0]
    if not run.finished:  # a run waiting to retry says which attempt failed how
        detail = f": {run.message}" if run.message else ""
        return _State(None, f"{what} is {run.phase.value.lower()}{detail}"), False
    if run.phase == Phase.SUCCEEDED:
        return _State(True, f"{what} succeeded"), False
    tried = "an input error, not retried" if run.exit_code == EXIT_INPUT_ERROR else f"after {work.retries + 1} attempts"
    return _State(False, f"{_failure(what, run)} ({tried})"), False


def _scheduled(work: Workload, runs: Sequence[WorkloadStatus], what: str, now: datetime) -> _State:
    """A schedule is judged by its newest finished run; a run going on does not change the verdict."""
    assert work.schedule is not None
    last = next((r for r in runs if r.finished), None)
    if last is None:
        if any(not r.finished for r in runs):
            return _State(None, f"{what}: first scheduled run in progress")
        tick = next_tick(work.schedule, now)
        return _State(True, f"{what} scheduled ({work.schedule}), next run at {tick:%Y-%m-%d %H:%M} UTC")
    if last.phase == Phase.FAILED:
        return _State(False, _failure(what, last))
    return _State(True, f"{what}: last scheduled run succeeded")


def _failure(what: str, run: WorkloadStatus) -> str:
    return run.message or f"{what} failed (run {run.name}, exit code {run.exit_code})"


def _summarize(type_: str, states: Mapping[str, _State], reasons: tuple[str, str, str]) -> Observed:
    """One condition over several workloads: any failure wins, then anything in progress; `reasons`
    are the (failed, in progress, fine) reasons."""
    failed, going, fine = reasons
    failures = [s.message for s in states.values() if s.status is False]
    if failures:
        return Observed(type_, False, failed, "; ".join(failures))
    waiting = [s.message for s in states.values() if s.status is None]
    if waiting:
        return Observed(type_, None, going, "; ".join(waiting))
    return Observed(type_, True, fine, "; ".join(s.message for s in states.values()))


def _stale(observed: DataLakeObserved, lake: LakeRef, wanted: frozenset[str]) -> tuple[DeleteWorkload, ...]:
    """Workloads labelled as this lake's that its spec no longer builds (a changed ingest or schedule
    has a new name). They are deleted before their replacements are submitted, and a delete waits
    for the runs to end, so an ingest and its replacement never run at once. A failure to delete one is reported under the condition of its kind, told by the
    name the ingest builder gives."""
    ingest_prefix = f"{lake.owner.name}-ingest-"
    return tuple(
        DeleteWorkload(lake.namespace, name, INGESTED if name.startswith(ingest_prefix) else MAINTAINED)
        for name in sorted(set(observed.workloads) - wanted)
    )
