"""Loom's online reader (pipelined redis-py reads of Feast's layout, decoded by Feast's helpers)
returns exactly what Feast's own get_online_features returns for the same store and request."""

from __future__ import annotations

import random

import pyarrow as pa

from loom.drivers import feast_store
from loom.drivers.feast_online import OnlineFeatureReader
from loom.drivers.feast_store import StoreSettings
from loom.features.materialize import run
from tests.integration.features.conftest import Lake, definition_for, request_for


def test_reader_returns_what_feast_returns(redis_store: StoreSettings, lake: Lake, movielens: list[pa.Table]) -> None:
    table = lake.table(movielens[0])
    definition = definition_for(redis_store, lake)
    feast_store.apply(redis_store, definition)
    run(request_for(definition, redis_store, lake, table.current_snapshot().snapshot_id))
    store = feast_store.open_store(redis_store)
    users = sorted(movielens[0]["userId"].to_pylist())
    random.seed(7)
    requests = [[users[0]], [10_000_000], random.sample(users, 100) + [10_000_001, users[5]]]

    reader = OnlineFeatureReader(redis_store, definition.name)
    subset = OnlineFeatureReader(redis_store, definition.name, ["favoriteGenre", "meanRating"])
    for ids in requests:
        rows = [{"userId": u} for u in ids]
        feast = store.get_online_features(features=[f"{definition.name}:{f}" for f in reader.features],
                                          entity_rows=rows).to_dict()
        assert reader.read(rows) == feast
        feast_subset = store.get_online_features(
            features=[f"{definition.name}:favoriteGenre", f"{definition.name}:meanRating"], entity_rows=rows
        ).to_dict()
        assert subset.read(rows) == feast_subset
    everyone = reader.read([{"userId": u} for u in users])
    lake_rows = {r["userId"]: r for r in movielens[0].to_pylist()}
    assert everyone["meanRating"] == [lake_rows[u]["meanRating"] for u in users]
