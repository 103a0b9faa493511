"""The per-user temporal holdout every number of a run is measured on: for each user, the newest
`fraction` of their positives are held out; training sees only what the user did before the first of
them. Deterministic: rows are ordered by (time, item), so ties never depend on the input order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame  # every row (positive or not) before each user's holdout
    test: pd.DataFrame  # the held-out positives


def held_out_count(positives: int, fraction: float) -> int:
    """How many of a user's positives are held out: the newest `fraction`, rounded down, none for a
    user with too few positives to spare one (a user keeps at least one positive to train on)."""
    return min(int(np.floor(positives * fraction + 1e-9)), max(positives - 1, 0))


def temporal_split(rows: pd.DataFrame, user: str, item: str, label: str, timestamp: str,
                   fraction: float, positive: float) -> Split:
    """Split `rows` per user: held out are the newest positives (label >= `positive`); training keeps
    the user's rows ordered before the first held-out one."""
    ordered = rows.sort_values([user, timestamp, item], kind="stable").reset_index(drop=True)
    is_positive = (ordered[label] >= positive).to_numpy()
    users = ordered[user].to_numpy()
    position = ordered.groupby(user, sort=False).cumcount().to_numpy()
    # Rank of each positive among its user's positives, newest last.
    positive_rank = pd.Series(is_positive.astype(np.int64)).groupby(users).cumsum().to_numpy() - 1
    counts = pd.Series(is_positive.astype(np.int64)).groupby(users).transform("sum").to_numpy()
    held = np.array([held_out_count(int(c), fraction) for c in counts]) if len(counts) else np.zeros(0, np.int64)
    test_mask = is_positive & (positive_rank >= counts - held)
    # The position of each user's first held-out row; training is everything before it.
    first_test = pd.Series(np.where(test_mask, position, np.iinfo(np.int64).max)).groupby(users).transform("min")
    train_mask = position < first_test.to_numpy()
    return Split(ordered[train_mask].reset_index(drop=True), ordered[test_mask].reset_index(drop=True))
