"""Top-k retrieval metrics over a score matrix, with each user's training positives excluded from the
ranking (they are known, not predictions). Binary relevance: the held-out positives."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class Holdout:
    """The users to evaluate (rows of `seen` and `relevant`), as item-index sets in CSR matrices."""

    users: np.ndarray  # user indices, one per evaluated row
    seen: sp.csr_matrix  # training positives per row: excluded from ranking
    relevant: sp.csr_matrix  # held-out positives per row


def top_k(scores: np.ndarray, seen: sp.csr_matrix, k: int) -> np.ndarray:
    """Indices of the k best items per row, best first, never an excluded one nor column 0 (the
    unknown item). Ties break by the lower item index, so every model is ranked the same way."""
    scores = np.array(scores, dtype=np.float64, copy=True)
    rows, cols = seen.nonzero()
    scores[rows, cols] = -np.inf
    scores[:, 0] = -np.inf
    k = min(k, scores.shape[1])
    # argpartition then a stable sort of the candidates on (-score, index).
    candidates = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else \
        np.tile(np.arange(scores.shape[1]), (scores.shape[0], 1))
    picked = np.take_along_axis(scores, candidates, axis=1)
    order = np.lexsort((candidates, -picked), axis=1)
    return np.take_along_axis(candidates, order, axis=1)


def recall_ndcg(ranked: np.ndarray, relevant: sp.csr_matrix, k: int) -> tuple[float, float]:
    """Mean recall@k (hits in the top k over all relevant items, the usual definition, so a user with
    many held-out positives cannot reach 1) and NDCG@k over the rows that have a relevant item."""
    recalls, ndcgs = [], []
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    for row in range(ranked.shape[0]):
        truth = relevant.indices[relevant.indptr[row]:relevant.indptr[row + 1]]
        if truth.size == 0:
            continue
        hits = np.isin(ranked[row, :k], truth)
        recalls.append(hits.sum() / truth.size)
        ndcgs.append((hits * discounts[:hits.size]).sum() / discounts[:min(k, truth.size)].sum())
    if not recalls:
        return 0.0, 0.0
    return float(np.mean(recalls)), float(np.mean(ndcgs))


def evaluate(scores: np.ndarray, holdout: Holdout, k: int) -> tuple[float, float]:
    """recall@k and NDCG@k of a (rows of holdout.users × items) score matrix."""
    return recall_ndcg(top_k(scores, holdout.seen, k), holdout.relevant, k)
