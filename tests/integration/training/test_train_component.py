"""The trainer end to end as the executors run it: real MovieLens (200 users) from Iceberg, its user
features joined point-in-time by Feast, real torch training, MLflow SQLite tracking and registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from mlflow import MlflowClient
from onnx.reference import ReferenceEvaluator

from loom.domain.workloads import EXIT_INPUT_ERROR
from tests.integration.training.conftest import Setup

FINAL = ("recall_at_10", "ndcg_at_10", "popularity_recall_at_10", "popularity_ndcg_at_10", "ease_recall_at_10",
         "ease_ndcg_at_10")


def result_line(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_a_run_is_tracked_registered_and_loadable_without_torch(setup: Setup, tmp_path: Path) -> None:
    proc = setup.train()
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = result_line(proc.stdout)
    assert result["modelVersion"] == "1" and result["users"] <= 200 and result["items"] == 9066
    assert result["rows"] > 10_000 and set(FINAL) <= set(result["metrics"])
    assert "registered version 1" in proc.stderr.strip().splitlines()[-1]

    client = MlflowClient(setup.tracking_uri)
    run = client.get_run(result["runId"])
    assert run.info.run_name == "movielens-two-tower-1" and run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["loom.dev/run"] == "movielens-two-tower-1" and tags["loom.dev/trainingjob"] == "ns/movielens-two-tower"
    assert tags["loom.dev/uid"] == "uid-1" and tags["loom.dev/image"] == "local"
    for section, table in (("labels", "movielens.ratings"), ("items", "movielens.movies")):
        assert tags[f"loom.dev/snapshot.{table}"] == str(setup.config[section]["snapshotId"])
    assert tags["loom.dev/feature-view-version"] == setup.config["features"]["featureViewVersion"]
    assert "loom.dev/champion-version" not in tags
    assert run.data.params["epochs"] == "2" and run.data.params["embeddingDim"] == "16"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2]
    assert [m.value for m in client.get_metric_history(run.info.run_id, "epoch")] == [1, 2]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "recall_at_10")] == [1, 2]
    for name in FINAL:
        assert run.data.metrics[name] == result["metrics"][name]
    # Two small epochs on 200 users prove the plumbing, not the quality (bench/model_quality.py does).
    assert all(0 <= value <= 1 for value in result["metrics"].values()) and result["metrics"]["recall_at_10"] > 0

    version = client.get_model_version("movielens-two-tower", "1")
    assert version.tags == {"loom.dev/run": "movielens-two-tower-1", "loom.dev/trainingjob": "ns/movielens-two-tower"}
    assert version.run_id == result["runId"] and version.source == f"models:/{result['loggedModelId']}"
    assert client.get_registered_model("movielens-two-tower").aliases == {}  # the operator moves aliases

    files = Path(client.get_logged_model(result["loggedModelId"]).artifact_location.removeprefix("file://"))
    model = onnx.load(files / "user_tower.onnx")
    onnx.checker.check_model(model, full_check=True)
    users, items = json.loads((files / "users.json").read_text()), json.loads((files / "items.json").read_text())
    embeddings = np.load(files / "item_embeddings.npy")
    assert embeddings.shape == (len(items), 16) and embeddings.dtype == np.float32
    assert np.load(files / "popularity.npy").shape == (len(items),)
    features = json.loads((files / "features.json").read_text())
    assert [f["name"] for f in features["numeric"]] == ["ratingCount", "meanRating"]
    assert [f["name"] for f in features["categorical"]] == ["favoriteGenre"]
    feeds = {"user": np.array([1, len(users), 0], np.int64),
             "numeric": np.zeros((3, 4), np.float32), "categorical": np.zeros((3, 1), np.int64)}
    (embedding,) = ReferenceEvaluator(model).run(None, feeds)
    assert embedding.shape == (3, 16) and np.allclose(np.linalg.norm(embedding, axis=1), 1, atol=1e-5)


def test_bad_input_exits_65_naming_the_field(setup: Setup) -> None:
    proc = setup.train(**{"model.hyperparameters": {"epochz": "2"}})
    assert proc.returncode == EXIT_INPUT_ERROR, proc.stderr[-2000:]
    assert "model.hyperparameters.epochz" in proc.stderr.strip().splitlines()[-1]
    proc = setup.train(**{"run.surprise": 1})
    assert proc.returncode == EXIT_INPUT_ERROR
    assert "run.surprise: Extra inputs are not permitted" in proc.stderr.strip().splitlines()[-1]


def test_the_champion_is_scored_on_the_same_holdout(setup: Setup) -> None:
    first = setup.train(**{"model.hyperparameters": {"embeddingDim": "16", "hidden": "32", "epochs": "1"}})
    assert first.returncode == 0, first.stderr[-4000:]
    client = MlflowClient(setup.tracking_uri)
    client.set_registered_model_alias("movielens-two-tower", "champion", "1")  # as the operator would

    second = setup.train(**{"run.name": "movielens-two-tower-2",
                            "model.hyperparameters": {"embeddingDim": "16", "hidden": "32", "epochs": "1"}})
    assert second.returncode == 0, second.stderr[-4000:]
    result = result_line(second.stdout)
    assert result["modelVersion"] == "2"
    run = client.get_run(result["runId"])
    assert run.data.tags["loom.dev/champion-version"] == "1"
    for name in ("champion_recall_at_10", "champion_ndcg_at_10"):
        assert 0 < result["metrics"][name] <= 1 and run.data.metrics[name] == result["metrics"][name]
    # Same data, seed and hyperparameters: the champion is the same model, scored on the same holdout.
    assert result["metrics"]["champion_recall_at_10"] == pytest.approx(result["metrics"]["recall_at_10"], abs=1e-6)
    assert client.get_registered_model("movielens-two-tower").aliases == {"champion": 1}
