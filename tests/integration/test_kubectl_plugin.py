"""`kubectl loom` against the real kube-apiserver: the tests play the operator by writing realistic
statuses (what the four controllers write after a MovieLens lake was ingested, its features
materialized, a model trained and a canary started), run the console script, as kubectl runs a
plugin too, and check what it prints and what it changed. The last test runs the real operator and
checks that it answers `kubectl loom retrain` with a new run."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from loom import devcluster
from loom.builders.train import run_name
from loom.config import ExecutorKind
from tests.conftest import eventually
from tests.integration.conftest import Kubectl, condition, sample, start_operator
from tests.support.kubeflow import condition as kf_condition
from tests.support.kubeflow import kubeflow_cleanup, kubeflow_crds, patch_status

pytestmark = pytest.mark.integration
__all__ = ["kubeflow_cleanup", "kubeflow_crds"]  # fixtures used by name

PLUGIN = Path(sys.executable).parent / "kubectl-loom"
TJ, ISVC = "movielens-two-tower", "movie-recommender"
RUN_1, RUN_2 = run_name(TJ, 7001), run_name(TJ, 7002)


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def cond(type_: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": now(),
            "observedGeneration": 1}


LINEAGE = {"snapshots": [{"table": "user-features (FeatureSet)", "snapshotId": 7002},
                         {"table": "movielens/ratings", "snapshotId": 8002},
                         {"table": "movielens/movies", "snapshotId": 9001}],
           "featureViewVersion": "fv-3f2a", "runId": "9c1e5b7a2d", "loggedModelId": "m-7d3e",
           "registeredModel": "movielens-two-tower", "modelVersion": "2",
           "modelUri": "models:/movielens-two-tower/2", "image": "local"}


def revision(version: str) -> dict[str, str]:
    return {"name": f"{ISVC}-v{version}", "modelName": "movielens-two-tower", "modelVersion": version,
            "modelUri": f"file:///var/tmp/loom/mlflow/artifacts/{version}/model"}


STATUSES: dict[str, dict[str, Any]] = {
    "datalake/movielens": {
        "observedGeneration": 1, "tableCount": 3,
        "tables": [{"name": "ratings", "currentSnapshotId": 8003, "rowCount": 100836, "dataFiles": 4},
                   {"name": "movies", "currentSnapshotId": 9001, "rowCount": 9742, "dataFiles": 1},
                   {"name": "user_features", "currentSnapshotId": 7003, "rowCount": 610, "dataFiles": 3}],
        "conditions": [cond("CatalogReady", "True", "CatalogReady"), cond("TablesReady", "True", "TablesReady"),
                       cond("Ready", "True", "Ready", "3 tables")]},
    "featureset/user-features": {
        "observedGeneration": 1, "sourceSnapshotId": 7003, "featureViewVersion": "fv-3f2a", "onlineRowCount": 610,
        "conditions": [cond("SourceReady", "True", "SourceReady"),
                       cond("DataQuality", "False", "QualityGateFailed", "meanRating: 3% nulls > 1%"),
                       cond("Ready", "False", "QualityGateFailed", "meanRating: 3% nulls > 1%")]},
    f"trainingjob/{TJ}": {
        "observedGeneration": 1, "phase": "Running", "currentRun": RUN_2, "modelVersion": "2",
        "progress": {"epoch": 3, "totalEpochs": 8, "percent": 38, "loss": 0.4121, "metrics": {"recall@10": 0.0613}},
        "metrics": {"recall@10": 0.081}, "lineage": LINEAGE,
        "runs": [{"name": RUN_2, "phase": "Succeeded", "reason": "new FeatureSet snapshot 7002 (was 7001)",
                  "snapshotId": 7002, "modelVersion": "2",
                  "inputs": [{"table": "movielens/ratings", "snapshotId": 8002},
                             {"table": "movielens/movies", "snapshotId": 9001}]},
                 {"name": RUN_1, "phase": "Succeeded", "reason": "first run", "snapshotId": 7001, "modelVersion": "1",
                  "inputs": [{"table": "movielens/ratings", "snapshotId": 8001},
                             {"table": "movielens/movies", "snapshotId": 9001}]}],
        "conditions": [cond("DataReady", "True", "DataReady"), cond("Trained", "True", "Succeeded"),
                       cond("Ready", "True", "ModelRegistered", "version 2 is registered")]},
    f"inferenceservice/{ISVC}": {
        "observedGeneration": 1, "phase": "Progressing", "stable": revision("1"), "canary": revision("2"),
        "canaryWeight": 20, "failedChecks": 1, "iterations": 2,
        "conditions": [cond("ModelAvailable", "True", "ModelAvailable"),
                       cond("Ready", "True", "Progressing", "canary v2 at 20%")]},
}


def play_the_operator(kc: Kubectl, statuses: dict[str, dict[str, Any]] = STATUSES) -> None:
    for name in ("datalake", "featureset", "trainingjob", "inferenceservice"):
        kc.apply(sample(name))
    for resource, status in statuses.items():
        patch_status(kc, resource, status)


def loom(cluster: devcluster.Cluster, namespace: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(PLUGIN), "--kubeconfig", str(cluster.kubeconfig), "-n", namespace, *args],
                          capture_output=True, text=True, timeout=60)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def cells(text: str) -> list[dict[str, str]]:
    """The table's rows, each cell under its header."""
    header, *lines = text.splitlines()
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    return [{h: line[a:b].strip() for h, a, b in zip(header.split(), starts, [*starts[1:], None])} for line in lines]


def columns(text: str) -> dict[str, dict[str, str]]:
    """The rows of a table of one namespace, by NAME."""
    return {row["NAME"]: row for row in cells(text)}


def test_status_shows_every_resource_as_kubectl_runs_the_plugin(
        kc: Kubectl, kubectl: Kubectl, namespace: str, cluster: devcluster.Cluster) -> None:
    play_the_operator(kc)
    env = {**os.environ, "PATH": f"{PLUGIN.parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([kubectl.binary, "loom", "status", "--kubeconfig", str(cluster.kubeconfig), "-n", namespace],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    rows = columns(proc.stdout)
    assert list(rows) == ["movielens", "user-features", TJ, ISVC]  # the lifecycle's order
    assert rows["movielens"] | {"AGE": ""} == {"KIND": "DataLake", "NAME": "movielens", "PHASE": "-", "READY": "True",
                                               "REASON": "Ready", "PROGRESS": "3 tables, 111188 rows", "AGE": ""}
    assert (rows["user-features"]["READY"], rows["user-features"]["REASON"]) == ("False", "QualityGateFailed")
    assert rows["user-features"]["PROGRESS"] == "snapshot 7003, 610 online rows"
    assert rows[TJ]["PHASE"] == "Running" and rows[TJ]["REASON"] == "ModelRegistered"
    assert rows[TJ]["PROGRESS"] == "epoch 3/8 (38%), loss 0.4121, recall@10 0.0613, v2"
    assert rows[ISVC]["PHASE"] == "Progressing"
    assert rows[ISVC]["PROGRESS"] == "stable v1, canary v2 20%/50%, checks failed 1/3"
    assert all(row["AGE"].endswith("s") for row in rows.values())

    everywhere = cells(loom(cluster, "default", "status", "-A").stdout)
    assert {(r["KIND"], r["NAME"]) for r in everywhere if r["NAMESPACE"] == namespace} == {
        ("DataLake", "movielens"), ("FeatureSet", "user-features"), ("TrainingJob", TJ), ("InferenceService", ISVC)}
    assert loom(cluster, "default", "status").stdout == "No Loom resources found in namespace default.\n"


def test_status_of_one_resource_lists_its_conditions_and_gives_data_with_o(
        kc: Kubectl, namespace: str, cluster: devcluster.Cluster) -> None:
    play_the_operator(kc)
    text = loom(cluster, namespace, "status", "fs/user-features").stdout
    table, conditions = text.split("\n\n")
    assert list(columns(table)) == ["user-features"]
    assert [line.split()[:3] for line in conditions.splitlines()[1:]] == [
        ["SourceReady", "True", "SourceReady"], ["DataQuality", "False", "QualityGateFailed"],
        ["Ready", "False", "QualityGateFailed"]]
    assert conditions.splitlines()[2].endswith("meanRating: 3% nulls > 1%")

    [item] = json.loads(loom(cluster, namespace, "status", f"trainingjob/{TJ}", "-o", "json").stdout)["items"]
    assert (item["kind"], item["namespace"], item["name"], item["phase"], item["ready"]) == (
        "TrainingJob", namespace, TJ, "Running", "True")
    assert item["progress"] == {"run": RUN_2, "epoch": 3, "totalEpochs": 8, "percent": 38, "loss": 0.4121,
                                "metric": "recall@10", "value": 0.0613, "modelVersion": "2"}
    items = yaml.safe_load(loom(cluster, namespace, "status", "-o", "yaml").stdout)["items"]
    assert [i["kind"] for i in items] == ["DataLake", "FeatureSet", "TrainingJob", "InferenceService"]

    missing = loom(cluster, namespace, "status", "isvc/nope", check=False)
    assert missing.returncode == 1 and missing.stderr == (
        f'error: inferenceservice "nope" not found in namespace "{namespace}"\n')


def test_status_watch_draws_again_when_the_operator_writes(
        kc: Kubectl, namespace: str, cluster: devcluster.Cluster) -> None:
    play_the_operator(kc)
    watching = subprocess.Popen([str(PLUGIN), "--kubeconfig", str(cluster.kubeconfig), "-n", namespace, "status",
                                 f"isvc/{ISVC}", "--watch", "--interval", "0.2"], stdout=subprocess.PIPE)
    assert watching.stdout is not None
    output = watching.stdout.fileno()
    printed = b""

    def shown(text: str, timeout: float = 30) -> str:
        """What the watch printed, read until `text` is in it."""
        nonlocal printed
        deadline = time.monotonic() + timeout
        while text.encode() not in printed:
            ready, _, _ = select.select([output], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"the watch did not show {text!r} in {timeout}s: {printed.decode()}"
            printed += os.read(output, 65536)
        return printed.decode()

    try:
        first = shown("checks failed 1/3")
        assert first.count("movie-recommender ") == 1  # one frame while nothing changes
        patch_status(kc, f"inferenceservice/{ISVC}", {"canaryWeight": 30, "failedChecks": 0})
        frames = shown("canary v2 30%/50%, checks failed 0/3").split("\n\n")
        assert frames[0].startswith("KIND") and any(f.startswith("KIND") for f in frames[2:])  # whole frames
    finally:
        watching.send_signal(signal.SIGINT)
        assert watching.wait(timeout=30) == 0


def test_lineage_traces_the_served_version_to_the_snapshots_its_training_read(
        kc: Kubectl, namespace: str, cluster: devcluster.Cluster) -> None:
    served = {**STATUSES, f"inferenceservice/{ISVC}": {
        "observedGeneration": 1, "phase": "Succeeded", "stable": revision("2"), "lineage": LINEAGE,
        "conditions": [cond("Ready", "True", "Succeeded", "v2 takes all traffic")]}}
    play_the_operator(kc, served)
    tree = loom(cluster, namespace, "lineage", f"isvc/{ISVC}").stdout
    assert tree == f"""\
InferenceService {namespace}/{ISVC} (Succeeded)
│   stable revision {ISVC}-v2
└── model movielens-two-tower version 2 (models:/movielens-two-tower/2)
    └── TrainingJob {TJ}, run {RUN_2} (Succeeded, new FeatureSet snapshot 7002 (was 7001))
        │   MLflow run 9c1e5b7a2d, logged model m-7d3e, image local
        ├── FeatureSet user-features: snapshot 7002 of movielens/user_features, feature view fv-3f2a (materialized now: 7003, fv-3f2a)
        ├── DataLake table movielens/ratings: snapshot 8002 (current 8003)
        └── DataLake table movielens/movies: snapshot 9001 (current)
"""
    data = yaml.safe_load(loom(cluster, namespace, "lineage", f"inferenceservice/{ISVC}", "-o", "yaml").stdout)
    assert data["model"] == {"name": "movielens-two-tower", "version": "2", "uri": "models:/movielens-two-tower/2"}
    assert data["run"]["runId"] == "9c1e5b7a2d" and data["features"]["snapshotId"] == 7002
    assert [(t["table"], t["snapshotId"]) for t in data["tables"]] == [("movielens/ratings", 8002),
                                                                      ("movielens/movies", 9001)]
    assert json.loads(loom(cluster, namespace, "lineage", f"tj/{TJ}", "-o", "json").stdout)["run"]["name"] == RUN_2

    refused = loom(cluster, namespace, "lineage", "dl/movielens", check=False)
    assert refused.returncode == 1 and "lineage starts at an InferenceService or a TrainingJob" in refused.stderr


def test_promote_abort_suspend_and_resume_patch_what_the_operator_honours(
        kc: Kubectl, namespace: str, cluster: devcluster.Cluster) -> None:
    play_the_operator(kc)
    assert loom(cluster, namespace, "promote", ISVC).stdout == (
        f"inferenceservice/{ISVC}: promotion of the canary requested (loom.dev/promote)\n")
    loom(cluster, namespace, "abort", f"isvc/{ISVC}")
    annotations = kc.get("inferenceservice", ISVC)["metadata"]["annotations"]
    assert (annotations["loom.dev/promote"], annotations["loom.dev/abort"]) == ("true", "true")

    generation = kc.get("trainingjob", TJ)["metadata"]["generation"]
    loom(cluster, namespace, "suspend", f"tj/{TJ}")
    assert kc.get("trainingjob", TJ)["spec"]["suspend"] is True
    loom(cluster, namespace, "resume", TJ)
    tj = kc.get("trainingjob", TJ)
    assert tj["spec"]["suspend"] is False and tj["metadata"]["generation"] == generation + 2

    wrong = loom(cluster, namespace, "promote", f"tj/{TJ}", check=False)
    assert wrong.returncode == 1 and "this command takes one of kind InferenceService" in wrong.stderr
    gone = loom(cluster, namespace, "retrain", "nope", check=False)
    assert gone.returncode == 1 and 'trainingjob "nope" not found' in gone.stderr


@pytest.fixture
def training_operator(namespace: str) -> Iterator[None]:
    """The real operator, reconciling TrainingJobs with the Kubernetes executor (the test plays
    Kubeflow), at its default resync: a loom.dev/retrain change wakes the object's loop itself."""
    running = start_operator(namespace, executor=ExecutorKind.KUBERNETES, controllers=["TrainingJob"],
                             image_main="registry.example.com/loom/main:0.1.0")
    with running.runner:
        yield
    assert running.runner.exception is None, running.runner.output


@pytest.mark.usefixtures("kubeflow_crds", "kubeflow_cleanup", "training_operator")
def test_the_operator_answers_retrain_with_a_new_run_and_removes_the_request(
        kc: Kubectl, namespace: str, cluster: devcluster.Cluster) -> None:
    kc.apply(sample("datalake"))
    kc.apply(sample("featureset"))
    patch_status(kc, "datalake/movielens", {"conditions": [cond("Ready", "True", "Ready")], "tables": [
        {"name": "ratings", "currentSnapshotId": 8001}, {"name": "movies", "currentSnapshotId": 9001}]})
    patch_status(kc, "featureset/user-features", {"conditions": [cond("Ready", "True", "Ready")],
                                                  "sourceSnapshotId": 7001, "featureViewVersion": "fv-3f2a"})
    kc.apply(sample("trainingjob"))
    eventually(lambda: kc.run("get", "trainjob", RUN_1, check=False).returncode == 0, what="the first TrainJob")
    patch_status(kc, f"trainjob/{RUN_1}", {"conditions": [kf_condition("Failed", "JobsFailed", "OOMKilled", now())]})
    eventually(lambda: kc.get("trainingjob", TJ).get("status", {}).get("phase") == "Failed", what="the run failed")

    said = loom(cluster, namespace, "retrain", f"tj/{TJ}").stdout
    assert said == f"trainingjob/{TJ}: new run requested (loom.dev/retrain)\n"
    runs = eventually(lambda: (r := kc.get("trainingjob", TJ)["status"]["runs"]) and len(r) == 2 and r,
                      what="a second run in status")
    assert (runs[0]["reason"], runs[0]["snapshotId"], runs[1]["name"]) == (
        "retrain requested by annotation loom.dev/retrain", 7001, RUN_1)
    eventually(lambda: kc.run("get", "trainjob", runs[0]["name"], check=False).returncode == 0,
               what="the requested run's TrainJob")
    tj = eventually(lambda: (t := kc.get("trainingjob", TJ)) and "loom.dev/retrain" not in
                    t["metadata"].get("annotations", {}) and t, what="the request removed")
    assert condition(tj, "Trained")["reason"] == "Pending"  # type: ignore[index]
    assert runs[0]["name"] != RUN_1
    events = json.loads(kc.run("get", "events", "--field-selector", f"involvedObject.name={TJ}", "-o",
                               "json").stdout)["items"]
    assert any(e["reason"] == "RetrainRequested" and runs[0]["name"] in e["message"] for e in events)
