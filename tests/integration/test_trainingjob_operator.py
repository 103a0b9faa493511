"""The TrainingJob controller end to end on the real kube-apiserver with the Kubernetes executor and a
real MLflow tracking server. No Kubeflow controller runs and no trainer: the tests play both (patching
the TrainJob's status, writing the run, its epochs and its version to MLflow as the trainer does) and
the DataLake/FeatureSet controllers too (this operator reconciles TrainingJobs only, LOOM_CONTROLLERS)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from loom.builders.train import run_name
from loom.config import ExecutorKind
from loom.devcluster.mlflow import mlflow_server
from tests.conftest import eventually
from tests.integration.conftest import Kubectl, Operator, condition, sample, start_operator
from tests.support.kubeflow import condition as kf_condition
from tests.support.kubeflow import kubeflow_cleanup, kubeflow_crds, no_kubeflow_crds, patch_status

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("kubeflow_cleanup")]
__all__ = ["kubeflow_cleanup", "kubeflow_crds", "no_kubeflow_crds"]  # fixtures used by name

IMAGE = "registry.example.com/loom/main:0.1.0"
TJ = "movielens-two-tower"
MODEL = "movielens-two-tower"


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as url:
        yield url


@pytest.fixture
def op(namespace: str, tracking: str) -> Iterator[Operator]:
    running = start_operator(namespace, executor=ExecutorKind.KUBERNETES, image_main=IMAGE,
                             controllers=["TrainingJob"], mlflow_tracking_uri=tracking,
                             training_progress_seconds=1)
    with running.runner:
        yield running
    assert running.runner.exception is None, running.runner.output


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ready() -> list[dict[str, Any]]:
    return [{"type": "Ready", "status": "True", "reason": "Ready", "message": "", "observedGeneration": 1,
             "lastTransitionTime": now()}]


def inputs_ready(kc: Kubectl, snapshot: int) -> None:
    """Play the DataLake and FeatureSet controllers: both Ready, the features at `snapshot`."""
    kc.apply(sample("datalake"))
    kc.apply(sample("featureset"))
    kc.run("patch", "datalake/movielens", "--subresource=status", "--type=merge", "-p", json.dumps({"status": {
        "conditions": _ready(),
        "tables": [{"name": "ratings", "currentSnapshotId": 200}, {"name": "movies", "currentSnapshotId": 300},
                   {"name": "user_features", "currentSnapshotId": snapshot}]}}))
    features_at(kc, snapshot)


def features_at(kc: Kubectl, snapshot: int) -> None:
    kc.run("patch", "featureset/user-features", "--subresource=status", "--type=merge", "-p", json.dumps({"status": {
        "conditions": _ready(), "sourceSnapshotId": snapshot, "featureViewVersion": "fv1"}}))


def trainingjob(**changes: Any) -> dict[str, Any]:
    tj = sample("trainingjob")
    tj["spec"]["model"]["hyperparameters"]["epochs"] = "4"
    tj["spec"].update(changes)
    return tj


def tj_condition(kc: Kubectl, type_: str) -> dict[str, Any] | None:
    return condition(kc.get("trainingjob", TJ), type_)


@pytest.mark.usefixtures("no_kubeflow_crds")
def test_without_kubeflow_the_condition_names_the_fix(kc: Kubectl, op: Operator) -> None:
    inputs_ready(kc, 100)
    kc.apply(trainingjob())
    trained = eventually(lambda: (c := tj_condition(kc, "Trained")) and c["reason"] == "BackendNotInstalled" and c,
                         what="Trained=False/BackendNotInstalled")
    assert trained["status"] == "False" and "install Kubeflow Trainer" in trained["message"]
    assert "PyTorchJob" in trained["message"]  # the other backend is named as the alternative
    assert tj_condition(kc, "Ready")["status"] == "False"  # type: ignore[index]


def _run_in_mlflow(tracking: str, namespace: str, run: str) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    experiment = client.get_experiment_by_name(f"{namespace}/{TJ}")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(f"{namespace}/{TJ}")
    created = client.create_run(experiment_id, tags={"loom.dev/run": run})
    client.log_param(created.info.run_id, "epochs", "4")
    return str(created.info.run_id)


@pytest.mark.usefixtures("kubeflow_crds")
def test_a_trainjob_is_followed_suspended_resumed_gated_and_retrained(
    kc: Kubectl, namespace: str, op: Operator, tracking: str
) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    inputs_ready(kc, 100)
    kc.apply(trainingjob())
    first = run_name(TJ, 100)
    child = eventually(lambda: kc.get("trainjob", first) if kc.run("get", "trainjob", first, check=False).returncode == 0
                       else None, what="the TrainJob child")
    assert child["metadata"]["ownerReferences"][0]["name"] == TJ
    assert child["spec"]["trainer"]["image"] == IMAGE and child["spec"]["suspend"] is False
    files = json.loads(kc.get("configmap", first)["data"]["train.json"])
    assert (files["features"]["snapshotId"], files["labels"]["snapshotId"], files["items"]["snapshotId"]) == (100, 200, 300)
    eventually(lambda: kc.get("trainingjob", TJ).get("status", {}).get("currentRun") == first,
               what="status.currentRun")

    # Kubeflow starts the pods; the trainer logs two epochs.
    run_id = _run_in_mlflow(tracking, namespace, first)
    patch_status(kc, f"trainjob/{first}", {"jobsStatus": [{"name": "node", "active": 1, "ready": 1, "succeeded": 0,
                                                            "failed": 0, "suspended": 0}]})
    for epoch in (1, 2):  # as the trainer does: the epoch's metrics, then the epoch that ended
        client.log_metric(run_id, "loss", 1.0 / epoch, step=epoch)
        client.log_metric(run_id, "epoch", epoch, step=epoch)
    progress = eventually(lambda: (p := kc.get("trainingjob", TJ)["status"].get("progress")) and p.get("epoch") == 2
                          and p, what="progress at epoch 2")
    assert (progress["totalEpochs"], progress["percent"], progress["loss"]) == (4, 50, 0.5)
    status = kc.get("trainingjob", TJ)["status"]
    assert status["phase"] == "Running" and status["replicas"]["active"] == 1
    assert "epoch 2/4 (50%)" in tj_condition(kc, "Trained")["message"]  # type: ignore[index]

    # suspend and resume reach the child both ways
    kc.run("patch", f"trainingjob/{TJ}", "--type=merge", "-p", '{"spec": {"suspend": true}}')
    eventually(lambda: kc.get("trainjob", first)["spec"]["suspend"] is True, what="the TrainJob suspended")
    patch_status(kc, f"trainjob/{first}", {"conditions": [kf_condition("Suspended", "Suspended", "suspended", now())],
                                           "jobsStatus": []})
    eventually(lambda: kc.get("trainingjob", TJ)["status"].get("phase") == "Suspended", what="phase Suspended")
    kc.run("patch", f"trainingjob/{TJ}", "--type=merge", "-p", '{"spec": {"suspend": false}}')
    eventually(lambda: kc.get("trainjob", first)["spec"]["suspend"] is False, what="the TrainJob resumed")
    patch_status(kc, f"trainjob/{first}", {"conditions": [kf_condition("Suspended", "Resumed", "resumed", now(), "False")]})

    # The trainer finishes: final metrics, a registered version; Kubeflow marks the TrainJob Complete.
    for key, value in {"epoch": 4, "recall_at_10": 0.081, "popularity_recall_at_10": 0.044}.items():
        client.log_metric(run_id, key, value, step=4 if key == "epoch" else 0)
    client.set_terminated(run_id)
    client.create_registered_model(MODEL)
    client.create_model_version(MODEL, f"runs:/{run_id}/model", run_id=run_id)
    patch_status(kc, f"trainjob/{first}", {"conditions": [
        kf_condition("Suspended", "Resumed", "resumed", now(), "False"),
        kf_condition("Complete", "JobsCompleted", "TrainJob is completed", now())]})
    gate = eventually(lambda: tj_condition(kc, "GatePassed"), what="the gate's verdict")
    assert gate["status"] == "True" and "1.84x popularity" in gate["message"]
    assert client.get_model_version_by_alias(MODEL, "challenger").version == "1"
    status = kc.get("trainingjob", TJ)["status"]
    assert status["phase"] == "Succeeded" and status["modelVersion"] == "1"
    assert status["lineage"]["runId"] == run_id and status["lineage"]["modelUri"] == f"models:/{MODEL}/1"
    assert {s["table"]: s["snapshotId"] for s in status["lineage"]["snapshots"]} == {
        "user-features (FeatureSet)": 100, "movielens/ratings": 200, "movielens/movies": 300}
    assert status["metrics"]["recall@10"] == 0.081
    assert tj_condition(kc, "Ready")["reason"] == "ModelRegistered"  # type: ignore[index]

    # New features: a second run, the first kept in the history.
    features_at(kc, 101)
    second = run_name(TJ, 101)
    eventually(lambda: kc.run("get", "trainjob", second, check=False).returncode == 0, what="the second TrainJob")
    runs = eventually(lambda: (r := kc.get("trainingjob", TJ)["status"]["runs"]) and len(r) == 2 and r,
                      what="two runs in status")
    assert [(r["name"], r["snapshotId"]) for r in runs] == [(second, 101), (first, 100)]
    assert runs[0]["reason"] == "new FeatureSet snapshot 101 (was 100)" and runs[1]["modelVersion"] == "1"


@pytest.mark.usefixtures("kubeflow_crds")
def test_the_pytorchjob_backend_gets_a_master_and_workers(kc: Kubectl, op: Operator, tmp_path: Path) -> None:
    inputs_ready(kc, 100)
    kc.apply(trainingjob(backend="PyTorchJob", numNodes=3))
    name = run_name(TJ, 100)
    job = eventually(lambda: kc.get("pytorchjob", name) if kc.run("get", "pytorchjob", name, check=False).returncode == 0
                     else None, what="the PyTorchJob child")
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert (replicas["Master"]["replicas"], replicas["Worker"]["replicas"]) == (1, 2)
    assert job["spec"]["runPolicy"]["backoffLimit"] == 2 and job["spec"]["runPolicy"]["activeDeadlineSeconds"] == 7200
    assert kc.run("get", "trainjobs", "-o", "name").stdout.strip() == ""


def test_with_the_local_executor_a_deleted_trainingjob_takes_its_runs_along(kc: Kubectl, namespace: str,
                                                                           tracking: str) -> None:
    running = start_operator(namespace, controllers=["TrainingJob"], mlflow_tracking_uri=tracking)
    with running.runner:
        inputs_ready(kc, 100)
        kc.apply(trainingjob())
        run = run_name(TJ, 100)
        runs = running.config.state_dir / "runs" / namespace
        eventually(lambda: (runs / run).is_dir(), what="the local run")
        kc.run("delete", "trainingjob", TJ, "--wait=true", "--timeout=60s")
        assert not (runs / run).exists()
    assert running.runner.exception is None, running.runner.output
