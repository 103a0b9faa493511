"""The champion (the version holding the serving alias) scored on this run's holdout, so the gate
compares both models on the same users and items. The champion is rebuilt from its own files and fed
this run's data as it would be at serving time: each user's history from this run's training
positives and their features encoded with the champion's own encoders. A user it never saw gets its
unknown-user id (trained by user-id dropout) plus that history; an item it never saw cannot be
recommended by it (scored -inf), which is what serving it would do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from export import load
from prepare import Prepared


def _index(ids: np.ndarray, known: np.ndarray) -> np.ndarray:
    """1 + position of each id in `known`, 0 where it is not there."""
    lookup = {v: i + 1 for i, v in enumerate(known.tolist())}
    return np.array([lookup.get(v, 0) for v in ids.tolist()], dtype=np.int64)


@torch.no_grad()
def champion_scores(directory: Path, data: Prepared, users: np.ndarray) -> np.ndarray:
    """Scores of `users` (this run's indices) for this run's items, by the champion's model."""
    model, hp, features, user_ids, item_ids = load(directory)
    item_map = np.concatenate([[0], _index(data.item_ids, item_ids)])
    bags = data.bags(users, data.history_ends(users), hp.history_length, hp.history_decay)
    flat = torch.from_numpy(item_map[bags.flat.numpy()])
    weights = bags.weights * (flat > 0)
    rows = torch.repeat_interleave(torch.arange(len(users)),
                                   torch.diff(torch.cat([bags.offsets, torch.tensor([len(flat)])])))
    sums = torch.zeros(len(users)).index_add_(0, rows, weights)
    weights = weights / sums.clamp(min=1e-12)[rows]
    history = model.pooled_history(type(bags)(flat, bags.offsets, weights))
    query = data.query_rows.reindex(users)
    for f in [*features.numeric, *features.categorical]:
        if f.name not in query.columns:
            query[f.name] = pd.Series(np.nan, index=query.index, dtype=object)
    numeric, categorical = features.encode(query)
    champion_users = torch.from_numpy(_index(data.user_ids[users - 1], user_ids))
    vectors = model.user(champion_users, history, torch.from_numpy(numeric), torch.from_numpy(categorical))
    items = model.item_embeddings()[torch.from_numpy(item_map)]
    scores = (vectors @ items.T).numpy().astype(np.float64)
    scores[:, item_map == 0] = -np.inf
    return scores
