"""The MovieLens replay writes every real rating exactly once, oldest first, with as-of user features."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

COMPONENT = Path(__file__).resolve().parents[2] / "components" / "movielens"


def _step(out: Path, step: str) -> dict:
    proc = subprocess.run([sys.executable, str(COMPONENT), "--out", str(out), "--batches", "2", step],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def test_replay_covers_all_ratings_in_time_order(tmp_path: Path) -> None:
    assert _step(tmp_path, "initial")["ratings"] == 80003
    assert _step(tmp_path, "initial")["skipped"] == "already written"  # idempotent
    _step(tmp_path, "next")
    _step(tmp_path, "next")
    assert _step(tmp_path, "next")["skipped"] == "no batches left"

    batches = [pq.read_table(p) for p in sorted((tmp_path / "ratings").glob("*.parquet"))]
    assert sum(b.num_rows for b in batches) == 100004
    for older, newer in zip(batches, batches[1:]):
        assert pc.max(older["timestamp"]).as_py() <= pc.min(newer["timestamp"]).as_py()
    assert pq.read_table(tmp_path / "movies.parquet").num_rows == 9066


def test_user_features_are_as_of_their_batch(tmp_path: Path) -> None:
    _step(tmp_path, "initial")
    _step(tmp_path, "next")
    ratings = pq.read_table(tmp_path / "ratings" / "ratings-000.parquet")
    first = pq.read_table(tmp_path / "user_features" / "user-features-000.parquet").to_pandas()
    second = pq.read_table(tmp_path / "user_features" / "user-features-001.parquet").to_pandas()
    counts = ratings.to_pandas().groupby("userId").size()
    assert (first.set_index("userId").ratingCount == counts).all()
    assert first.eventTimestamp.nunique() == 1
    assert first.eventTimestamp.iloc[0] == ratings.to_pandas().timestamp.max()
    assert second.eventTimestamp.iloc[0] > first.eventTimestamp.iloc[0]
    assert second.ratingCount.sum() > first.ratingCount.sum()
