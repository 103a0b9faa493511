"""The steps of lake_to_serving as lightweight kfp components. Each reads Loom's objects (and, to deploy,
MLflow's registry or the InferenceService) and waits for what the operator reports: the pipeline
orchestrates Loom's resources and never does their work or touches their children.

Snapshot ids travel as strings: Iceberg's are 64-bit and kfp's integer parameters are JSON numbers,
which keep 53 bits. Every step runs the source of its function only, so imports stay in the bodies."""

from typing import NamedTuple, Optional

from kfp import dsl
from kfp.dsl import Metrics, Output
from loom_objects import await_loom, loom_api, loom_object

# What the components' pods run; the same pins as requirements/pipelines.txt, so kfp.local's
# SubprocessRunner (use_venv=False) finds them installed in .venv-pipelines.
BASE_IMAGE = "python:3.11-slim"
KUBERNETES = ["kubernetes==30.1.0"]
MLFLOW = ["mlflow-skinny==3.17.2"]
LOOM = [loom_api, loom_object, await_loom]


@dsl.component(base_image=BASE_IMAGE, packages_to_install=KUBERNETES, additional_funcs=LOOM)
def ingest(namespace: str, datalake: str, table: str, after_snapshot_id: str, timeout_seconds: int) -> NamedTuple(
        "Ingested", [("snapshot_id", str), ("row_count", int), ("committed_at", str)]):
    """A snapshot of the lake table other than `after_snapshot_id` (empty: other than the one current
    when the step starts). Loom has no request for an ingest: this is the next one its schedule commits."""
    def row(lake: dict) -> Optional[dict]:
        return next((t for t in lake.get("status", {}).get("tables", []) if t["name"] == table), None)

    if not after_snapshot_id:
        after_snapshot_id = str((row(loom_object(namespace, "datalakes", datalake)) or {}).get("currentSnapshotId") or "")

    def new_snapshot(lake: dict) -> Optional[dict]:
        found = row(lake)
        current = found.get("currentSnapshotId") if found else None
        return found if current is not None and str(current) != after_snapshot_id else None

    found = await_loom(namespace, "datalakes", datalake, new_snapshot,
                       f"snapshot of {table} after {after_snapshot_id or 'none'}", timeout_seconds)
    snapshot, rows = str(found["currentSnapshotId"]), int(found.get("rowCount") or 0)
    print(f"{datalake}/{table}: snapshot {snapshot}, {rows} rows")
    return (snapshot, rows, (found.get("lastIngest") or {}).get("time", ""))


@dsl.component(base_image=BASE_IMAGE)
def quality_check(snapshot_id: str, row_count: int, committed_at: str, min_rows: int, max_age_seconds: int) -> str:
    """The snapshot, when it holds at least `min_rows` rows and its last ingest committed at most
    `max_age_seconds` ago (0: any age); else the step fails with the numbers."""
    from datetime import datetime, timezone

    if row_count < min_rows:
        raise ValueError(f"snapshot {snapshot_id} holds {row_count} rows, fewer than {min_rows}")
    if max_age_seconds > 0:
        if not committed_at:
            raise ValueError(f"snapshot {snapshot_id}: the lake records no ingest commit to judge freshness by")
        age = (datetime.now(timezone.utc) - datetime.fromisoformat(committed_at)).total_seconds()
        if age > max_age_seconds:
            raise ValueError(f"snapshot {snapshot_id}: last ingest {age:.0f}s ago, older than {max_age_seconds}s")
    print(f"snapshot {snapshot_id}: {row_count} rows, committed {committed_at or 'at an unknown time'}: passed")
    return snapshot_id


@dsl.component(base_image=BASE_IMAGE, packages_to_install=KUBERNETES, additional_funcs=LOOM)
def materialize(namespace: str, featureset: str, datalake: str, table: str, snapshot_id: str,
                timeout_seconds: int) -> NamedTuple("Materialized", [("snapshot_id", str), ("feature_view_version", str)]):
    """Await the FeatureSet's materialization of the snapshot; a failure the operator will not retry fails the step."""
    source = loom_object(namespace, "featuresets", featureset)["spec"]["source"]["dataLakeRef"]
    if (source["name"], source["table"]) != (datalake, table):
        raise ValueError(f"FeatureSet {featureset} reads {source['name']}/{source['table']}, not {datalake}/{table}")

    def materialized(fs: dict) -> Optional[dict]:
        status = fs.get("status", {})
        failure = status.get("lastFailure") or {}
        if str(failure.get("snapshotId")) == snapshot_id and not failure.get("transient", True):
            why = next((c.get("message", "") for c in status.get("conditions", []) if c["type"] == "Materialized"), "")
            raise RuntimeError(f"FeatureSet {featureset} failed to materialize snapshot {snapshot_id}: {why}")
        last = status.get("lastMaterialized") or {}
        return last if str(last.get("snapshotId")) == snapshot_id else None

    last = await_loom(namespace, "featuresets", featureset, materialized, f"materialization of {snapshot_id}",
                      timeout_seconds)
    print(f"{featureset}: snapshot {snapshot_id} materialized, {last['rows']} rows, view {last['featureViewVersion']}")
    return (snapshot_id, last["featureViewVersion"])


@dsl.component(base_image=BASE_IMAGE, packages_to_install=KUBERNETES, additional_funcs=LOOM)
def train(namespace: str, trainingjob: str, featureset: str, snapshot_id: str, timeout_seconds: int) -> NamedTuple(
        "Trained", [("run", str), ("model_name", str), ("model_version", str)]):
    """Await the TrainingJob's run on the snapshot (retrain.onNewFeatures starts it) and the version it registered."""
    spec = loom_object(namespace, "trainingjobs", trainingjob)["spec"]
    if spec["dataset"]["featureSetRef"]["name"] != featureset:
        raise ValueError(f"TrainingJob {trainingjob} reads FeatureSet {spec['dataset']['featureSetRef']['name']}, "
                         f"not {featureset}")

    def registered(job: dict) -> Optional[dict]:
        status = job.get("status", {})
        run = next((r for r in status.get("runs", []) if str(r.get("snapshotId")) == snapshot_id), None)
        if run and run["phase"] == "Failed":
            why = next((c.get("message", "") for c in status.get("conditions", []) if c["type"] == "Trained"), "")
            raise RuntimeError(f"TrainingJob {trainingjob}: run {run['name']} on snapshot {snapshot_id} failed: {why}")
        return run if run and run["phase"] == "Succeeded" and run.get("modelVersion") else None

    run = await_loom(namespace, "trainingjobs", trainingjob, registered, f"registered run on {snapshot_id}",
                     timeout_seconds)
    print(f"{trainingjob}: run {run['name']} registered {spec['model']['name']} version {run['modelVersion']}")
    return (run["name"], spec["model"]["name"], run["modelVersion"])


@dsl.component(base_image=BASE_IMAGE, packages_to_install=KUBERNETES, additional_funcs=LOOM)
def evaluate(namespace: str, trainingjob: str, model_version: str, metrics: Output[Metrics]) -> bool:
    """Whether the version won: the TrainingJob's gate passed it and it scored above the champion
    on the same holdout (when one was scored), whatever the TrainingJob's mustBeatChampion says. The
    verdict is the one output (kfp.local's conditions read a task's single output only); the numbers
    compared go to `metrics`."""
    job = loom_object(namespace, "trainingjobs", trainingjob)
    status = job.get("status", {})
    judged = (status.get("lineage") or {}).get("modelVersion")
    if judged != model_version:
        raise RuntimeError(f"TrainingJob {trainingjob}'s gate last judged version {judged}, not {model_version}")
    gate = status["gate"]
    metric = (job["spec"].get("evaluation") or {}).get("metric", "recall@10")
    scores = status.get("metrics", {})
    ours, champion = scores.get(metric), scores.get(f"champion_{metric}")
    for name in (metric, f"popularity_{metric}", f"champion_{metric}"):
        if name in scores:
            metrics.log_metric(name, float(scores[name]))
    won, reason = bool(gate["passed"]), gate["reason"]
    if won and champion is not None and (ours is None or ours <= champion):
        won, reason = False, f"{reason}; but {metric} {ours} does not beat the champion's {champion}"
    print(f"version {model_version} {'won' if won else 'lost'}: {reason}")
    return won


@dsl.component(base_image=BASE_IMAGE, packages_to_install=KUBERNETES + MLFLOW, additional_funcs=LOOM)
def deploy(namespace: str, inference_service: str, model_name: str, model_version: str, tracking_uri: str) -> str:
    """Serve the version through the InferenceService's own source: a served alias moves in MLflow
    (the canary's fromAlias when it has one, so the operator rolls it out), a version URI is patched,
    and a trainingJobRef already follows the alias the gate moved. `tracking_uri` empty: MLFLOW_TRACKING_URI."""
    spec = loom_object(namespace, "inferenceservices", inference_service)["spec"]
    uri, served = spec["model"].get("uri"), f"models:/{model_name}"
    if not uri:
        done = f"{inference_service} follows TrainingJob {spec['model']['trainingJobRef']['name']}'s alias"
    elif uri.startswith(f"{served}@"):
        from mlflow import MlflowClient

        alias = ((spec.get("rollout") or {}).get("canary") or {}).get("fromAlias") or uri.split("@", 1)[1]
        registry = MlflowClient(tracking_uri=tracking_uri or None, registry_uri=tracking_uri or None)
        registry.set_registered_model_alias(model_name, alias, model_version)
        done = f"{served}@{alias} is version {model_version}"
    elif uri.startswith(f"{served}/"):
        body = {"spec": {"model": {"uri": f"{served}/{model_version}"}}}
        loom_api().patch_namespaced_custom_object("loom.dev", "v1alpha1", namespace, "inferenceservices",
                                                  inference_service, body)
        done = f"{inference_service} serves {served}/{model_version}"
    else:
        raise ValueError(f"InferenceService {inference_service} serves {uri}, not a version of {model_name}")
    print(done)
    return done
