"""Real systems for the trainer's tests: a slice of real MovieLens (the repo's replay component, the
first 200 users) in a pyiceberg SQL catalog (ratings, movies, user features), the user features
applied to a real Feast registry and materialized (so the trainer's point-in-time join is Feast's), an
MLflow SQLite store, and train.json as the operator writes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from loom.domain.workloads import FILES_ENV
from loom.drivers import feast_store
from loom.drivers.feast_store import OnlineKind
from loom.features.materialize import run as materialize
from tests.conftest import ROOT
from tests.integration.features.conftest import Lake, definition_for, lake, make_settings, request_for  # noqa: F401

COMPONENT = ROOT / "components" / "train"
USERS = 200


@pytest.fixture(scope="session")
def movielens_slice(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pa.Table]:
    """Ratings of the initial load and the next batch, movies, and the user features as of each batch,
    for the first USERS users."""
    out = tmp_path_factory.mktemp("movielens")
    for step in ("initial", "next"):
        subprocess.run([sys.executable, str(ROOT / "components" / "movielens"), "--out", str(out), "--batches", "4",
                        step], check=True, capture_output=True, timeout=300)

    def users(table: pa.Table) -> pa.Table:
        return table.filter(pc.less_equal(table["userId"], USERS))

    ratings = pa.concat_tables(pq.read_table(p) for p in sorted((out / "ratings").glob("*.parquet")))
    features = pa.concat_tables(pq.read_table(p) for p in sorted((out / "user_features").glob("*.parquet")))
    return {"ratings": users(ratings), "user_features": users(features), "movies": pq.read_table(out / "movies.parquet")}


@dataclass
class Setup:
    """A lake and a Feast project holding the slice, and where the run's files and MLflow store go."""

    path: Path
    config: dict[str, Any]

    @property
    def tracking_uri(self) -> str:
        return self.config["tracking"]["uri"]

    def write_config(self, **changes: Any) -> Path:
        files = self.path / "files"
        files.mkdir(exist_ok=True)
        config = json.loads(json.dumps(self.config))
        for key, value in changes.items():
            section, _, field = key.partition(".")
            config[section][field] = value
        (files / "train.json").write_text(json.dumps(config))
        return files

    def train(self, *launcher: str, timeout: float = 240, **changes: Any) -> subprocess.CompletedProcess[str]:
        """Run the component (under `launcher`, e.g. torchrun, when given) as the executor does."""
        files = self.write_config(**changes)
        env = {**os.environ, FILES_ENV: str(files), "OMP_NUM_THREADS": "1"}
        command = [*launcher, str(COMPONENT)] if launcher else [sys.executable, str(COMPONENT)]
        return subprocess.run([*command, "--config-file", "train.json"], capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=self.path)


@pytest.fixture
def setup(tmp_path: Path, lake: Lake, movielens_slice: dict[str, pa.Table]) -> Iterator[Setup]:  # noqa: F811
    ratings = lake.table(movielens_slice["ratings"], name="ratings")
    movies = lake.table(movielens_slice["movies"], name="movies")
    user_features = lake.table(movielens_slice["user_features"], name="user_features")
    settings = make_settings(OnlineKind.SQLITE, tmp_path, "")
    definition = definition_for(settings, lake)
    feast_store.apply(settings, definition)
    features_snapshot = user_features.current_snapshot().snapshot_id
    assert materialize(request_for(definition, settings, lake, features_snapshot)).passed
    catalog = {"catalogName": "default", "catalogProperties": lake.properties, "secretProperties": []}
    yield Setup(tmp_path, {
        "run": {"name": "movielens-two-tower-1", "trainingJob": "ns/movielens-two-tower", "uid": "uid-1", "seed": 0,
                "image": "local"},
        "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "ns/movielens-two-tower",
                     "artifactLocation": f"file://{tmp_path / 'artifacts'}"},
        "features": {"registry": settings.registry_uri, "project": settings.project, "view": definition.name,
                     "snapshotId": features_snapshot, "featureViewVersion": definition.version},
        "labels": {**catalog, "table": "movielens.ratings", "snapshotId": ratings.current_snapshot().snapshot_id,
                   "userField": "userId", "itemField": "movieId", "labelField": "rating",
                   "timestampField": "timestamp"},
        "items": {**catalog, "table": "movielens.movies", "snapshotId": movies.current_snapshot().snapshot_id,
                  "keyField": "movieId"},
        "model": {"name": "movielens-two-tower", "entrypoint": "two_tower",
                  "hyperparameters": {"embeddingDim": "16", "hidden": "32", "epochs": "2", "batchSize": "512"}},
        "evaluation": {"metric": "recall@10", "k": 10, "holdoutFraction": 0.2, "positiveRating": 3.5,
                       "championAlias": "champion"},
    })
