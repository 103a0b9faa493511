"""A model version's files as the serving runtime uses them (written by components/train/export.py),
and the user features encoded as the trainer's `encoding.UserFeatures.encode` does, from online values
instead of a DataFrame (tests/unit/test_serve_artifacts.py holds the two equal)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "loom.dev/two-tower/v1"


@dataclass(frozen=True)
class Numeric:
    name: str
    log: bool
    mean: float
    std: float


@dataclass(frozen=True)
class Categorical:
    name: str
    vocabulary: list[str]


def _number(value: Any) -> float:
    """pandas' `to_numeric(errors="coerce")` of one value: NaN when absent or not a number."""
    if value is None or isinstance(value, (bytes, list, dict)):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


@dataclass(frozen=True)
class UserFeatures:
    """The user tower's feature encoders (features.json)."""

    numeric: list[Numeric]
    categorical: list[Categorical]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UserFeatures:
        return cls([Numeric(**f) for f in data["numeric"]], [Categorical(**f) for f in data["categorical"]])

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.numeric] + [f.name for f in self.categorical]

    def encode(self, values: Mapping[str, Sequence[Any]], rows: int) -> tuple[np.ndarray, np.ndarray]:
        """`numeric` float32 [rows, 2 × numeric] (per feature: standardized value, missing flag) and
        `categorical` int64 [rows, categorical] (1 + vocabulary position, 0 when absent or unseen)."""
        numeric = np.zeros((rows, 2 * len(self.numeric)), np.float32)
        for j, f in enumerate(self.numeric):
            raw = np.array([_number(v) for v in values[f.name]], np.float64)
            missing = np.isnan(raw)
            x = np.log1p(np.clip(raw, 0, None)) if f.log else raw
            numeric[:, 2 * j] = np.where(missing, 0.0, (x - f.mean) / f.std)
            numeric[:, 2 * j + 1] = missing
        categorical = np.zeros((rows, len(self.categorical)), np.int64)
        for j, c in enumerate(self.categorical):
            lookup = {v: i + 1 for i, v in enumerate(c.vocabulary)}
            categorical[:, j] = [lookup.get(v, 0) if isinstance(v, str) else 0 for v in values[c.name]]
        return numeric, categorical


@dataclass(frozen=True)
class Version:
    """What serving needs of one version: the user tower, unit item vectors, the raw ids, the encoders
    and each item's training positives (the ranking for a user nothing is known about)."""

    directory: Path
    item_embeddings: np.ndarray  # float32 [items, dim], C-contiguous
    items: list[Any]  # raw item id of each row of item_embeddings
    user_index: dict[Any, int]  # raw user id -> the tower's `user` input (1 + position; 0 is unknown)
    features: UserFeatures
    popularity: np.ndarray  # float32 [items]
    inputs: list[str]  # the ONNX tower's input names

    @property
    def user_tower(self) -> Path:
        return self.directory / "user_tower.onnx"


def load(directory: Path) -> Version:
    meta = json.loads((directory / "model.json").read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{directory} holds format {meta.get('format')!r}, not {FORMAT}")
    tower = meta["tower"]
    inputs = ["user"] + (["numeric"] if tower["user_numeric_width"] else []) + (
        ["categorical"] if tower["user_vocabulary_sizes"] else [])
    items = json.loads((directory / "items.json").read_text())
    embeddings = np.ascontiguousarray(np.load(directory / "item_embeddings.npy"), dtype=np.float32)
    popularity = np.load(directory / "popularity.npy").astype(np.float32)
    if not embeddings.shape[0] == len(items) == popularity.shape[0]:
        raise ValueError(f"{directory}: {len(items)} items, {embeddings.shape[0]} item vectors, "
                         f"{popularity.shape[0]} popularity counts")
    users = json.loads((directory / "users.json").read_text())
    return Version(directory, embeddings, items, {u: i + 1 for i, u in enumerate(users)},
                   UserFeatures.from_json(json.loads((directory / "features.json").read_text())), popularity, inputs)
