"""`kubectl loom status` rows and their text, pure: objects as the API server returns them in, rows
and kubectl-style tables out."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from loom.kubectl.render import age, progress, status_table, table
from loom.kubectl.status import row, rows, telling

NOW = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
CREATED = "2026-03-01T11:55:00Z"


def cond(type_: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": "2026-03-01T11:58:00Z"}


def obj(kind: str, name: str, spec: dict[str, Any] | None = None, namespace: str = "ml",
        **status: Any) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name, "namespace": namespace, "creationTimestamp": CREATED,
                                       "generation": 1},
            "spec": spec or {}, "status": status}


TRAINING = obj("TrainingJob", "movielens-two-tower", {"evaluation": {"metric": "recall@10"}},
               phase="Running", currentRun="movielens-two-tower-1a2b3c4d", modelVersion="2",
               progress={"epoch": 3, "totalEpochs": 8, "percent": 38, "loss": 0.41234,
                         "metrics": {"recall@10": 0.0613, "ndcg@10": 0.03}},
               metrics={"recall@10": 0.081},
               conditions=[cond("DataReady", "True", "DataReady"), cond("Trained", "Unknown", "Running"),
                           cond("GatePassed", "True", "GatePassed"),
                           cond("Ready", "True", "ModelRegistered", "version 2 is registered")])
SERVING = obj("InferenceService", "movie-recommender",
              {"rollout": {"canary": {"threshold": 3, "stepWeight": 10, "maxWeight": 50}}},
              phase="Progressing", canaryWeight=20, failedChecks=1,
              stable={"name": "movie-recommender-v2", "modelName": "movielens-two-tower", "modelVersion": "2",
                      "modelUri": "file:///m/2"},
              canary={"name": "movie-recommender-v3", "modelName": "movielens-two-tower", "modelVersion": "3",
                      "modelUri": "file:///m/3"},
              conditions=[cond("ModelAvailable", "True", "ModelAvailable"),
                          cond("Ready", "True", "Progressing", "canary at 20%")])
LAKE = obj("DataLake", "movielens", tableCount=3,
           tables=[{"name": "ratings", "rowCount": 100836}, {"name": "movies", "rowCount": 9742}, {"name": "u"}],
           conditions=[cond("CatalogReady", "True", "CatalogReady"),
                       cond("SchemaCompatible", "False", "UnsafeSchemaChange", "column rating: double -> float"),
                       cond("Ingested", "Unknown", "Pending"),
                       cond("Ready", "False", "UnsafeSchemaChange", "column rating: double -> float")])
FEATURES = obj("FeatureSet", "user-features", sourceSnapshotId=7001, onlineRowCount=610)


def test_a_trainingjob_shows_epochs_loss_and_the_gates_metric_of_the_running_run() -> None:
    r = row(TRAINING)
    assert (r.kind, r.namespace, r.name, r.phase, r.ready, r.reason) == (
        "TrainingJob", "ml", "movielens-two-tower", "Running", "True", "ModelRegistered")
    assert r.progress == {"run": "movielens-two-tower-1a2b3c4d", "epoch": 3, "totalEpochs": 8, "percent": 38,
                          "loss": 0.41234, "metric": "recall@10", "value": 0.0613, "modelVersion": "2"}
    assert progress(r.kind, r.progress) == "epoch 3/8 (38%), loss 0.4123, recall@10 0.0613, v2"


def test_a_finished_trainingjob_shows_its_final_evaluation() -> None:
    done = obj("TrainingJob", "t", {}, phase="Succeeded", modelVersion="3", metrics={"recall@10": 0.081})
    assert progress("TrainingJob", row(done).progress) == "recall@10 0.081, v3"


def test_an_inferenceservice_shows_the_canary_weight_its_failed_checks_and_both_versions() -> None:
    r = row(SERVING)
    assert r.progress == {"stableVersion": "2", "canaryVersion": "3", "canaryWeight": 20, "maxWeight": 50,
                          "failedChecks": 1, "threshold": 3}
    assert progress(r.kind, r.progress) == "stable v2, canary v3 20%/50%, checks failed 1/3"
    steps = obj("InferenceService", "s", {"rollout": {"canary": {"stepWeights": [5, 25, 60]}}},
                stable=SERVING["status"]["stable"])
    assert progress("InferenceService", row(steps).progress) == "stable v2"
    assert row(steps).progress["maxWeight"] == 60 and row(steps).progress["threshold"] == 3


def test_not_ready_names_the_blocking_condition_and_its_message() -> None:
    r = row(LAKE)
    assert (r.ready, r.reason, r.message) == ("False", "UnsafeSchemaChange", "column rating: double -> float")
    assert progress(r.kind, r.progress) == "3 tables, 110578 rows"


@pytest.mark.parametrize("conditions, reason", [
    ([], None),
    ([cond("Ready", "True", "Ready")], "Ready"),
    ([cond("A", "True", "Fine"), cond("B", "Unknown", "Waiting"), cond("Ready", "Unknown", "Waiting")], "Waiting"),
    ([cond("A", "Unknown", "Waiting"), cond("B", "False", "Broken"), cond("Ready", "False", "Broken")], "Broken"),
    ([cond("Ready", "False", "InvalidSpec")], "InvalidSpec"),
])
def test_the_telling_condition(conditions: list[dict[str, Any]], reason: str | None) -> None:
    said = telling(conditions)
    assert (said["reason"] if said else None) == reason


def test_an_object_without_status_has_dashes_not_errors() -> None:
    fresh = {"kind": "FeatureSet", "metadata": {"name": "f", "namespace": "ml"}, "spec": {}}
    assert status_table(rows([fresh]), NOW, namespaces=False).splitlines()[1].split() == [
        "FeatureSet", "f", "-", "-", "-", "-", "-"]


def test_rows_follow_the_lifecycle_and_the_table_lines_up_like_kubectls() -> None:
    listed = rows([SERVING, TRAINING, FEATURES, LAKE, obj("DataLake", "a-lake", namespace="zz")])
    assert [(r.kind, r.name) for r in listed] == [("DataLake", "movielens"), ("DataLake", "a-lake"),
                                                  ("FeatureSet", "user-features"),
                                                  ("TrainingJob", "movielens-two-tower"),
                                                  ("InferenceService", "movie-recommender")]
    text = status_table(listed, NOW, namespaces=True)
    header, *lines = text.splitlines()
    assert header.split() == ["NAMESPACE", "KIND", "NAME", "PHASE", "READY", "REASON", "PROGRESS", "AGE"]
    assert lines[2].split() == ["ml", "FeatureSet", "user-features", "-", "-", "-", "snapshot", "7001,", "610",
                                "online", "rows", "5m"]
    columns = [header.index(f" {h}") + 1 for h in ("KIND", "NAME", "PROGRESS", "AGE")]
    assert all(line[c - 1] == " " and line[c] != " " for line in lines for c in columns)
    assert "NAMESPACE" not in status_table(listed, NOW, namespaces=False)


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (119, "119s"), (120, "2m"), (270, "4m30s"), (600, "10m"), (10799, "179m"), (10800, "3h"),
    (4 * 3600 + 60 * 5, "4h5m"), (30 * 3600, "30h"), (3 * 86400 + 4 * 3600, "3d4h"), (40 * 86400, "40d"),
    (800 * 86400, "2y70d"), (3000 * 86400, "8y"),
])
def test_ages_read_as_kubectls(seconds: int, text: str) -> None:
    created = (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert age(created, NOW) == text
    assert age(None, NOW) == "-"


def test_a_table_pads_columns_by_three_spaces_and_trims_line_ends() -> None:
    assert table(["A", "LONGER"], [["xyz", ""], ["1", "2"]]) == "A     LONGER\nxyz\n1     2\n"
