"""FeatureSet reconcile: a Feast feature view over a DataLake table, kept in the registry, and its
lake snapshots materialized to the online store behind a data-quality gate.

Level-based: the registry is applied when it lacks this definition's version; what was materialized
(or rejected by the quality gate) is read back from the records the materialization keeps next to
its pin in the registry database, so status is derived from the systems, never from memory. A new
snapshot of the lake table, a changed definition or a due schedule tick starts one workload run,
named for exactly that, so submitting it again on every reconcile never starts a second one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from loom.api.datalake import DataLakeSpec
from loom.api.featureset import FeatureSetSpec
from loom.api.kinds import DATALAKE, FEATURESET
from loom.api.meta import API_VERSION, parse_duration
from loom.domain.errors import SecretNotFoundError
from loom.domain.feature_views import (
    EntityDefinition,
    FeatureDefinition,
    FeatureViewDefinition,
    PinnedSource,
    PinRef,
    feast_name,
    feast_project,
    pin_env_name,
)
from loom.domain.outcome import Observed, Outcome
from loom.domain.schedules import latest_tick
from loom.domain.workloads import MAX_NAME, OwnerRef, Phase, SecretEnv, Workload, WorkloadStatus, digest, dns_name
from loom.drivers import feast_pins, feast_store
from loom.drivers.feast_store import DefinitionConflict, OnlineKind, StoreSettings
from loom.drivers.iceberg_catalog import catalog_properties
from loom.executors.base import Executor
from loom.features.materialize import MATERIALIZED as MATERIALIZED_RECORD
from loom.features.materialize import ONLINE_CONNECTION_ENV, MaterializeRequest
from loom.features.materialize import REJECTED as REJECTED_RECORD
from loom.services.context import ReconcileContext
from loom.services.references import check_reference

SOURCE_READY = "SourceReady"
REGISTRY_READY = "RegistryReady"
DATA_QUALITY = "DataQuality"
MATERIALIZED = "Materialized"
FEATURESET_LABEL = "loom.dev/featureset"
CONNECTION_KEY = "connection"
Record = Mapping[str, Any]  # what the materialization keeps next to its pin
Records = Mapping[str, Record]


def store_settings(spec: FeatureSetSpec, ctx: ReconcileContext, read_secret: bool) -> StoreSettings:
    """Registry and online store of this FeatureSet. A connection held in a Secret is read only when
    the operator itself must connect (`read_secret`); workloads receive it as an environment variable."""
    config = ctx.config
    kind = OnlineKind(spec.online.store)
    ref = spec.online.connection_secret_ref
    if ref is None:
        connection = config.feast_redis if kind is OnlineKind.REDIS else config.feast_sqlite_path
    elif read_secret:
        values = ctx.kube.get_secret(ctx.namespace, ref.name)
        key = ref.key or CONNECTION_KEY
        if key not in values:
            raise SecretNotFoundError(f"Secret {ctx.namespace}/{ref.name} has no key {key!r}")
        connection = values[key]
    else:
        connection = ""
    return StoreSettings(feast_project(ctx.namespace), spec.registry.uri or config.feast_registry_uri, kind, connection)


def feature_view_definition(
    spec: FeatureSetSpec, lake: DataLakeSpec, namespace: str, name: str, registry_uri: str
) -> FeatureViewDefinition:
    """What this FeatureSet asks of Feast (pure; the version hash follows from it)."""
    project, view = feast_project(namespace), feast_name(name)
    source = spec.source
    return FeatureViewDefinition(
        project=project,
        name=view,
        owner=f"{namespace}/{name}",
        entities=tuple(
            EntityDefinition(e.name, e.join_keys[0], e.value_type, e.description or "") for e in spec.entities
        ),
        features=tuple(FeatureDefinition(f.name, f.dtype, f.description or "") for f in spec.features),
        ttl_seconds=parse_duration(spec.ttl).total_seconds(),
        online=spec.online.enabled,
        source=PinnedSource(
            pin=PinRef(registry_uri, project, view, tuple(sorted(lake.catalog.properties.items()))),
            lake_table=f"{lake.namespace}.{source.data_lake_ref.table}",
            warehouse=lake.catalog.warehouse or "",
            timestamp_field=source.timestamp_field,
            created_timestamp_field=source.created_timestamp_field,
        ),
    )


def reconcile(spec: FeatureSetSpec, ctx: ReconcileContext) -> Outcome:
    retry = ctx.config.dependency_retry_seconds
    ref = spec.source.data_lake_ref
    source, lake_obj = check_reference(ctx, DATALAKE, ref.name, SOURCE_READY)
    if lake_obj is not None and ref.table not in {t["name"] for t in lake_obj["spec"]["tables"]}:
        source = Observed(SOURCE_READY, False, "TableNotFound", f'DataLake "{ref.name}" has no table "{ref.table}"')
    if not source.status or lake_obj is None:
        return Outcome((source,), retry_after=retry)
    tables = {t["name"]: t for t in (lake_obj.get("status") or {}).get("tables") or []}
    snapshot = spec.source.snapshot_id or tables.get(ref.table, {}).get("currentSnapshotId")
    table = f'table "{ref.table}" of DataLake "{ref.name}"'
    if snapshot is None:
        return Outcome((Observed(SOURCE_READY, False, "NoSnapshot", f"{table} holds no data yet"),), retry_after=retry)
    source = Observed(SOURCE_READY, True, "SnapshotAvailable", f"{table} is at snapshot {snapshot}")

    lake = DataLakeSpec.model_validate(lake_obj["spec"])
    settings = store_settings(spec, ctx, read_secret=False)
    definition = feature_view_definition(spec, lake, ctx.namespace, ctx.name, settings.registry_uri)
    try:
        feast_store.apply(settings, definition)
        records = feast_pins.read_records(definition.source.pin)
    except DefinitionConflict as conflict:
        return Outcome((source, Observed(REGISTRY_READY, False, "NameConflict", str(conflict))))
    except Exception as error:  # registry database unreachable, bad URI, missing driver
        registry = Observed(REGISTRY_READY, False, "RegistryUnavailable", str(error))
        return Outcome((source, registry), retry_after=retry)
    view = f"feature view {definition.project}/{definition.name} version {definition.version}"
    ready = (source, Observed(REGISTRY_READY, True, "Applied", view))
    run = _Run(spec, ctx, definition, settings, lake, snapshot)
    try:
        return run.reconcile(ctx.executor, ready, records)
    except SecretNotFoundError as error:
        return Outcome((*ready, Observed(MATERIALIZED, False, "SecretNotFound", str(error))), retry_after=retry)


@dataclass(frozen=True)
class _Run:
    """The materialization this reconcile wants: the definition's version at the lake snapshot."""

    spec: FeatureSetSpec
    ctx: ReconcileContext
    definition: FeatureViewDefinition
    settings: StoreSettings
    lake: DataLakeSpec
    snapshot: int

    def reconcile(self, executor: Executor, ready: tuple[Observed, ...], records: Records) -> Outcome:
        done, rejected = records.get(MATERIALIZED_RECORD), records.get(REJECTED_RECORD)
        fields = _fields(self.definition, done)
        tick = self._due_tick(done)
        if tick is None and done is not None and self._is_target(done):
            return Outcome((*ready, *_served(done)), fields)
        if tick is None and rejected is not None and self._is_target(rejected):
            return Outcome((*ready, *_refused(rejected, done)), fields)
        if self.spec.materialization.suspend:
            message = f"materialization is suspended; the lake is at snapshot {self.snapshot}"
            if done is not None:
                message += f", the online store serves snapshot {done['snapshot']}"
            quality = _passed(done) if done else Observed(DATA_QUALITY, None, "NotChecked", message)
            return Outcome((*ready, Observed(MATERIALIZED, done is not None, "Suspended", message), quality), fields)

        incremental = done is not None and done["version"] == self.definition.version and tick is None
        previous = done["snapshot"] if incremental and done else None
        key = digest(self.definition.version, str(self.snapshot), str(previous), tick.isoformat() if tick else "")
        name = dns_name(f"{self.ctx.name}-materialize", key, MAX_NAME)
        executor.submit(self._workload(name, previous))
        runs = executor.runs(self.ctx.namespace, name)
        if runs and runs[0].finished:
            return self._finished(executor, runs[0], ready, done)
        mode = "scheduled full refresh" if tick else "incremental" if previous else "full"
        what = f"materializing snapshot {self.snapshot} ({mode}, run {name})"
        if done is not None:
            running = Observed(MATERIALIZED, True, "Materializing", f"serving snapshot {done['snapshot']}; {what}")
            quality = _passed(done)
        else:
            running = Observed(MATERIALIZED, None, "Materializing", what)
            pending = f"checked before snapshot {self.snapshot} is materialized"
            quality = Observed(DATA_QUALITY, None, "NotChecked", pending)
        return Outcome((*ready, running, quality), fields, retry_after=self.ctx.config.dependency_retry_seconds)

    def _finished(self, executor: Executor, run: WorkloadStatus, ready: tuple[Observed, ...],
                  done: Record | None) -> Outcome:
        records = feast_pins.read_records(self.definition.source.pin)
        now_done, now_rejected = records.get(MATERIALIZED_RECORD), records.get(REJECTED_RECORD)
        if run.phase is Phase.SUCCEEDED and now_done is not None:
            return Outcome((*ready, *_served(now_done)), _fields(self.definition, now_done))
        fields = _fields(self.definition, done)
        if now_rejected is not None and self._is_target(now_rejected):
            return Outcome((*ready, *_refused(now_rejected, done)), fields)
        # The executor already retried; removing the run lets the next reconcile (a resync, a new
        # snapshot) start it afresh, since a crash (registry or online store down) may heal.
        executor.delete(self.ctx.namespace, run.name)
        failed = Observed(MATERIALIZED, False, "MaterializationFailed",
                          f"run {run.name} failed (exit code {run.exit_code}), retried at the next resync: "
                          f"{run.message}")
        quality = _passed(done) if done else Observed(DATA_QUALITY, None, "NotChecked", failed.message)
        return Outcome((*ready, failed, quality), fields)

    def _is_target(self, record: Record) -> bool:
        return (record["version"], record["snapshot"]) == (self.definition.version, self.snapshot)

    def _due_tick(self, done: Record | None) -> datetime | None:
        """The schedule's latest tick, when no materialization has run since it."""
        schedule = self.spec.materialization.schedule
        if schedule is None or done is None:
            return None
        tick = latest_tick(schedule, datetime.now(timezone.utc))
        return tick if tick > datetime.fromisoformat(done["time"]) else None

    def _workload(self, name: str, previous: int | None) -> Workload:
        """The run; Secret values reach it only as environment variables from their Secrets."""
        lake_ref, lake_keys = self.lake.catalog.secret_ref, []
        secret_env: list[SecretEnv] = []
        if lake_ref is not None:
            keys = [lake_ref.key] if lake_ref.key else self.ctx.kube.get_secret(self.ctx.namespace, lake_ref.name)
            lake_keys = sorted(keys)
            secret_env = [SecretEnv(pin_env_name(key), lake_ref.name, key) for key in lake_keys]
        online_ref = self.spec.online.connection_secret_ref
        if online_ref is not None:
            secret_env.append(SecretEnv(ONLINE_CONNECTION_ENV, online_ref.name, online_ref.key or CONNECTION_KEY))
        request = MaterializeRequest(
            definition=self.definition.to_json(),
            store=self.settings.to_json(),
            lake_catalog_name=self.lake.catalog.name,
            lake_catalog=catalog_properties(self.lake.catalog, {}),
            lake_secret_keys=lake_keys,
            lake_table=self.definition.source.lake_table,
            snapshot_id=self.snapshot,
            previous_snapshot_id=previous,
            quality=self.spec.quality,
        )
        return Workload(
            name=name,
            namespace=self.ctx.namespace,
            component="materialize",
            args=("--request", request.model_dump_json()),
            secret_env=tuple(secret_env),
            owner=OwnerRef(API_VERSION, FEATURESET.kind, self.ctx.name, self.ctx.uid),
            labels=workload_labels(self.ctx.name),
            retries=1,
        )


def _fields(definition: FeatureViewDefinition, done: Record | None) -> dict[str, Any]:
    fields: dict[str, Any] = {"featureViewVersion": definition.version}
    if done is not None:
        fields.update(
            sourceSnapshotId=done["snapshot"],
            lastMaterialized={
                "time": done["time"], "rows": done["rows"], "durationSeconds": done["durationSeconds"],
                "snapshotId": done["snapshot"], "featureViewVersion": done["version"],
            },
            onlineRowCount=done["onlineRows"],
        )
    return fields


def _passed(done: Record) -> Observed:
    return Observed(DATA_QUALITY, True, "Passed", f"snapshot {done['snapshot']}: {done['quality']}")


def _served(done: Record) -> tuple[Observed, Observed]:
    online = f"{done['onlineRows']} online" if done["onlineRows"] is not None else "online store disabled"
    message = (f"snapshot {done['snapshot']} materialized: {done['rows']} entity rows written in "
               f"{done['durationSeconds']}s, {online}")
    return Observed(MATERIALIZED, True, "Materialized", message), _passed(done)


def _refused(rejected: Record, done: Record | None) -> tuple[Observed, Observed]:
    """DataQuality first: Ready then carries the numbers that failed."""
    serving = f"the online store still serves snapshot {done['snapshot']}" if done else "nothing was written online"
    return (
        Observed(DATA_QUALITY, False, "QualityCheckFailed", f"snapshot {rejected['snapshot']}: {rejected['failures']}"),
        Observed(MATERIALIZED, False, "QualityCheckFailed",
                 f"snapshot {rejected['snapshot']} was not materialized; {serving}"),
    )


def workload_labels(name: str) -> dict[str, str]:
    value = name if len(name) <= 63 else dns_name(name, digest(name), 63)
    return {"app.kubernetes.io/managed-by": "loom", "app.kubernetes.io/component": "materialize",
            FEATURESET_LABEL: value}


def delete(spec: FeatureSetSpec, ctx: ReconcileContext) -> bool:
    """Remove the view, its online data, its pin and records, and its workloads; the lake is never
    touched. False when the registry held no view of this FeatureSet (never applied, or already
    removed); a view of the same name that belongs to another FeatureSet is left alone."""
    settings = store_settings(spec, ctx, read_secret=True)
    for name in ctx.executor.names(ctx.namespace, {FEATURESET_LABEL: workload_labels(ctx.name)[FEATURESET_LABEL]}):
        ctx.executor.delete(ctx.namespace, name)
    view = feast_name(ctx.name)
    try:
        removed = feast_store.remove(settings, view, f"{ctx.namespace}/{ctx.name}")
    except DefinitionConflict:
        return False
    pin = PinRef(settings.registry_uri, settings.project, view)
    feast_pins.drop(pin)
    feast_pins.remove_records(pin, [MATERIALIZED_RECORD, REJECTED_RECORD])
    return removed


def source_moved(spec: Mapping[str, Any], status: Mapping[str, Any], lake: Mapping[str, Any] | None) -> str | None:
    """A marker of what changed outside this FeatureSet that needs a reconcile (a new snapshot of its
    lake table, a due schedule tick), or None. Cheap: it only compares what the objects say."""
    if lake is None or (spec.get("materialization") or {}).get("suspend"):
        return None
    ref = spec["source"]["dataLakeRef"]
    tables = {t["name"]: t for t in (lake.get("status") or {}).get("tables") or []}
    snapshot = spec["source"].get("snapshotId") or tables.get(ref["table"], {}).get("currentSnapshotId")
    if snapshot is not None and snapshot != status.get("sourceSnapshotId"):
        return f"snapshot={snapshot}"
    schedule = (spec.get("materialization") or {}).get("schedule")
    last = (status.get("lastMaterialized") or {}).get("time")
    if schedule and last:
        tick = latest_tick(schedule, datetime.now(timezone.utc))
        if tick > datetime.fromisoformat(last.replace("Z", "+00:00")):
            return f"tick={tick.isoformat()}"
    return None
