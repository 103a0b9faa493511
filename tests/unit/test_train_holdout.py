"""The trainer's per-user temporal holdout: the newest positives out, training only before them."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "components" / "train"))
from holdout import held_out_count, temporal_split  # noqa: E402


def frame(rows: list[tuple[int, int, float, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user", "item", "rating", "time"])


def test_held_out_count_rounds_down_and_keeps_one_positive_to_train_on() -> None:
    assert [held_out_count(n, 0.2) for n in (0, 1, 4, 5, 9, 10, 11)] == [0, 0, 0, 1, 1, 2, 2]
    assert held_out_count(2, 0.9) == 1


def test_newest_positives_are_held_out_and_training_stops_before_them() -> None:
    rows = frame(
        [(1, 10 + t, 4.0, t) for t in range(1, 6)] + [(1, 99, 1.0, 3)]  # user 1: 5 positives, 1 held out
        + [(2, 20, 5.0, 1)]  # user 2: one positive, nothing held out
        + [(3, 30 + t, 3.5, t) for t in range(1, 11)] + [(3, 98, 2.0, 9), (3, 97, 2.0, 8)]
    )
    split = temporal_split(rows.sample(frac=1, random_state=1), "user", "item", "rating", "time", 0.2, 3.5)
    assert sorted(map(tuple, split.test[["user", "item"]].to_numpy().tolist())) == [(1, 15), (3, 39), (3, 40)]
    train = set(map(tuple, split.train[["user", "item"]].to_numpy().tolist()))
    assert train == ({(1, 10 + t) for t in range(1, 5)} | {(1, 99), (2, 20)}
                     | {(3, 30 + t) for t in range(1, 9)} | {(3, 97)})  # (3, 98) comes after the first held out


def test_ties_in_time_break_by_item_whatever_the_input_order() -> None:
    rows = frame([(1, item, 5.0, 7) for item in (3, 1, 4, 2, 5)])
    for seed in range(3):
        split = temporal_split(rows.sample(frac=1, random_state=seed), "user", "item", "rating", "time", 0.2, 3.5)
        assert split.test.item.tolist() == [5] and split.train.item.tolist() == [1, 2, 3, 4]
