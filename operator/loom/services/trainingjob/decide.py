"""A TrainingJob's decision, pure: (spec, observed, settings, now) -> status, conditions and actions.

- One run per FeatureSet snapshot (`run_name`): the first snapshot once the data is ready, and with
  `retrain.onNewFeatures` every newer one, never while another run is still going.
- The newest unfinished run is submitted when the executor lacks it or when `suspend` differs from
  what it shows, so suspension reaches it both ways; its progress is read from MLflow while it runs
  (nothing announces an epoch, so it looks again after `progress_seconds`).
- `loom.dev/retrain` asks for a new run of the current snapshot (named after the request and the run
  before it); it is answered at once, by that run or by a Warning saying why not (a run is going, the
  data is not ready), and its annotation removed.
- A run that succeeded is judged by the gate once its version is in the registry: passed moves the
  alias, failed leaves it and says why. Finished runs beyond `retrain.historyLimit` are deleted; their
  records go with them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from loom.api.datalake import DataLakeSpec
from loom.api.meta import parse_duration
from loom.api.trainingjob import (
    Gate,
    Lineage,
    Progress,
    Replicas,
    RunRecord,
    TableSnapshot,
    TrainingJobSpec,
    TrainingPhase,
)
from loom.builders.train import FeatureInput, TableInput, Tracking, run_name, train_workload
from loom.builders.training import node_shape
from loom.domain.outcome import READY, Decision, Event, Observed, Outcome
from loom.domain.training import RETRAIN_ANNOTATION, Training
from loom.domain.workloads import OwnerRef, Phase, WorkloadStatus, digest, dns_name
from loom.drivers.iceberg_catalog import catalog_properties
from loom.services.references import reference_condition
from loom.services.trainingjob.actions import (
    DATA_READY,
    GATE_PASSED,
    TRAINED,
    Action,
    DeleteRun,
    MoveAlias,
    RemoveAnnotation,
    SubmitRun,
)
from loom.services.trainingjob.gate import judge
from loom.services.trainingjob.observe import FINISHED, LakeTable, Tracked, TrainingJobObserved, Unavailable
from loom.services.trainingjob.progress import display_name, progress, summary


@dataclass(frozen=True)
class Settings:
    """What the decision takes from the object and the operator's configuration."""

    namespace: str
    owner: OwnerRef
    image: str
    tracking: Tracking
    progress_seconds: float
    retry_seconds: float


def _phase(run: WorkloadStatus) -> str:
    return TrainingPhase(Phase(run.phase).value).value


def _inputs(o: TrainingJobObserved, spec: TrainingJobSpec) -> list[TableSnapshot] | Observed:
    """The lake tables a new run reads, at their current snapshots, or why it cannot start."""
    found = []
    for role, table in (("labels", o.label_table), ("items", o.item_table)):
        if role == "items" and spec.dataset.items is None:
            continue
        if isinstance(table, Unavailable):
            return Observed(DATA_READY, False, "SecretUnavailable", table.message)
        if table is None or table.spec is None or table.snapshot_id is None:
            ref = spec.dataset.labels.data_lake_ref if role == "labels" else spec.dataset.items.data_lake_ref  # type: ignore[union-attr]
            return Observed(DATA_READY, False, "NoSnapshot",
                            f'table {ref.table} of DataLake "{ref.name}" has no snapshot yet')
        found.append(TableSnapshot(table=f"{table.lake}/{table.table}", snapshot_id=table.snapshot_id))
    return found


def _table_input(table: LakeTable | Unavailable | None, snapshot: TableSnapshot | None) -> TableInput | None:
    if not isinstance(table, LakeTable) or table.spec is None or snapshot is None:
        return None
    lake: DataLakeSpec = table.spec
    ref = lake.catalog.secret_ref
    return TableInput(
        table=f"{lake.namespace}.{table.table}",
        catalog_name=lake.catalog.name,
        properties=catalog_properties(lake.catalog, {}),
        snapshot_id=snapshot.snapshot_id,
        secret_name=ref.name if ref is not None else None,
        secret_keys=table.secret_keys,
    )


def _training(spec: TrainingJobSpec, o: TrainingJobObserved) -> Training | Observed:
    profiles = o.profiles
    if isinstance(profiles, Unavailable):
        return Observed(TRAINED, False, "GpuProfilesUnreadable", profiles.message)
    name = spec.resources.gpu_profile
    if name is not None and name not in profiles:
        return Observed(READY, False, "UnknownGpuProfile",
                        f"spec.resources.gpuProfile: no profile {name!r}; available: {', '.join(sorted(profiles))}")
    shape = node_shape(profiles[name] if name else None, spec.resources.cpu, spec.resources.memory)
    gpus = shape.gpus
    return Training(
        backend=spec.backend,
        runtime_ref=spec.runtime_ref or Training().runtime_ref,
        num_nodes=spec.num_nodes,
        num_proc_per_node=spec.num_proc_per_node if spec.num_proc_per_node > 1 or not gpus else gpus,
        node=shape,
        suspend=spec.suspend,
        queue=spec.queue,
        priority_class=spec.priority_class,
        active_deadline_seconds=int(parse_duration(spec.active_deadline).total_seconds()) if spec.active_deadline else None,
        backoff_limit=spec.backoff_limit,
        ttl_seconds_after_finished=int(parse_duration(spec.ttl_after_finished).total_seconds())
        if spec.ttl_after_finished else None,
    )


def _workload(spec: TrainingJobSpec, o: TrainingJobObserved, s: Settings, record: RunRecord,
              training: Training) -> Any:
    store = o.feature_store
    inputs = {i.table: i for i in record.inputs}
    labels_ref = spec.dataset.labels.data_lake_ref
    labels = _table_input(o.label_table, inputs.get(f"{labels_ref.name}/{labels_ref.table}"))
    items = None
    if spec.dataset.items is not None:
        items_ref = spec.dataset.items.data_lake_ref
        items = _table_input(o.item_table, inputs.get(f"{items_ref.name}/{items_ref.table}"))
        if items is None:
            return None
    if store is None or labels is None or record.snapshot_id is None:
        return None
    features = FeatureInput(store.registry, store.project, store.view, store.entity_key, record.snapshot_id,
                            o.feature_status.feature_view_version)
    return train_workload(spec, record.name, s.owner, s.namespace, s.image, features, labels, items, s.tracking,
                          training)


def decide(spec: TrainingJobSpec, o: TrainingJobObserved, s: Settings, now: datetime) -> Decision[Action]:
    conditions: list[Observed] = []
    actions: list[Action] = []
    fields: dict[str, Any] = {}
    requeue: datetime | None = None
    retry: float | None = None

    # What the executor says of the runs on record (a run it no longer has keeps its last phase).
    runs = {} if isinstance(o.runs, Unavailable) else o.runs
    records: list[RunRecord] = []
    latest: dict[str, WorkloadStatus] = {}
    for record in o.status.runs:
        seen = runs.get(record.name)
        if seen:
            latest[record.name] = seen[0]
            record = record.model_copy(update={
                "phase": _phase(seen[0]), "start_time": seen[0].started_at or record.start_time,
                "completion_time": seen[0].finished_at if seen[0].finished else None})
        records.append(record)
    if isinstance(o.runs, Unavailable):
        retry = s.retry_seconds

    # Is the data ready, and at which snapshot?
    data = [reference_condition(o.features, DATA_READY), reference_condition(o.labels, DATA_READY)]
    if o.items is not None:
        data.append(reference_condition(o.items, DATA_READY))
    blocker = next((c for c in data if not c.status), None)
    snapshot = o.feature_status.source_snapshot_id
    inputs = _inputs(o, spec)
    if blocker is None and snapshot is None:
        blocker = Observed(DATA_READY, False, "NoSnapshot",
                           f'FeatureSet "{o.features.name}" has not materialized a snapshot yet')
    if blocker is None and isinstance(inputs, Observed):
        blocker = inputs
    conditions.append(blocker or Observed(DATA_READY, True, "DataReady",
                                          f"features at snapshot {snapshot}, labels and items are Ready"))

    training = _training(spec, o)
    if isinstance(training, Observed):
        if training.type == READY:  # an invalid spec: reported, not retried
            return Decision(Outcome((*conditions, training)))
        conditions.append(training)
        return Decision(Outcome(tuple(conditions), retry_after=s.retry_seconds))

    # A new run for a new snapshot, never beside an unfinished one.
    newest = records[0] if records else None
    active = newest if newest is not None and newest.phase not in FINISHED else None
    wanted = (blocker is None and snapshot is not None and not isinstance(inputs, Observed)
              and all(r.snapshot_id != snapshot for r in records)
              and (newest is None or spec.retrain.on_new_features))
    started = wanted and active is None
    if started:
        reason = "first run" if newest is None else f"new FeatureSet snapshot {snapshot} (was {newest.snapshot_id})"
        assert snapshot is not None and not isinstance(inputs, Observed)
        active = RunRecord(name=run_name(s.owner.name, snapshot), phase=TrainingPhase.PENDING, reason=reason,
                           snapshot_id=snapshot, inputs=inputs)
        records.insert(0, active)
    events: list[Event] = []
    if o.retrain is not None:
        requested, answer = _retrain(o.retrain, records, s.owner.name, started, blocker, snapshot, inputs)
        if requested is not None:
            active = requested
            records.insert(0, active)
        if answer is not None:
            events.append(answer)

    # Submitted when the executor does not have it (new, or its child was removed) or its suspension
    # differs from the spec's; otherwise it is left alone, so a running run costs no write.
    running = latest.get(active.name) if active is not None else None
    if active is not None and (running is None or (running.phase == Phase.SUSPENDED) != spec.suspend):
        workload = _workload(spec, o, s, active, training)
        if workload is not None:
            actions.append(SubmitRun(workload))
        else:
            retry = s.retry_seconds
    if o.retrain is not None:  # after the run it may have started, so a failed submission keeps the request
        actions.append(RemoveAnnotation(RETRAIN_ANNOTATION))

    # The newest run: its progress while it runs, its outcome once it is done.
    current = records[0] if records else None
    tracked = {} if isinstance(o.tracked, Unavailable) else o.tracked
    seen_run = latest.get(current.name) if current else None
    follow = tracked.get(current.name) if current else None
    prog: Progress | None = None
    if current is not None and current.phase not in FINISHED:
        prog = progress(follow.run if follow else None, seen_run.trainer if seen_run else None,
                        spec.model.hyperparameters, now)
        if current.phase == TrainingPhase.RUNNING.value:  # epochs are not announced: look again soon
            requeue = now + timedelta(seconds=s.progress_seconds)
    trained = _trained(current, seen_run, prog, wanted=wanted or bool(records), blocker=blocker)
    conditions.append(trained)

    gate = o.status.gate
    lineage = o.status.lineage
    metrics = dict(o.status.metrics)
    model_version = o.status.model_version
    if current is not None and current.phase == TrainingPhase.SUCCEEDED.value and current.model_version is None:
        outcome = _registered(spec, o, s, current, follow, actions)
        if outcome is None:  # the registry cannot be read, or the version is not there yet
            retry = s.retry_seconds
        else:
            gate, lineage, metrics, model_version = outcome
            records[0] = current.model_copy(update={"model_version": lineage.model_version})
    if gate is not None:
        conditions.append(Observed(GATE_PASSED, gate.passed, "GatePassed" if gate.passed else "GateFailed",
                                   gate.reason))

    # History: the newest runs stay, with every unfinished one. A finished run's child goes after
    # ttlAfterFinished (Kubeflow's TrainJob has no TTL of its own); its record stays.
    ttl = parse_duration(spec.ttl_after_finished) if spec.ttl_after_finished else None
    kept: list[RunRecord] = []
    finished = 0
    for record in records:
        if record.phase in FINISHED:
            finished += 1
            if finished > spec.retrain.history_limit:
                actions.append(DeleteRun(s.namespace, record.name))
                continue
            if ttl is not None and record.name in runs and record.completion_time is not None:
                expiry = record.completion_time + ttl
                if expiry <= now:
                    actions.append(DeleteRun(s.namespace, record.name))
                else:
                    requeue = expiry if requeue is None else min(requeue, expiry)
        kept.append(record)

    if model_version is not None:  # else Ready is the first blocker, as act leaves the conditions
        conditions.append(Observed(READY, True, "ModelRegistered",
                                   f"version {model_version} is registered; {trained.message}"))
    replicas = seen_run.replicas if seen_run else None
    fields.update(
        phase=current.phase if current else None,
        current_run=current.name if current else None,
        start_time=current.start_time if current else None,
        completion_time=current.completion_time if current else None,
        replicas=Replicas(active=replicas.active, succeeded=replicas.succeeded, failed=replicas.failed)
        if replicas else None,
        progress=prog,
        runs=kept,
        gate=gate,
        lineage=lineage,
        metrics=metrics,
        model_version=model_version,
    )
    return Decision(Outcome(tuple(conditions), fields, retry_after=retry, events=tuple(events), requeue_at=requeue),
                    tuple(actions))


def requested_run(trainingjob: str, snapshot_id: int, request: str, after: str | None) -> str:
    """The run a retrain request starts: named after the request's value and the run before it, so
    the same request is found again, and the same value asked for again after that run names a new one."""
    return dns_name(trainingjob, digest(str(snapshot_id), request, after or ""))


def _retrain(request: str, records: list[RunRecord], owner: str, started: bool, blocker: Observed | None,
             snapshot: int | None, inputs: list[TableSnapshot] | Observed) -> tuple[RunRecord | None, Event | None]:
    """The answer to loom.dev/retrain: a new run of the current snapshot, or a Warning saying why not;
    nothing more when a run this decision starts answers it, or the run it started earlier still goes
    (its annotation was not removed then)."""
    newest = records[0] if records else None
    before = records[1].name if len(records) > 1 else None
    going = newest is not None and newest.phase not in FINISHED
    if started or (going and newest is not None and newest.snapshot_id is not None
                   and newest.name == requested_run(owner, newest.snapshot_id, request, before)):
        return None, None
    if going and newest is not None:
        why = f"run {newest.name} is {newest.phase}; ask again once it has finished"
    elif blocker is not None:
        why = blocker.message
    else:  # no blocker: the features have a snapshot and the tables theirs
        assert snapshot is not None and not isinstance(inputs, Observed)
        reason = f"retrain requested by annotation {RETRAIN_ANNOTATION}"
        run = RunRecord(name=requested_run(owner, snapshot, request, newest.name if newest else None),
                        phase=TrainingPhase.PENDING, reason=reason, snapshot_id=snapshot, inputs=inputs)
        return run, Event("Normal", "RetrainRequested", f"starting run {run.name} of snapshot {snapshot}: {reason}")
    return None, Event("Warning", "RequestIgnored", f"{RETRAIN_ANNOTATION} ignored: {why}")


def _trained(current: RunRecord | None, seen: WorkloadStatus | None, prog: Progress | None, wanted: bool,
             blocker: Observed | None) -> Observed:
    if current is None:
        if blocker is not None:
            return Observed(TRAINED, None, "WaitingForData", blocker.message)
        return Observed(TRAINED, None, "Pending", "no run yet")
    message = seen.message if seen and seen.message else ""
    phase = current.phase
    if phase == TrainingPhase.SUCCEEDED.value:
        return Observed(TRAINED, True, "Succeeded", f"run {current.name} succeeded")
    if phase == TrainingPhase.FAILED.value:
        return Observed(TRAINED, False, "Failed", f"run {current.name} failed" + (f": {message}" if message else ""))
    if phase == TrainingPhase.SUSPENDED.value:
        return Observed(TRAINED, None, "Suspended", f"run {current.name} is suspended (spec.suspend)")
    if phase == TrainingPhase.RUNNING.value:
        return Observed(TRAINED, None, "Running", f"run {current.name}: {summary(prog)}")
    return Observed(TRAINED, None, "Pending", f"run {current.name} is starting ({current.reason or 'submitted'})")


def _registered(spec: TrainingJobSpec, o: TrainingJobObserved, s: Settings, current: RunRecord,
                follow: Tracked | None, actions: list[Action]) -> tuple[Gate, Lineage, dict[str, float], str] | None:
    """The gate's verdict on a succeeded run's version and the alias move it asks for; None while the
    run or its version cannot be read."""
    if follow is None or follow.run is None or follow.version is None or isinstance(o.aliases, Unavailable):
        return None
    run, version = follow.run, follow.version
    gate = judge(spec.evaluation, run.metrics, spec.model.alias, o.aliases.get(spec.evaluation.champion_alias))
    if gate.passed and o.aliases.get(spec.model.alias) != version.version:
        actions.append(MoveAlias(s.tracking.uri, spec.model.name, spec.model.alias, version.version))
    lineage = Lineage(
        snapshots=[TableSnapshot(table=f"{o.features.name} (FeatureSet)", snapshot_id=current.snapshot_id),
                   *current.inputs] if current.snapshot_id is not None else list(current.inputs),
        feature_view_version=run.tags.get("loom.dev/feature-view-version") or o.feature_status.feature_view_version,
        run_id=run.run_id,
        logged_model_id=version.model_id,
        registered_model=version.name,
        model_version=version.version,
        model_uri=f"models:/{version.name}/{version.version}",
        image=s.image,
    )
    metrics = {display_name(k): v for k, v in sorted(run.metrics.items()) if k not in ("epoch", "loss")}
    return gate, lineage, metrics, version.version
