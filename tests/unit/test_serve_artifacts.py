"""The serving runtime encodes online feature values exactly as the trainer encoded its training rows
(components/train/encoding.py), so the ONNX tower sees at serving time what it learned from."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "components"))
sys.path.insert(0, str(ROOT / "components" / "train"))
from encoding import UserFeatures as TrainingFeatures  # noqa: E402
from serve.artifacts import UserFeatures, load  # noqa: E402

TRAINING = pd.DataFrame({
    "ratingCount": pd.array([1, 5, 40, 300, None, 12], dtype="Int64"),
    "meanRating": [3.5, None, 4.0, 2.5, 1.0, 5.0],
    "favoriteGenre": ["Drama", "Comedy", None, "Drama", "Drama", "Horror"],
})
ONLINE = {  # as Feast's online response gives them: Python ints, floats, strings, None
    "ratingCount": [7, None, 0, 10_000, 3],
    "meanRating": [None, 4.5, 0.5, 3.0, 2.0],
    "favoriteGenre": ["Horror", "Western", None, "Drama", ""],
}


def test_online_values_encode_as_training_rows_do() -> None:
    trained = TrainingFeatures.fit(TRAINING, list(TRAINING.columns))
    serving = UserFeatures.from_json(json.loads(json.dumps(trained.to_json())))
    assert serving.names == ["ratingCount", "meanRating", "favoriteGenre"]
    numeric, categorical = serving.encode(ONLINE, 5)
    expected_numeric, expected_categorical = trained.encode(pd.DataFrame(ONLINE))
    assert numeric.dtype == np.float32 and categorical.dtype == np.int64
    np.testing.assert_array_equal(numeric, expected_numeric)
    np.testing.assert_array_equal(categorical, expected_categorical)


def test_a_model_without_user_features_encodes_empty_inputs() -> None:
    numeric, categorical = UserFeatures([], []).encode({}, 3)
    assert numeric.shape == (3, 0) and categorical.shape == (3, 0)


def test_load_refuses_another_format(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text(json.dumps({"format": "other/v9"}))
    with pytest.raises(ValueError, match="other/v9"):
        load(tmp_path)
