"""Everything a TrainingJob decision needs, read once: the FeatureSet and the DataLakes its dataset
names (specs, snapshots, the catalog Secret's keys), the GPU profiles, the runs the executor has, and
what MLflow holds of the runs still being followed (progress, metrics, the registered version) and of
the aliases the gate moves. Reads only; a system that cannot be read is recorded as Unavailable."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from loom.api.datalake import DataLakeSpec, DataLakeStatus
from loom.api.featureset import FeatureSetSpec, FeatureSetStatus
from loom.api.gpuprofile import GpuProfile
from loom.api.kinds import DATALAKE, FEATURESET
from loom.api.trainingjob import TrainingJobSpec, TrainingJobStatus, TrainingPhase
from loom.domain.feature_views import feast_name
from loom.domain.training import RETRAIN_ANNOTATION
from loom.domain.workloads import Phase, WorkloadStatus
from loom.drivers import mlflow_tracking
from loom.drivers.mlflow_tracking import RegisteredVersion, TrackedRun
from loom.gpuprofiles import cached_profiles
from loom.services.context import ReconcileContext
from loom.services.featureset.definition import store_settings
from loom.services.references import Reference, observe_reference, parsed
from loom.services.unavailable import Unavailable
from loom.services.unavailable import read as _read

# Phases of a run that is done with; the decision reads them too.
FINISHED = (TrainingPhase.SUCCEEDED.value, TrainingPhase.FAILED.value)


@dataclass(frozen=True)
class LakeTable:
    """One table a run reads, as its DataLake describes it."""

    lake: str
    table: str
    spec: DataLakeSpec | None
    snapshot_id: int | None
    secret_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Tracked:
    """What MLflow holds of one run: None where the trainer has not written it yet."""

    run: TrackedRun | None
    version: RegisteredVersion | None = None


@dataclass(frozen=True)
class FeatureStore:
    """Where the FeatureSet's view is registered and what its entity joins on."""

    registry: str
    project: str
    view: str
    entity_key: str


@dataclass(frozen=True)
class TrainingJobObserved:
    features: Reference
    labels: Reference
    items: Reference | None
    status: TrainingJobStatus
    feature_store: FeatureStore | None = None
    feature_status: FeatureSetStatus = field(default_factory=FeatureSetStatus)
    label_table: LakeTable | Unavailable | None = None
    item_table: LakeTable | Unavailable | None = None
    profiles: Mapping[str, GpuProfile] | Unavailable = field(default_factory=dict)
    runs: Mapping[str, tuple[WorkloadStatus, ...]] | Unavailable = field(default_factory=dict)
    tracked: Mapping[str, Tracked] | Unavailable = field(default_factory=dict)
    aliases: Mapping[str, str | None] | Unavailable = field(default_factory=dict)
    retrain: str | None = None  # the value of loom.dev/retrain, while a retrain is asked for


def _lake_table(ref: Reference, table: str, ctx: ReconcileContext) -> LakeTable | Unavailable | None:
    if ref.body is None:
        return None
    spec = parsed(DataLakeSpec, ref.body.get("spec"))
    status = parsed(DataLakeStatus, ref.body.get("status")) or DataLakeStatus()
    entry = next((t for t in status.tables if t.name == table), None)
    keys: tuple[str, ...] = ()
    if spec is not None and spec.catalog.secret_ref is not None:
        secret_ref = spec.catalog.secret_ref
        found = _read(lambda: ctx.kube.get_secret(ctx.namespace, secret_ref.name))
        if isinstance(found, Unavailable):
            return found
        keys = tuple(sorted(found if secret_ref.key is None else [k for k in found if k == secret_ref.key]))
    return LakeTable(ref.name, table, spec, entry.current_snapshot_id if entry else None, keys)


def _feature_store(spec: FeatureSetSpec | None, name: str, ctx: ReconcileContext) -> FeatureStore | None:
    if spec is None:
        return None
    settings = store_settings(spec, ctx.namespace, ctx.config)
    return FeatureStore(settings.registry_uri, settings.project, feast_name(name), spec.entities[0].join_keys[0])


def _runs(ctx: ReconcileContext, status: TrainingJobStatus) -> dict[str, tuple[WorkloadStatus, ...]]:
    """The runs on record, as the executor has them. A run is named after its snapshot, so one whose
    record was never written is found again by the decision submitting the same name."""
    return {r.name: tuple(ctx.executor.runs(ctx.namespace, r.name)) for r in status.runs}


def experiment(spec: TrainingJobSpec, namespace: str, name: str) -> str:
    return spec.tracking.experiment or f"{namespace}/{name}"


def _following(status: TrainingJobStatus, runs: Mapping[str, tuple[WorkloadStatus, ...]] | Unavailable) -> str | None:
    """The run MLflow is read for: the newest, once it has started and until its version is recorded
    (older runs are done with; a run not started yet has nothing in MLflow)."""
    newest = status.runs[0] if status.runs else None
    if newest is None or newest.model_version is not None or isinstance(runs, Unavailable):
        return None
    seen = runs.get(newest.name)
    return newest.name if seen and seen[0].phase != Phase.PENDING else None


def _tracked(spec: TrainingJobSpec, ctx: ReconcileContext, run_name: str) -> dict[str, Tracked]:
    uri = spec.tracking.tracking_uri or ctx.config.tracking_uri
    run = mlflow_tracking.find_run(uri, experiment(spec, ctx.namespace, ctx.name), run_name)
    version = mlflow_tracking.run_version(uri, spec.model.name, run.run_id) if run is not None else None
    return {run_name: Tracked(run, version)}


def _aliases(spec: TrainingJobSpec, ctx: ReconcileContext) -> dict[str, str | None]:
    uri = spec.tracking.tracking_uri or ctx.config.tracking_uri
    return {alias: mlflow_tracking.alias_version(uri, spec.model.name, alias)
            for alias in (spec.model.alias, spec.evaluation.champion_alias)}


def observe(spec: TrainingJobSpec, ctx: ReconcileContext) -> TrainingJobObserved:
    dataset = spec.dataset
    features = observe_reference(ctx.kube, FEATURESET, ctx.namespace, dataset.feature_set_ref.name)
    labels = observe_reference(ctx.kube, DATALAKE, ctx.namespace, dataset.labels.data_lake_ref.name)
    items = None
    if dataset.items is not None:  # usually the labels' own DataLake: read once
        items_lake = dataset.items.data_lake_ref.name
        items = (labels if items_lake == labels.name
                 else observe_reference(ctx.kube, DATALAKE, ctx.namespace, items_lake))
    status = parsed(TrainingJobStatus, ctx.status) or TrainingJobStatus()
    feature_body = features.body or {}
    runs = _read(lambda: _runs(ctx, status))
    following = _following(status, runs)
    if following is None and (not status.runs or status.runs[0].phase not in FINISHED):
        # A run starts (or is starting): open the store now, so the operator's one-time cost (the MLflow
        # library's import, for a store no server answers) falls in the run's start-up, not its epochs.
        _read(lambda: mlflow_tracking.open_store(spec.tracking.tracking_uri or ctx.config.tracking_uri))
    tracked = _read(lambda: _tracked(spec, ctx, following)) if following else {}
    # The gate needs the aliases only once the followed run registered a version.
    registered = isinstance(tracked, dict) and any(t.version is not None for t in tracked.values())
    return TrainingJobObserved(
        features=features,
        labels=labels,
        items=items,
        status=status,
        feature_store=_feature_store(parsed(FeatureSetSpec, feature_body.get("spec")), features.name, ctx),
        feature_status=parsed(FeatureSetStatus, feature_body.get("status")) or FeatureSetStatus(),
        label_table=_lake_table(labels, dataset.labels.data_lake_ref.table, ctx),
        item_table=_lake_table(items, dataset.items.data_lake_ref.table, ctx)
        if items is not None and dataset.items is not None else None,
        profiles=_read(lambda: cached_profiles(ctx.config.gpu_profiles_dir)),
        runs=runs,
        tracked=tracked,
        aliases=_read(lambda: _aliases(spec, ctx)) if registered else {},
        retrain=ctx.annotations.get(RETRAIN_ANNOTATION),
    )
