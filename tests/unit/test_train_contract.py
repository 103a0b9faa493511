"""train.json and the hyperparameters as the trainer reads them: the operator's camelCase, and errors
that name the field (the component exits 65 on them)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "components" / "train"))
from contract import InputError, load  # noqa: E402
from hyperparameters import Hyperparameters, parse  # noqa: E402

CONFIG = {
    "run": {"name": "r-1", "trainingJob": "ns/r", "uid": "u", "seed": 3, "image": "img"},
    "tracking": {"uri": "sqlite:////tmp/m.db", "experiment": "ns/r", "artifactLocation": None},
    "features": {"registry": "sqlite:////tmp/r.db", "project": "loom_ns", "view": "v", "snapshotId": 1,
                 "featureViewVersion": "abc"},
    "labels": {"catalogName": "default", "catalogProperties": {"type": "sql"}, "secretProperties": ["K=ENV"],
               "table": "ml.ratings", "snapshotId": 2, "userField": "userId", "itemField": "movieId",
               "labelField": "rating", "timestampField": "timestamp"},
    "items": None,
    "model": {"name": "m", "entrypoint": "two_tower", "hyperparameters": {"epochs": "2"}},
    "evaluation": {"metric": "recall@10", "k": 10, "holdoutFraction": 0.2, "positiveRating": 3.5,
                   "championAlias": "champion"},
}


def write(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "train.json"
    path.write_text(json.dumps(config))
    return path


def test_the_operators_train_json_is_read(tmp_path: Path) -> None:
    config = load(write(tmp_path, CONFIG))
    assert (config.run.training_job, config.labels.secret_properties, config.items) == ("ns/r", ["K=ENV"], None)
    assert config.evaluation.holdout_fraction == 0.2 and config.features.snapshot_id == 1


@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c["labels"].update(snapshotID=2), "labels.snapshotID: Extra inputs are not permitted"),
    (lambda c: c["evaluation"].update(holdoutFraction=1.5), "evaluation.holdoutFraction: Input should be less than 1"),
    (lambda c: c.pop("tracking"), "tracking: Field required"),
])
def test_bad_input_names_the_field(tmp_path: Path, change, message: str) -> None:
    config = json.loads(json.dumps(CONFIG))
    change(config)
    with pytest.raises(InputError, match=message.replace(".", r"\.")):
        load(write(tmp_path, config))


def test_hyperparameters_are_camel_case_strings_with_defaults() -> None:
    hp = parse({"embeddingDim": "32", "learningRate": "0.01", "logq": "0"})
    assert (hp.embedding_dim, hp.learning_rate, hp.logq, hp.epochs) == (32, 0.01, 0.0, Hyperparameters().epochs)
    assert parse(hp.to_params()) == hp


@pytest.mark.parametrize(("values", "message"), [
    ({"epochz": "2"}, "model.hyperparameters.epochz: unknown"),
    ({"epochs": "two"}, "model.hyperparameters.epochs: 'two' is not an integer"),
    ({"batchSize": "0"}, "model.hyperparameters.batchSize: '0' must be positive"),
])
def test_bad_hyperparameters_name_the_key(values: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(values)
