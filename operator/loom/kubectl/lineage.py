"""`kubectl loom lineage`, pure: from an InferenceService's stable revision (or a TrainingJob) back to
the model version, the TrainingJob run that registered it, and the Iceberg snapshots that run read:
the FeatureSet's and every lake table's. Everything comes from the objects' statuses (a run records
what it read; a TrainingJob's and a served revision's `lineage` what it registered), not from MLflow.
What cannot be traced is said in `gaps`, not guessed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from loom.api.kinds import DATALAKE, FEATURESET, INFERENCESERVICE, TRAININGJOB, Kind
from loom.kubectl.render import Node

FEATURESET_SUFFIX = " (FeatureSet)"  # how a run's lineage names the FeatureSet snapshot among the tables

Obj = Mapping[str, Any]


class Objects(Protocol):
    """The objects of one namespace."""

    def get(self, kind: Kind, name: str) -> Obj | None: ...

    def list(self, kind: Kind) -> list[Obj]: ...


@dataclass(frozen=True)
class Serving:
    inference_service: str
    phase: str | None
    revision: str
    canary: str | None = None  # a revision under analysis, not the one traced


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    uri: str | None


@dataclass(frozen=True)
class Run:
    training_job: str
    name: str | None
    phase: str | None = None
    reason: str | None = None
    start_time: str | None = None
    completion_time: str | None = None
    run_id: str | None = None  # MLflow's
    logged_model_id: str | None = None
    image: str | None = None


@dataclass(frozen=True)
class Features:
    feature_set: str
    snapshot_id: int | None  # the Iceberg snapshot of its source table the run trained on
    feature_view_version: str | None
    source: str | None  # the DataLake table it reads, lake/table
    materialized_snapshot_id: int | None  # what the FeatureSet has materialized now
    materialized_feature_view_version: str | None


@dataclass(frozen=True)
class TableRead:
    table: str  # lake/table
    snapshot_id: int
    current_snapshot_id: int | None  # the DataLake's current snapshot of the table now


@dataclass(frozen=True)
class Trace:
    namespace: str
    serving: Serving | None = None
    model: ModelVersion | None = None
    run: Run | None = None
    features: Features | None = None
    tables: tuple[TableRead, ...] = ()
    gaps: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return _camel(asdict(self))


def _camel(value: Any) -> Any:
    if isinstance(value, dict):
        return {_camel_key(k): _camel(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_camel(v) for v in value]
    return value


def _camel_key(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part.capitalize() for part in rest)


class NotTraceable(ValueError):
    """Lineage starts at an InferenceService or a TrainingJob."""


def trace(kind: Kind, obj: Obj, objects: Objects) -> Trace:
    """The lineage of an InferenceService's stable revision, or of a TrainingJob's last registered version."""
    namespace = (obj.get("metadata") or {}).get("namespace", "")
    if kind is INFERENCESERVICE:
        return _from_service(namespace, obj, objects)
    if kind is TRAININGJOB:
        status = obj.get("status") or {}
        lineage = status.get("lineage") or {}
        version = lineage.get("modelVersion") or status.get("modelVersion")
        model = _model(lineage) if lineage.get("registeredModel") else None
        return _from_training(Trace(namespace, model=model), obj, version, lineage, objects)
    raise NotTraceable(f"lineage starts at an InferenceService or a TrainingJob, not a {kind.kind}")


def _model(lineage: Obj) -> ModelVersion:
    return ModelVersion(lineage["registeredModel"], lineage["modelVersion"], lineage.get("modelUri"))


def _from_service(namespace: str, obj: Obj, objects: Objects) -> Trace:
    name = (obj.get("metadata") or {}).get("name", "")
    status, spec = obj.get("status") or {}, obj.get("spec") or {}
    stable = status.get("stable")
    if not stable:
        return Trace(namespace, gaps=(f"InferenceService {name} serves no revision yet",))
    canary = status.get("canary")
    serving = Serving(name, status.get("phase"), stable["name"],
                      f"{canary['name']} ({canary['modelName']} version {canary['modelVersion']})" if canary else None)
    model = ModelVersion(stable["modelName"], stable["modelVersion"],
                         f"models:/{stable['modelName']}/{stable['modelVersion']}")
    start = Trace(namespace, serving=serving, model=model)
    lineage = status.get("lineage") or {}
    if lineage.get("modelVersion") != model.version:
        lineage = {}
    ref = (spec.get("model") or {}).get("trainingJobRef")
    candidates = [o for o in ([objects.get(TRAININGJOB, ref["name"])] if ref else objects.list(TRAININGJOB))
                  if o is not None and ((o.get("spec") or {}).get("model") or {}).get("name") == model.name]
    for tj in candidates:
        tj_status = tj.get("status") or {}
        recorded = tj_status.get("lineage") or {}
        if recorded.get("modelVersion") == model.version or any(
                r.get("modelVersion") == model.version for r in tj_status.get("runs") or []):
            return _from_training(start, tj, model.version, lineage or recorded, objects)
    where = f"TrainingJob {ref['name']}" if ref else f"no TrainingJob in {namespace}"
    return Trace(namespace, serving, model, run=None, gaps=(
        f"{where} records version {model.version} of {model.name}"
        + (" (not found)" if ref and not candidates else ""),))


def _from_training(start: Trace, tj: Obj, version: str | None, lineage: Obj, objects: Objects) -> Trace:
    """The run of `tj` that registered `version` (the newest run when none is registered yet), what
    it read, and where those inputs are now."""
    name = (tj.get("metadata") or {}).get("name", "")
    spec, status = tj.get("spec") or {}, tj.get("status") or {}
    runs = list(status.get("runs") or [])
    record = next((r for r in runs if version is not None and r.get("modelVersion") == version), None)
    if record is None and version is None and runs:
        record = runs[0]
    if lineage.get("modelVersion") != version or version is None:
        lineage = {}
    gaps = list(start.gaps)
    if record is None and not lineage:
        gaps.append(f"TrainingJob {name} has no run on record" + (f" for version {version}" if version else ""))
        return Trace(start.namespace, start.serving, start.model, Run(name, None), gaps=tuple(gaps))
    record = record or {}
    if not lineage:
        gaps.append(f"the MLflow run id of version {version} is no longer in TrainingJob {name}'s status "
                    "(a later run's lineage replaced it)" if version else f"run {record.get('name')} registered no "
                    "version yet")
    run = Run(name, record.get("name"), record.get("phase"), record.get("reason"), record.get("startTime"),
              record.get("completionTime"), lineage.get("runId"), lineage.get("loggedModelId"), lineage.get("image"))
    feature_snapshot, reads = _snapshots(lineage, record)
    features = _features(spec, feature_snapshot, lineage.get("featureViewVersion"), objects)
    tables = tuple(TableRead(table, snapshot, _current(table, objects)) for table, snapshot in reads)
    return Trace(start.namespace, start.serving, start.model, run, features, tables, tuple(gaps))


def _snapshots(lineage: Obj, record: Obj) -> tuple[int | None, list[tuple[str, int]]]:
    """The FeatureSet's snapshot and the lake tables' a run read: the lineage's list when there is
    one, else the run's record."""
    if lineage.get("snapshots"):
        entries = [(s["table"], s["snapshotId"]) for s in lineage["snapshots"]]
        feature = next((snap for table, snap in entries if table.endswith(FEATURESET_SUFFIX)), None)
        return feature, [(t, s) for t, s in entries if not t.endswith(FEATURESET_SUFFIX)]
    return record.get("snapshotId"), [(i["table"], i["snapshotId"]) for i in record.get("inputs") or []]


def _features(spec: Obj, snapshot: int | None, version: str | None, objects: Objects) -> Features | None:
    ref = (spec.get("dataset") or {}).get("featureSetRef")
    if not ref:
        return None
    fs = objects.get(FEATURESET, ref["name"]) or {}
    source = ((fs.get("spec") or {}).get("source") or {}).get("dataLakeRef")
    status = fs.get("status") or {}
    return Features(ref["name"], snapshot, version, f"{source['name']}/{source['table']}" if source else None,
                    status.get("sourceSnapshotId"), status.get("featureViewVersion"))


def _current(table: str, objects: Objects) -> int | None:
    lake, _, name = table.partition("/")
    found = objects.get(DATALAKE, lake) or {}
    entry: Obj = next((t for t in (found.get("status") or {}).get("tables") or [] if t.get("name") == name), {})
    return entry.get("currentSnapshotId")


def _snapshot(read: int | None, current: int | None) -> str:
    if read is None:
        return "snapshot unknown"
    if current is None or current == read:
        return f"snapshot {read}" + (" (current)" if current == read else "")
    return f"snapshot {read} (current {current})"


def tree(t: Trace) -> Node:
    """The trace as an indented tree, from what is served down to the data."""
    leaves: list[Node] = []
    if t.features is not None:
        f = t.features
        now = (f" (materialized now: {f.materialized_snapshot_id}, {f.materialized_feature_view_version})"
               if (f.materialized_snapshot_id, f.materialized_feature_view_version) != (f.snapshot_id,
                                                                                       f.feature_view_version)
               else " (materialized now)")
        leaves.append(Node(f"FeatureSet {f.feature_set}: snapshot {f.snapshot_id}"
                           + (f" of {f.source}" if f.source else "")
                           + (f", feature view {f.feature_view_version}" if f.feature_view_version else "") + now))
    leaves += [Node(f"DataLake table {r.table}: {_snapshot(r.snapshot_id, r.current_snapshot_id)}") for r in t.tables]
    node: Node | None = None
    if t.run is not None:
        r = t.run
        details = [d for d in (r.phase, r.reason) if d]
        notes = [f"MLflow run {r.run_id}" if r.run_id else "",
                 f"logged model {r.logged_model_id}" if r.logged_model_id else "",
                 f"started {r.start_time}" if r.start_time else "",
                 f"finished {r.completion_time}" if r.completion_time else "",
                 f"image {r.image}" if r.image else ""]
        node = Node(f"TrainingJob {r.training_job}" + (f", run {r.name}" if r.name else "")
                    + (f" ({', '.join(details)})" if details else ""),
                    tuple(leaves), note=", ".join(n for n in notes if n))
    if t.model is not None:
        m = t.model
        label = f"model {m.name} version {m.version}" + (f" ({m.uri})" if m.uri else "")
        node = Node(label, (node,) if node else ())
    if t.serving is not None:
        s = t.serving
        label = f"InferenceService {t.namespace}/{s.inference_service}" + (f" ({s.phase})" if s.phase else "")
        note = f"stable revision {s.revision}" + (f"; canary {s.canary}" if s.canary else "")
        node = Node(label, (node,) if node else (), note=note)
    root = node or Node(f"nothing to trace in {t.namespace}")
    return Node(root.label, root.children + tuple(Node(f"? {gap}") for gap in t.gaps), note=root.note)
