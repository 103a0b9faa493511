"""Top-k items by inner product, exact, in numpy: one matrix product [users × dim] @ [dim × items] and a
partial sort per user. Ties break to the lower item row, also at the k-th place, so an answer never
depends on how the partial sort happened to order equal scores."""

from __future__ import annotations

import numpy as np


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Columns of the k best scores of each row, best first, and those scores."""
    n, m = scores.shape
    k = min(k, m)
    rows = np.empty((n, k), np.int64)
    for r in range(n):
        row = scores[r]
        # Every column reaching the k-th largest score, then (-score, column) order.
        candidates = np.flatnonzero(row >= np.partition(row, m - k)[m - k]) if k < m else np.arange(m)
        rows[r] = candidates[np.lexsort((candidates, -row[candidates]))[:k]]
    return rows, np.take_along_axis(scores, rows, axis=1)


def recommend(user_vectors: np.ndarray, item_embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k items of largest inner product with each user vector (float32 [users, dim])."""
    # [items × dim] @ [dim × users], transposed back: the item matrix is read row-major as stored, which
    # for the few users of a request is ~2x faster than multiplying by its transpose.
    return top_k((item_embeddings @ user_vectors.T).T, k)
