"""The FeatureSet decision: a pure function of (spec, observation, now) to the conditions to report
and the actions to take. No I/O and no clock: everything read is in the observation.

In order, each step stopping the ones after it:

1. the source: the FeatureSet's own table of its DataLake must exist and hold the snapshot to read
   (other tables of the lake, and the lake's other conditions, do not concern it);
2. the schema: every join key, feature and timestamp field must fit that snapshot's columns, else
   nothing is written to Feast (RegistryReady=False, SchemaMismatch);
3. the registry: applied when it lacks this definition's version, refused when the name is taken;
4. the materialization of that snapshot, read back from the records the runs keep next to the pin:
   one run at a time, named for exactly its input; a failed run is recorded in status with its input,
   retried with a doubling backoff when the failure may heal and not at all (until the input changes)
   when it cannot; a due schedule tick is asked for as `requeue_at`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loom.api.datalake import DataLakeSpec
from loom.api.featureset import FeatureSetSpec, MaterializationFailure, MaterializationRun
from loom.builders.materialize import LakeAccess, Target, run_name, workload
from loom.domain.feature_views import FeatureViewDefinition
from loom.domain.outcome import Decision, Outcome
from loom.domain.outcome import Observed as Condition
from loom.domain.schedules import latest_tick, next_tick
from loom.domain.workloads import Phase, WorkloadStatus
from loom.drivers.iceberg_catalog import catalog_properties
from loom.drivers.iceberg_schema import LakeTable
from loom.features.materialize import MATERIALIZED as DONE_RECORD
from loom.features.materialize import REJECTED as REJECTED_RECORD
from loom.features.schema_check import check
from loom.services.featureset import failures
from loom.services.featureset.actions import (
    DATA_QUALITY,
    MATERIALIZED,
    REGISTRY_READY,
    SOURCE_READY,
    Action,
    ApplyDefinition,
    DeleteRun,
    SubmitRun,
)
from loom.services.featureset.definition import feature_view_definition
from loom.services.featureset.observe import LakeObject, Observation, Unavailable

Record = Mapping[str, Any]  # what a run keeps next to the pin (features.materialize.MaterializeResult.record)


@dataclass(frozen=True)
class Source:
    """The source as it will be read: the lake's spec, its table, and the snapshot."""

    lake: DataLakeSpec
    table: LakeTable
    snapshot: int
    condition: Condition


def decide(spec: FeatureSetSpec, observed: Observation, now: datetime) -> Decision[Action]:
    source = _source(spec, observed)
    if isinstance(source, Decision):
        return source
    mismatches = check(spec, source.table.columns)
    if mismatches:
        message = (f"{'; '.join(str(m) for m in mismatches)} (table {source.table.identifier}, schema "
                   f"{source.table.schema_id}); nothing was written to Feast")
        return _stop(source.condition, Condition(REGISTRY_READY, False, "SchemaMismatch", message))

    definition = feature_view_definition(spec, source.lake, observed.namespace, observed.name,
                                         observed.settings.registry_uri)
    registry = observed.registry
    if isinstance(registry, Unavailable):
        return _stop(source.condition, _registry_unavailable(registry), retry=observed.retry_seconds)
    if registry is not None and registry.owner != definition.owner:
        owner = registry.owner or "someone else"
        message = f'feature view "{definition.name}" in project "{definition.project}" belongs to {owner}'
        return _stop(source.condition, Condition(REGISTRY_READY, False, "NameConflict", message))
    if isinstance(observed.records, Unavailable):
        return _stop(source.condition, _registry_unavailable(observed.records), retry=observed.retry_seconds)
    applied = Condition(REGISTRY_READY, True, "Applied",
                        f"feature view {definition.project}/{definition.name} version {definition.version}")
    apply: tuple[Action, ...] = ()
    if registry is None or registry.version != definition.version:
        apply = (ApplyDefinition(observed.settings, definition),)
    if isinstance(observed.runs, Unavailable):
        executor = Condition(MATERIALIZED, None, "ExecutorUnavailable", observed.runs.message)
        return Decision(Outcome((source.condition, applied, executor), retry_after=observed.retry_seconds), apply)

    step = _Materialize(spec, observed, source, definition, observed.records, observed.runs, now).decide()
    outcome = step.outcome
    return Decision(
        Outcome((source.condition, applied, *outcome.conditions), outcome.fields, requeue_at=outcome.requeue_at),
        (*apply, *step.actions),
    )


def _stop(*conditions: Condition, retry: float | None = None) -> Decision[Action]:
    return Decision(Outcome(conditions, retry_after=retry))


def _registry_unavailable(unavailable: Unavailable) -> Condition:
    return Condition(REGISTRY_READY, False, "RegistryUnavailable", unavailable.message)


def _source(spec: FeatureSetSpec, observed: Observation) -> Source | Decision[Action]:
    ref = spec.source.data_lake_ref
    lake, table = observed.lake, observed.table
    described = f'table "{ref.table}" of DataLake "{ref.name}"'

    def not_ready(reason: str, message: str, retry: bool = False) -> Decision[Action]:
        return _stop(Condition(SOURCE_READY, False, reason, message), retry=observed.retry_seconds if retry else None)

    if lake is None:
        return not_ready("DataLakeNotFound", f'DataLake "{ref.name}" does not exist')
    if isinstance(lake, Unavailable):
        return not_ready("DataLakeUnavailable", f'DataLake "{ref.name}" could not be read: {lake.message}', True)
    if lake.spec is None:
        return not_ready("DataLakeInvalid", f'DataLake "{ref.name}" has an invalid spec')
    if not lake.declared:
        return not_ready("TableNotFound", f'DataLake "{ref.name}" has no table "{ref.table}"')
    if lake.catalog_ready is not True:
        detail = f": {lake.catalog_message}" if lake.catalog_message else ""
        return not_ready("CatalogNotReady", f'the catalog of DataLake "{ref.name}" is not ready{detail}')
    if not _created(lake):
        return not_ready("TableNotReady", f"{described} is not created yet")
    if isinstance(table, Unavailable):
        return not_ready("LakeUnavailable", f"{described} could not be read: {table.message}", True)
    if table is None:
        return not_ready("TableNotReady", f"{described} is not in the catalog")
    pinned = spec.source.snapshot_id
    if pinned is not None and table.snapshot_id != pinned:
        return not_ready("SnapshotNotFound", f"{described} has no snapshot {pinned}")
    if table.snapshot_id is None:
        return not_ready("NoSnapshot", f"{described} holds no data yet")
    at = "is pinned to" if pinned is not None else "is at"
    ready = Condition(SOURCE_READY, True, "SnapshotAvailable", f"{described} {at} snapshot {table.snapshot_id}")
    return Source(lake.spec, table, table.snapshot_id, ready)


def _created(lake: LakeObject) -> bool:
    """The DataLake reports the table as existing (a refused edit of another table does not matter)."""
    return lake.entry is not None and lake.entry.schema_id is not None


@dataclass(frozen=True)
class _Materialize:
    spec: FeatureSetSpec
    observed: Observation
    source: Source
    definition: FeatureViewDefinition
    records: Mapping[str, Record]
    runs: Mapping[str, tuple[WorkloadStatus, ...]]
    now: datetime

    def decide(self) -> Decision[Action]:
        done, rejected = self.records.get(DONE_RECORD), self.records.get(REJECTED_RECORD)
        failure = self.observed.status.last_failure
        if not failures.same_input(failure, self.observed.generation, self.source.snapshot,
                                   self.source.table.schema_id, self.definition.version):
            failure = None
        tick = self._due_tick(done, rejected)
        previous = done["snapshot"] if done and done["version"] == self.definition.version and tick is None \
            and done["snapshot"] != self.source.snapshot else None
        target = Target(self.definition.version, self.source.snapshot, previous, tick,
                        failure.attempts if failure else 0)
        name = run_name(self.observed.name, target)
        fields = _fields(self.definition, done)
        schedule = self.spec.materialization.schedule
        ticks = next_tick(schedule, self.now) if schedule and not self.spec.materialization.suspend else None

        def outcome(*conditions: Condition, requeue: datetime | None = None, **more: Any) -> Outcome:
            due = min((t for t in (ticks, requeue) if t is not None), default=None)
            return Outcome(conditions, {**fields, **more}, requeue_at=due)

        active = sorted(n for n, runs in self.runs.items() if runs and not runs[0].finished)
        target_run = self.runs.get(name, ())
        mode = "scheduled full refresh" if tick else "incremental" if previous is not None else "full"
        if name in active:
            what = f"materializing snapshot {self.source.snapshot} ({mode}, run {name})"
            return Decision(outcome(*_materializing(done, what)))
        if active:
            what = f"waiting for run {active[0]} to end before materializing snapshot {self.source.snapshot}"
            return Decision(outcome(*_materializing(done, what)))
        if tick is None and rejected is not None and _is_target(rejected, target) and not _newer(done, rejected):
            return Decision(outcome(*_refused(rejected, done)))
        if tick is None and done is not None and _is_target(done, target):
            return Decision(outcome(*_served(done)))
        if target_run and target_run[0].phase is Phase.FAILED:
            failed = self._failure(name, target_run[0], failure)
            again = failures.retry_at(failed, self.observed.retry_seconds) if failed.transient else None
            return Decision(outcome(*_failed(failed, target_run[0].message, done, again), requeue=again,
                                    last_failure=failed))
        if self.spec.materialization.suspend:
            message = f"materialization is suspended; the lake is at snapshot {self.source.snapshot}"
            if done is not None:
                message += f", the online store serves snapshot {done['snapshot']}"
            quality = _passed(done) if done else Condition(DATA_QUALITY, None, "NotChecked", message)
            return Decision(outcome(Condition(MATERIALIZED, done is not None, "Suspended", message), quality))
        if failure is not None:
            again = failures.retry_at(failure, self.observed.retry_seconds) if failure.transient else None
            if again is None or again > self.now:
                last = self.runs.get(failure.run, ())
                message = last[0].message if last else ""
                return Decision(outcome(*_failed(failure, message, done, again), requeue=again))
        what = f"materializing snapshot {self.source.snapshot} ({mode}, run {name})"
        submit = SubmitRun(workload(self.spec, self.observed.owner, self.observed.namespace, self.definition,
                                    self.observed.settings.to_json(), self._lake_access(), target))
        # Runs of earlier inputs have their outcome in the records; the failed one stays for its log.
        keep = {name, failure.run} if failure else {name}
        cleanup = (DeleteRun(self.observed.namespace, n) for n, runs in self.runs.items()
                   if n not in keep and (not runs or runs[0].finished))
        return Decision(outcome(*_materializing(done, what)), (submit, *cleanup))

    def _due_tick(self, done: Record | None, rejected: Record | None) -> datetime | None:
        """The schedule's latest tick, when nothing was materialized (or refused) since it."""
        schedule = self.spec.materialization.schedule
        if schedule is None or done is None:
            return None
        last = datetime.fromisoformat(done["time"])
        if rejected is not None and (rejected["version"], rejected["snapshot"]) == (self.definition.version,
                                                                                    self.source.snapshot):
            last = max(last, datetime.fromisoformat(rejected["time"]))
        tick = latest_tick(schedule, self.now)
        return tick if tick > last else None

    def _failure(self, name: str, run: WorkloadStatus, before: MaterializationFailure | None) -> MaterializationFailure:
        return MaterializationFailure(
            run=name,
            time=run.finished_at or self.now,
            generation=self.observed.generation,
            snapshot_id=self.source.snapshot,
            schema_id=self.source.table.schema_id,
            feature_view_version=self.definition.version,
            transient=failures.is_transient(run),
            attempts=(before.attempts if before else 0) + 1,
        )

    def _lake_access(self) -> LakeAccess:
        catalog = self.source.lake.catalog
        secret = catalog.secret_ref.name if catalog.secret_ref is not None else None
        return LakeAccess(catalog.name, catalog_properties(catalog, {}), secret, self.observed.lake_secret_keys)


def _newer(done: Record | None, rejected: Record) -> bool:
    """Whether a materialization came after the rejection (of another snapshot or version)."""
    return done is not None and datetime.fromisoformat(done["time"]) > datetime.fromisoformat(rejected["time"])


def _is_target(record: Record, target: Target) -> bool:
    return (record["version"], record["snapshot"]) == (target.version, target.snapshot)


def _fields(definition: FeatureViewDefinition, done: Record | None) -> dict[str, Any]:
    fields: dict[str, Any] = {"feature_view_version": definition.version}
    if done is not None:
        fields.update(
            source_snapshot_id=done["snapshot"],
            last_materialized=MaterializationRun(
                time=done["time"], rows=done["rows"], duration_seconds=done["durationSeconds"],
                snapshot_id=done["snapshot"], feature_view_version=done["version"],
            ),
            online_row_count=done["onlineRows"],
        )
    return fields


def _passed(done: Record) -> Condition:
    return Condition(DATA_QUALITY, True, "Passed", f"snapshot {done['snapshot']}: {done['quality']}")


def _served(done: Record) -> tuple[Condition, Condition]:
    online = f"{done['onlineRows']} online" if done["onlineRows"] is not None else "online store disabled"
    message = (f"snapshot {done['snapshot']} materialized: {done['rows']} entity rows written in "
               f"{done['durationSeconds']}s, {online}")
    return Condition(MATERIALIZED, True, "Materialized", message), _passed(done)


def _refused(rejected: Record, done: Record | None) -> tuple[Condition, Condition]:
    """DataQuality first: Ready then carries the numbers that failed."""
    serving = f"the online store still serves snapshot {done['snapshot']}" if done else "nothing was written online"
    return (
        Condition(DATA_QUALITY, False, "QualityCheckFailed", f"snapshot {rejected['snapshot']}: {rejected['failures']}"),
        Condition(MATERIALIZED, False, "QualityCheckFailed",
                  f"snapshot {rejected['snapshot']} was not materialized; {serving}"),
    )


def _materializing(done: Record | None, what: str) -> tuple[Condition, Condition]:
    if done is not None:
        return Condition(MATERIALIZED, True, "Materializing", f"serving snapshot {done['snapshot']}; {what}"), _passed(done)
    pending = Condition(DATA_QUALITY, None, "NotChecked", "checked before the snapshot is materialized")
    return Condition(MATERIALIZED, None, "Materializing", what), pending


def _failed(failure: MaterializationFailure, message: str, done: Record | None,
            again: datetime | None) -> tuple[Condition, Condition]:
    detail = f": {message}" if message else ""
    text = f"run {failure.run} failed materializing snapshot {failure.snapshot_id}{detail}; "
    if again is not None:
        text += f"retrying at {again.isoformat()} (failed {failure.attempts} time(s))"
    else:
        text += "not retried until the spec or the table changes"
    if done is not None:
        text += f"; the online store still serves snapshot {done['snapshot']}"
    quality = _passed(done) if done else Condition(DATA_QUALITY, None, "NotChecked", text)
    return Condition(MATERIALIZED, False, "MaterializationFailed", text), quality
