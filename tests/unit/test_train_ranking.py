"""Ranking metrics, EASE and popularity of the trainer, on cases small enough to work out by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "components" / "train"))
from baselines import ease_scores, ease_weights, popularity  # noqa: E402
from ranking import Holdout, evaluate, recall_ndcg, top_k  # noqa: E402


def csr(rows: list[list[int]], width: int) -> sp.csr_matrix:
    dense = np.zeros((len(rows), width))
    for i, items in enumerate(rows):
        dense[i, items] = 1
    return sp.csr_matrix(dense)


def test_top_k_skips_seen_items_and_the_unknown_item_and_breaks_ties_by_index() -> None:
    scores = np.array([[9.0, 0.9, 0.8, 0.8, 0.3], [9.0, 0.1, 0.2, 0.3, 0.4]])
    ranked = top_k(scores, csr([[1], []], 5), 3)
    assert ranked.tolist() == [[2, 3, 4], [4, 3, 2]]


def test_recall_and_ndcg_by_hand() -> None:
    ranked = np.array([[2, 3], [4, 1], [1, 2]])
    relevant = csr([[3, 4], [4], []], 5)  # the third user has nothing held out: not counted
    recall, ndcg = recall_ndcg(ranked, relevant, 2)
    # user 0: item 3 at rank 2 of 2 relevant; user 1: item 4 at rank 1 of 1.
    assert recall == pytest.approx((1 / 2 + 1) / 2)
    assert ndcg == pytest.approx(((1 / np.log2(3)) / (1 + 1 / np.log2(3)) + 1) / 2)


def test_recall_counts_every_relevant_item_in_the_denominator() -> None:
    assert recall_ndcg(np.array([[1]]), csr([[1, 2, 3]], 4), 1) == (pytest.approx(1 / 3), pytest.approx(1.0))


def test_evaluate_ranks_within_the_holdout() -> None:
    holdout = Holdout(np.array([1]), csr([[1]], 4), csr([[2]], 4))
    assert evaluate(np.array([[5.0, 4.0, 3.0, 2.0]]), holdout, 1) == (1.0, 1.0)


def test_ease_matches_the_closed_form_by_hand() -> None:
    # X = [[1,1,0],[0,1,1]], λ = 1: P = (XᵀX + I)⁻¹ = [[5,-2,1],[-2,4,-2],[1,-2,5]] / 8 and B = -P / diag(P).
    # A fourth item nobody liked stays out of the inverse and scores 0.
    weights = ease_weights(csr([[0, 1], [1, 2]], 4), 1.0)
    expected = np.array([[0, 0.5, -0.2, 0], [0.4, 0, 0.4, 0], [-0.2, 0.5, 0, 0], [0, 0, 0, 0]])
    assert weights == pytest.approx(expected)
    assert ease_scores(sp.csr_matrix([[1.0, 1, 0, 0]]), weights)[0] == pytest.approx([0.4, 0.5, 0.2, 0])


def test_popularity_counts_positives() -> None:
    assert popularity(csr([[1, 2], [2]], 4)).tolist() == [0, 1, 2, 0]
