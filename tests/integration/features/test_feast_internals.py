"""What Loom relies on in Feast's internals (drivers/feast_internals.py), pinned against what Feast
itself writes to a real Redis: the client Feast builds (and the database it picks), the entity keys
(composite keys included), the hash fields of features and event times, the SCAN pattern of a
project's keys and the decoding of stored values. A Feast upgrade that changes any of it fails here."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.types import Array, Float64, Int64, String
from google.protobuf.timestamp_pb2 import Timestamp

from loom.domain.feature_views import feast_project
from loom.drivers.feast_internals import (
    EntityKeys,
    feature_decoder,
    feature_field,
    key_pattern,
    redis_client,
    redis_key_pattern,
    registered_layout,
    teardown_online,
    timestamp_field,
)
from loom.drivers.feast_store import OnlineKind, StoreSettings, open_store, repo_config

DB = 3  # not Redis's default database, so a client that ignored the connection string would see nothing
T0 = datetime(2024, 3, 1, 12, 30, tzinfo=timezone.utc)
JOIN_KEYS = ["userId", "genre"]  # not sorted: Feast sorts composite keys itself
FEATURES = ["ratingCount", "meanRating", "lastTitle", "recent"]
ROWS = pd.DataFrame({
    "userId": [1, 2, 2, 40_000_000_000],
    "genre": ["Drama", "Drama", "Comedy", "Sci-Fi"],
    "ratingCount": [3, 1, 7, 2],
    "meanRating": [4.5, 2.0, 3.25, 5.0],
    "lastTitle": ["Heat", None, "Clue", "Alien"],
    "recent": [[10, 11], [12], [], [13, 14, 15]],
    "eventTimestamp": [T0 + timedelta(minutes=i) for i in range(4)],
})


@pytest.fixture
def settings(tmp_path: Path, redis_server: str) -> StoreSettings:
    project = feast_project(f"t-{uuid.uuid4().hex[:10]}")
    return StoreSettings(project, f"sqlite:///{tmp_path / 'registry.db'}", OnlineKind.REDIS, f"{redis_server},db={DB}")


@pytest.fixture
def store(settings: StoreSettings, tmp_path: Path) -> FeatureStore:
    """Two views applied with Feast: one keyed by (userId, genre), one by userId alone; rows of both
    written by Feast's own write_to_online_store."""
    ROWS.to_parquet(tmp_path / "rows.parquet")
    source = FileSource(name="rows", path=str(tmp_path / "rows.parquet"), timestamp_field="eventTimestamp")
    user = Entity(name="user", join_keys=["userId"], value_type=ValueType.INT64)
    genre = Entity(name="genre", join_keys=["genre"], value_type=ValueType.STRING)
    features = [Field(name="ratingCount", dtype=Int64), Field(name="meanRating", dtype=Float64),
                Field(name="lastTitle", dtype=String), Field(name="recent", dtype=Array(Int64))]
    by_user_genre = FeatureView(name="user_genre", entities=[user, genre], ttl=timedelta(days=3650), source=source,
                                schema=[Field(name="userId", dtype=Int64), Field(name="genre", dtype=String), *features])
    by_user = FeatureView(name="user_totals", entities=[user], ttl=timedelta(days=3650), source=source,
                          schema=[Field(name="userId", dtype=Int64), features[0]])
    feast = open_store(settings)
    feast.apply([user, genre, by_user_genre, by_user])
    feast.write_to_online_store("user_genre", ROWS)
    feast.write_to_online_store("user_totals", ROWS[ROWS["genre"] == "Drama"])
    return feast


def keys_of(settings: StoreSettings) -> EntityKeys:
    return EntityKeys(repo_config(settings), JOIN_KEYS, [ValueType.INT64, ValueType.STRING])


def rows() -> list[dict[str, Any]]:
    return ROWS.to_dict("records")


def test_redis_client_reads_the_database_feast_writes(settings: StoreSettings, store: FeatureStore) -> None:
    client = redis_client(repo_config(settings))
    key = keys_of(settings).key([1, "Drama"])

    assert client.connection_pool.connection_kwargs["db"] == DB
    assert client.exists(key)
    host, port = settings.online_connection.split(",")[0].split(":")
    assert not redis.Redis(host=host, port=int(port), db=0).exists(key)


def test_entity_keys_and_fields_are_the_ones_feast_wrote(settings: StoreSettings, store: FeatureStore) -> None:
    client = redis_client(repo_config(settings))
    keys = keys_of(settings)
    for row in rows():
        key = keys.key([row["userId"], row["genre"]])
        expected = {feature_field("user_genre", f) for f in FEATURES} | {timestamp_field("user_genre")}
        assert set(client.hkeys(key)) == expected, row
        stored_time = Timestamp.FromString(client.hget(key, timestamp_field("user_genre")))
        assert stored_time.ToDatetime(tzinfo=timezone.utc) == row["eventTimestamp"]
    user_key = EntityKeys(repo_config(settings), ["userId"], [ValueType.INT64]).key([2])
    assert set(client.hkeys(user_key)) == {feature_field("user_totals", "ratingCount"), timestamp_field("user_totals")}


def test_the_key_pattern_matches_exactly_the_projects_keys_of_those_join_keys(
    settings: StoreSettings, store: FeatureStore
) -> None:
    config = repo_config(settings)
    client = redis_client(config)
    other_project = keys_of(dataclasses.replace(settings, project=settings.project + "_other")).key([1, "Drama"])
    client.hset(other_project, "x", "y")
    written = {keys_of(settings).key([row["userId"], row["genre"]]) for row in rows()}

    assert set(client.scan_iter(match=redis_key_pattern(config, JOIN_KEYS))) == written
    assert set(client.scan_iter(match=redis_key_pattern(config, sorted(JOIN_KEYS)))) == written
    single = EntityKeys(config, ["userId"], [ValueType.INT64])
    assert set(client.scan_iter(match=redis_key_pattern(config, ["userId"]))) == {single.key([1]), single.key([2])}


def test_the_registry_read_without_feast_gives_the_view_feast_applied(
    settings: StoreSettings, store: FeatureStore
) -> None:
    registered = registered_layout(settings.sqlalchemy_uri, settings.project, "user_genre")

    assert registered is not None and registered.online and registered.owner is None
    assert dict(registered.layout.join_keys) == {"userId": ValueType.INT64.value, "genre": ValueType.STRING.value}
    assert registered.layout.features == (("ratingCount", ValueType.INT64.value), ("meanRating", ValueType.DOUBLE.value),
                                          ("lastTitle", ValueType.STRING.value), ("recent", ValueType.INT64_LIST.value))
    assert key_pattern(registered.layout) == redis_key_pattern(repo_config(settings), JOIN_KEYS)
    assert registered_layout(settings.sqlalchemy_uri, settings.project, "no_such_view") is None
    assert registered_layout(settings.sqlalchemy_uri, settings.project + "_other", "user_genre") is None


def test_decoded_values_are_what_get_online_features_returns(settings: StoreSettings, store: FeatureStore) -> None:
    client = redis_client(repo_config(settings))
    keys, decode = keys_of(settings), feature_decoder()
    view = store.get_feature_view("user_genre")
    types = {f.name: f.dtype.to_value_type() for f in view.features}
    wanted = [*rows(), {"userId": 1, "genre": "Comedy"}]  # the last one was never written
    feast = store.get_online_features(
        features=[f"user_genre:{f}" for f in FEATURES],
        entity_rows=[{"userId": r["userId"], "genre": r["genre"]} for r in wanted],
    ).to_dict()

    for i, row in enumerate(wanted):
        key = keys.key([row["userId"], row["genre"]])
        for name in FEATURES:
            assert decode(client.hget(key, feature_field("user_genre", name)), types[name]) == feast[name][i]
    assert feast["ratingCount"][:4] == ROWS["ratingCount"].tolist() and feast["lastTitle"][1] is None
    assert feast["recent"][0] == [10, 11] and feast["ratingCount"][4] is None


def test_teardown_removes_a_views_online_data_and_leaves_the_registry_and_other_views(
    settings: StoreSettings, store: FeatureStore
) -> None:
    client = redis_client(repo_config(settings))
    user_key = EntityKeys(repo_config(settings), ["userId"], [ValueType.INT64]).key([2])
    assert client.exists(user_key)

    teardown_online(store, store.get_feature_view("user_totals"))

    assert not client.exists(user_key)
    assert store.get_feature_view("user_totals").name == "user_totals"  # still there to delete
    key = keys_of(settings).key([1, "Drama"])
    assert set(client.hkeys(key)) == {feature_field("user_genre", f) for f in FEATURES} | {
        timestamp_field("user_genre")}
