"""How raw values become the towers' inputs, fitted on the training rows and saved beside the model
(`features.json`) so serving encodes a user's online feature values exactly as training did.

User features are taken generically from the training set's feature columns: numbers become a
standardized value plus a missing flag (counts, being heavy-tailed, are log1p'd first); strings become
an index into a vocabulary (0 = missing or unseen). Item columns: numbers the same way, pipe-separated
strings (MovieLens genres) a multi-hot vector, other strings with few distinct values a one-hot vector;
free text (titles) is left out."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

MAX_TOKENS = 64  # of a pipe-separated column, the most frequent ones
MAX_ONE_HOT = 64  # a string column with more distinct values is free text


@dataclass(frozen=True)
class Numeric:
    name: str
    log: bool  # log1p before standardizing (counts)
    mean: float
    std: float

    def encode(self, values: pd.Series) -> np.ndarray:
        """Two columns: the standardized value (0 when missing) and a missing flag."""
        raw = pd.to_numeric(values, errors="coerce").astype(np.float64).to_numpy()
        missing = np.isnan(raw)
        x = np.log1p(np.clip(raw, 0, None)) if self.log else raw
        x = np.where(missing, 0.0, (x - self.mean) / self.std)
        return np.stack([x, missing.astype(np.float64)], axis=1).astype(np.float32)


@dataclass(frozen=True)
class Categorical:
    name: str
    vocabulary: list[str]  # index i + 1; 0 is missing or unseen

    def indices(self, values: pd.Series) -> np.ndarray:
        lookup = {v: i + 1 for i, v in enumerate(self.vocabulary)}
        return np.array([lookup.get(v, 0) if isinstance(v, str) else 0 for v in values], dtype=np.int64)


def fit_numeric(name: str, values: pd.Series) -> Numeric:
    raw = pd.to_numeric(values, errors="coerce").astype(np.float64)
    present = raw.dropna()
    x = present.to_numpy()
    # Counts (non-negative whole numbers spanning more than a decade) are heavy-tailed: log1p them.
    log = bool(x.size and (x >= 0).all() and (x == np.round(x)).all() and x.max() >= 10)
    x = np.log1p(x) if log else x
    mean = float(x.mean()) if x.size else 0.0
    std = float(x.std()) if x.size and x.std() > 0 else 1.0
    return Numeric(name, log, mean, std)


def fit_categorical(name: str, values: pd.Series, limit: int | None = None) -> Categorical:
    counts = values.dropna().astype(str).value_counts()
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return Categorical(name, [v for v, _ in ordered])


def _is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)


@dataclass(frozen=True)
class UserFeatures:
    """The user tower's feature inputs: `numeric` is [rows, 2 × len(numeric)], `categorical` is
    [rows, len(categorical)] of vocabulary indices."""

    numeric: list[Numeric] = field(default_factory=list)
    categorical: list[Categorical] = field(default_factory=list)

    @classmethod
    def fit(cls, rows: pd.DataFrame, columns: list[str]) -> UserFeatures:
        numeric = [fit_numeric(c, rows[c]) for c in columns if _is_numeric(rows[c])]
        categorical = [fit_categorical(c, rows[c]) for c in columns if not _is_numeric(rows[c])]
        return cls(numeric, categorical)

    @property
    def numeric_width(self) -> int:
        return 2 * len(self.numeric)

    @property
    def vocabulary_sizes(self) -> list[int]:
        return [len(c.vocabulary) + 1 for c in self.categorical]

    def encode(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        numeric = [f.encode(rows[f.name]) for f in self.numeric]
        categorical = [f.indices(rows[f.name]) for f in self.categorical]
        return (np.concatenate(numeric, axis=1) if numeric else np.zeros((len(rows), 0), np.float32),
                np.stack(categorical, axis=1) if categorical else np.zeros((len(rows), 0), np.int64))

    def to_json(self) -> dict[str, Any]:
        return {
            "numeric": [asdict(f) for f in self.numeric],
            "categorical": [asdict(f) for f in self.categorical],
            "inputs": {
                "numeric": "float32 [batch, 2 × numeric]: per feature (value, missing) with value = "
                           "((log1p(x) if log else x) - mean) / std, and 0 with missing = 1 when absent",
                "categorical": "int64 [batch, categorical]: 1 + position in vocabulary; 0 when absent or unseen",
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UserFeatures:
        return cls([Numeric(**f) for f in data["numeric"]], [Categorical(**f) for f in data["categorical"]])


def item_matrix(items: pd.DataFrame, key: str, order: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Dense item features, one row per item of `order` (item ids; missing ones get zeros) plus a
    leading zero row for the unknown item, and the names of the columns."""
    frame = items.drop_duplicates(key).set_index(key).reindex(order)
    blocks: list[np.ndarray] = []
    names: list[str] = []
    for column in frame.columns:
        values = frame[column]
        if _is_numeric(values):
            blocks.append(fit_numeric(column, values).encode(values))
            names += [column, f"{column}:missing"]
            continue
        text = values.dropna().astype(str)
        if text.str.contains("|", regex=False).mean() > 0.05:
            tokens = values.fillna("").astype(str).str.split("|")
            vocabulary = fit_categorical(column, tokens.explode().replace("", np.nan), MAX_TOKENS).vocabulary
            lookup = {t: i for i, t in enumerate(vocabulary)}
            hot = np.zeros((len(frame), len(vocabulary)), np.float32)
            for row, row_tokens in enumerate(tokens):
                for token in row_tokens:
                    if token in lookup:
                        hot[row, lookup[token]] = 1.0
            blocks.append(hot)
            names += [f"{column}={t}" for t in vocabulary]
        elif text.nunique() <= MAX_ONE_HOT:
            vocabulary = fit_categorical(column, values).vocabulary
            hot = np.zeros((len(frame), len(vocabulary)), np.float32)
            index = fit_categorical(column, values).indices(values)
            hot[index > 0, index[index > 0] - 1] = 1.0
            blocks.append(hot)
            names += [f"{column}={v}" for v in vocabulary]
    dense = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(frame), 0), np.float32)
    return np.vstack([np.zeros((1, dense.shape[1]), np.float32), dense]), names
