"""Real systems for the serving tests: real MovieLens user features (200 users) materialized by Feast
into a real Redis, a tiny two-tower model trained with the trainer's own code on the ratings of the
first 150 of them (so 50 users have online features but are unknown to the model) and exported as a
version's files, and the serve environment (.venv-serve, `make venv-serve`) to run the runtime in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from loom.drivers import feast_store
from loom.drivers.feast_store import StoreSettings
from loom.features.materialize import run as materialize
from tests.conftest import ROOT
from tests.integration.features.conftest import Lake, definition_for, lake, redis_server, redis_store, request_for  # noqa: F401
from tests.integration.training.conftest import movielens_slice  # noqa: F401

sys.path.insert(0, str(ROOT / "components" / "train"))
from export import write  # noqa: E402
from fit import build, train  # noqa: E402
from hyperparameters import Hyperparameters, parse  # noqa: E402
from model import TwoTower  # noqa: E402
from prepare import Columns, Prepared, prepare  # noqa: E402

SERVE_PYTHON = ROOT / ".venv-serve" / "bin" / "python"
FEATURES = ["ratingCount", "meanRating", "favoriteGenre"]
TRAINED_USERS = 150
HP = parse({"embeddingDim": "8", "hidden": "16", "epochs": "1", "batchSize": "512"})


def serve_env() -> dict[str, str]:
    if not SERVE_PYTHON.exists():
        pytest.fail(f"{SERVE_PYTHON} is missing: run `make venv-serve` (a prerequisite of `make test`)")
    return {**os.environ, "PYTHONPATH": str(ROOT / "components"), "OMP_NUM_THREADS": "1"}


def run_serve_python(script: str, payload: Any, timeout: float = 120) -> Any:
    """Run `script` with the serve environment's interpreter, `payload` as JSON on stdin; its JSON stdout."""
    proc = subprocess.run([str(SERVE_PYTHON), "-c", script], input=json.dumps(payload), capture_output=True,
                          text=True, timeout=timeout, env=serve_env(), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


@dataclass
class Online:
    """A FeatureSet's view materialized into Redis: Feast's settings and the runtime's description."""

    settings: StoreSettings
    view: str
    users: list[int]

    @property
    def source(self) -> dict[str, Any]:
        return {"connection": self.settings.online_connection, "project": self.settings.project,
                "view": self.view, "joinKeys": {"userId": "INT64"}}

    def feast_answers(self, users: list[int], features: list[str]) -> dict[str, list[Any]]:
        store = feast_store.open_store(self.settings)
        return store.get_online_features(features=[f"{self.view}:{f}" for f in features],
                                         entity_rows=[{"userId": u} for u in users]).to_dict()


@pytest.fixture
def online(redis_store: StoreSettings, lake: Lake, movielens_slice: dict[str, pa.Table]) -> Online:  # noqa: F811
    table = lake.table(movielens_slice["user_features"], name="user_features")
    definition = definition_for(redis_store, lake)
    feast_store.apply(redis_store, definition)
    assert materialize(request_for(definition, redis_store, lake, table.current_snapshot().snapshot_id)).passed
    users = sorted(set(movielens_slice["user_features"]["userId"].to_pylist()))
    return Online(redis_store, definition.name, users)


@dataclass
class Trained:
    model: TwoTower
    data: Prepared
    hp: Hyperparameters
    files: Path


@pytest.fixture
def trained(tmp_path: Path, movielens_slice: dict[str, pa.Table]) -> Iterator[Trained]:  # noqa: F811
    """One small epoch on the first TRAINED_USERS users, each rating joined with its user's latest
    features (what the online store holds), exported as a version's files."""
    ratings = movielens_slice["ratings"].to_pandas()
    ratings = ratings[ratings.userId <= TRAINED_USERS]
    features = movielens_slice["user_features"].to_pandas().sort_values("eventTimestamp").groupby("userId").tail(1)
    rows = ratings.merge(features[["userId", *FEATURES]], on="userId", how="left")
    data = prepare(rows, FEATURES, movielens_slice["movies"].to_pandas(),
                   Columns("userId", "movieId", "rating", "timestamp", "movieId"), 0.2, 3.5)
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = build(data, HP)
        train(model, data, HP, seed=0, k=10, evaluate_epochs=False)
        files = write(model, data, HP, tmp_path / "version")
    finally:
        torch.set_num_threads(threads)
    yield Trained(model.eval(), data, HP, files)


def model_settings(name: str, trained: Trained, online: Online, version: str = "1") -> dict[str, Any]:
    return {"name": name, "implementation": "serve.runtime.Recommender",
            "parameters": {"uri": f"file://{trained.files}", "version": version,
                           "extra": {"k": 10, "onlineFeatures": online.source}}}


def request(users: list[int], k: int | None = None) -> dict[str, Any]:
    inputs: list[dict[str, Any]] = [{"name": "user", "shape": [len(users)], "datatype": "INT64", "data": users}]
    if k is not None:
        inputs.append({"name": "k", "shape": [1], "datatype": "INT64", "data": [k]})
    return {"inputs": inputs}


def outputs(response: dict[str, Any]) -> dict[str, Any]:
    """The response's outputs by name, reshaped."""
    return {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in response["outputs"]}


def frame(answers: dict[str, list[Any]], names: list[str]) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(answers[name], dtype=object) for name in names})
