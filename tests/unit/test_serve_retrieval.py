"""The serving top-k is exact and deterministic: the k best scores, ties to the lower item, also
across the k-th place."""

from __future__ import annotations

import sys

import numpy as np

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "components"))
from serve.retrieval import recommend, top_k  # noqa: E402


def test_top_k_is_a_full_stable_sort_cut_at_k() -> None:
    rng = np.random.default_rng(3)
    scores = np.round(rng.normal(size=(20, 300)), 1).astype(np.float32)  # rounded: many ties
    full = np.stack([np.lexsort((np.arange(300), -row)) for row in scores])
    for k in (1, 10, 299, 300, 500):
        rows, picked = top_k(scores, k)
        np.testing.assert_array_equal(rows, full[:, :k])
        np.testing.assert_array_equal(picked, np.take_along_axis(scores, rows, axis=1))


def test_recommend_scores_by_inner_product() -> None:
    rng = np.random.default_rng(0)
    users, items = rng.normal(size=(3, 8)).astype(np.float32), rng.normal(size=(50, 8)).astype(np.float32)
    rows, scores = recommend(users, items, 5)
    full = users @ items.T
    np.testing.assert_allclose(scores, np.sort(full, axis=1)[:, ::-1][:, :5], rtol=1e-6)
    assert rows.shape == (3, 5) and (np.diff(scores, axis=1) <= 0).all()
