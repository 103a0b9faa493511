"""The trainer's exported files: the ONNX user tower computes what torch computes (checked with ONNX's
reference evaluator, as serving has no torch), and a version's files rebuilt as a champion score the
same holdout exactly as the model that wrote them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
import torch
from onnx.reference import ReferenceEvaluator

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "components" / "train"))
from champion import champion_scores  # noqa: E402
from export import load, write  # noqa: E402
from fit import build, scores, train, user_vectors  # noqa: E402
from hyperparameters import parse  # noqa: E402
from prepare import Columns, Prepared, prepare  # noqa: E402

COLUMNS = Columns("userId", "movieId", "rating", "timestamp", "movieId")
HP = parse({"embeddingDim": "8", "hidden": "16", "epochs": "1", "batchSize": "64"})


def synthetic(features: bool) -> Prepared:
    rng = np.random.default_rng(0)
    n = 1500
    rows = pd.DataFrame({"userId": rng.integers(100, 140, n), "movieId": rng.integers(1, 60, n),
                         "rating": rng.choice([1.0, 3.0, 4.0, 5.0], n),
                         "timestamp": pd.to_datetime(rng.integers(0, 10**6, n), unit="s", utc=True)})
    columns = []
    if features:
        rows["ratingCount"] = pd.array(rng.integers(1, 500, n), dtype="Int64")
        rows["meanRating"] = np.where(rng.random(n) < 0.1, np.nan, rng.random(n) * 5)
        rows["favoriteGenre"] = rng.choice(["Drama", "Comedy", None], n)
        columns = ["ratingCount", "meanRating", "favoriteGenre"]
    items = pd.DataFrame({"movieId": np.arange(1, 70), "title": [f"Movie {i}" for i in range(1, 70)],
                          "year": np.where(np.arange(1, 70) % 7 == 0, np.nan, 1990 + np.arange(1, 70) % 20),
                          "genres": rng.choice(["Drama|Comedy", "Comedy", "Action|Drama|Thriller"], 69)})
    return prepare(rows, columns, items, COLUMNS, 0.2, 3.5)


@pytest.mark.parametrize("features", [True, False])
def test_onnx_user_tower_equals_torch(tmp_path: Path, features: bool) -> None:
    data = synthetic(features)
    torch.manual_seed(0)
    model = build(data, HP)
    train(model, data, HP, seed=0, k=10)
    files = write(model, data, HP, tmp_path)

    graph = onnx.load(files / "user_tower.onnx")
    onnx.checker.check_model(graph, full_check=True)
    names = [i.name for i in graph.graph.input]
    assert names == (["user", "numeric", "categorical"] if features else ["user"])
    users = np.arange(data.users)  # every known user and the unknown one (0)
    feeds = {"user": users, "numeric": data.query_numeric[users], "categorical": data.query_categorical[users]}
    (onnx_vectors,) = ReferenceEvaluator(graph).run(None, {name: feeds[name] for name in names})
    np.testing.assert_allclose(onnx_vectors, user_vectors(model.eval(), data, HP, users).numpy(), atol=1e-5)

    items = json.loads((files / "items.json").read_text())
    assert items == data.item_ids.tolist() and json.loads((files / "users.json").read_text()) == data.user_ids.tolist()
    np.testing.assert_allclose(np.load(files / "item_embeddings.npy"), model.item_embeddings()[1:].numpy(), atol=1e-6)


def test_a_champion_scores_the_holdout_as_its_own_model_did(tmp_path: Path) -> None:
    data = synthetic(True)
    torch.manual_seed(0)
    model = build(data, HP)
    train(model, data, HP, seed=0, k=10)
    write(model, data, HP, tmp_path)
    users = data.holdout.users
    rebuilt, hp, _, user_ids, item_ids = load(tmp_path)
    assert hp == HP and user_ids.tolist() == data.user_ids.tolist()
    expected = scores(model, data, HP, users)
    got = champion_scores(tmp_path, data, users)
    np.testing.assert_allclose(got[:, 1:], expected[:, 1:], atol=1e-5)
    assert np.isneginf(got[:, 0]).all()  # the unknown item is never recommended
