"""From rows to arrays: index users and items (0 is the unknown one), encode features, split the
holdout, and gather what training, evaluation and export need. Everything is a pure function of the
input rows, so every rank of a distributed run builds the same arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from encoding import UserFeatures, item_matrix
from holdout import temporal_split
from model import Bags
from ranking import Holdout


@dataclass(frozen=True)
class Columns:
    user: str
    item: str
    label: str
    timestamp: str
    item_key: str


@dataclass(frozen=True)
class Prepared:
    user_ids: np.ndarray  # raw id of user index i + 1
    item_ids: np.ndarray  # raw id of item index i + 1
    item_features: np.ndarray  # [items + 1, width], row 0 the unknown item
    item_feature_names: list[str]
    user_features: UserFeatures
    train_users: np.ndarray  # one entry per training positive, ordered by user then time
    train_items: np.ndarray
    sequence: np.ndarray  # = train_items: each user's positives oldest first, users one after another
    sequence_start: np.ndarray  # per user index, where their positives start in `sequence`
    sequence_end: np.ndarray  # per user index, where their positives end (exclusive)
    train_numeric: np.ndarray  # the user's features as of that positive (point-in-time)
    train_categorical: np.ndarray
    positives: sp.csr_matrix  # [users + 1, items + 1] training positives
    query_numeric: np.ndarray  # [users + 1, ...] each user's features as of their last training row
    query_categorical: np.ndarray
    query_rows: pd.DataFrame  # the raw feature values behind query_*, indexed by user index
    holdout: Holdout
    rows: int  # label rows read

    @property
    def users(self) -> int:
        return len(self.user_ids) + 1

    @property
    def items(self) -> int:
        return len(self.item_ids) + 1

    def bags(self, users: np.ndarray, ends: np.ndarray, length: int, decay: float) -> Bags:
        """Histories of `users` ending before positions `ends` of `sequence` (exclusive): the last
        `length` positives, weighted decay^age (age 0 = the newest), normalized per row."""
        starts = np.maximum(ends - length, self.sequence_start[users])
        counts = ends - starts
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        flat_positions = np.arange(counts.sum()) - np.repeat(offsets, counts) + np.repeat(starts, counts)
        age = np.repeat(ends - 1, counts) - flat_positions
        weights = decay ** age.astype(np.float64)
        sums = np.bincount(np.repeat(np.arange(len(ends)), counts), weights=weights, minlength=len(ends))
        weights = weights / np.repeat(np.where(sums > 0, sums, 1.0), counts)
        return Bags(torch.from_numpy(self.sequence[flat_positions].astype(np.int64)), torch.from_numpy(offsets),
                    torch.from_numpy(weights.astype(np.float32)))

    def history_ends(self, users: np.ndarray) -> np.ndarray:
        """Where each user's whole training history ends in `sequence` (for evaluation and serving)."""
        return self.sequence_end[users]


def prepare(rows: pd.DataFrame, feature_columns: list[str], items: pd.DataFrame | None, columns: Columns,
            fraction: float, positive: float) -> Prepared:
    """`rows` are the training set (labels with their point-in-time features); `items` the item table."""
    rows = rows.dropna(subset=[columns.user, columns.item, columns.label, columns.timestamp])
    split = temporal_split(rows, columns.user, columns.item, columns.label, columns.timestamp, fraction, positive)
    user_ids = np.sort(rows[columns.user].unique())
    known_items = rows[columns.item].unique()
    if items is not None:
        known_items = np.union1d(known_items, items[columns.item_key].dropna().unique())
    item_ids = np.sort(known_items)
    item_features, item_feature_names = item_matrix(
        items if items is not None else pd.DataFrame({columns.item_key: item_ids}), columns.item_key, item_ids)

    def user_index(values: pd.Series) -> np.ndarray:
        return np.searchsorted(user_ids, values.to_numpy()) + 1

    def item_index(values: pd.Series) -> np.ndarray:
        return np.searchsorted(item_ids, values.to_numpy()) + 1

    train = split.train
    user_features = UserFeatures.fit(train, feature_columns)
    liked = train[train[columns.label] >= positive]
    train_numeric, train_categorical = user_features.encode(liked)
    shape = (len(user_ids) + 1, len(item_ids) + 1)
    lu, li = user_index(liked[columns.user]), item_index(liked[columns.item])
    positives = sp.csr_matrix((np.ones(len(liked), np.float32), (lu, li)), shape=shape)
    positives.sum_duplicates()
    positives.data[:] = 1.0
    positives.sort_indices()

    last = train.groupby(columns.user, sort=False).tail(1)  # train is ordered by user, time, item
    query_numeric = np.zeros((shape[0], user_features.numeric_width), np.float32)
    query_categorical = np.zeros((shape[0], len(user_features.categorical)), np.int64)
    if len(last):
        qn, qc = user_features.encode(last)
        query_numeric[user_index(last[columns.user])] = qn
        query_categorical[user_index(last[columns.user])] = qc
    if user_features.numeric:
        query_numeric[0, 1::2] = 1.0  # the unknown user: every feature missing
    query_rows = last[feature_columns].set_axis(user_index(last[columns.user]), axis=0)

    test_users = user_index(split.test[columns.user])
    relevant_all = sp.csr_matrix((np.ones(len(test_users), np.float32),
                                  (test_users, item_index(split.test[columns.item]))), shape=shape)
    evaluated = np.unique(test_users)
    holdout = Holdout(evaluated, positives[evaluated], relevant_all[evaluated].tocsr())
    lu, li = lu.astype(np.int64), li.astype(np.int64)
    first = np.searchsorted(lu, np.arange(shape[0]), side="left")
    end = np.searchsorted(lu, np.arange(shape[0]), side="right")
    return Prepared(user_ids, item_ids, item_features, item_feature_names, user_features, lu, li, li,
                    first, end, train_numeric, train_categorical, positives, query_numeric,
                    query_categorical, query_rows, holdout, len(rows))
