"""Materialization against real Feast, Redis / SQLite and pyiceberg, on real MovieLens user features:
apply, gate, pin, materialize; new snapshots incrementally; a failed gate writes nothing."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from loom.drivers import feast_pins, feast_store
from loom.drivers.feast_store import StoreSettings
from loom.features.materialize import BEGINNING, MATERIALIZED, REJECTED, run
from tests.integration.features.conftest import Lake, definition_for, request_for

FEATURES = ["ratingCount", "meanRating", "favoriteGenre"]


def online(settings: StoreSettings, view: str, users: list[int]) -> dict[str, list]:
    store = feast_store.open_store(settings)
    return store.get_online_features(
        features=[f"{view}:{f}" for f in FEATURES], entity_rows=[{"userId": u} for u in users]
    ).to_dict()


def expected(batch: pa.Table, users: list[int]) -> dict[str, list]:
    rows = {r["userId"]: r for r in batch.to_pylist()}
    return {"userId": users, **{f: [rows[u][f] if u in rows else None for u in users] for f in FEATURES}}


def changed_users(before: pa.Table, after: pa.Table) -> list[int]:
    """Users whose features differ between the two batches (they rated in between)."""
    old = {r["userId"]: r["ratingCount"] for r in before.to_pylist()}
    return [r["userId"] for r in after.to_pylist() if r["userId"] in old and r["ratingCount"] != old[r["userId"]]]


def sample_users(batch: pa.Table) -> list[int]:
    users = sorted(batch["userId"].to_pylist())
    return users[:3] + users[-3:] + [10_000_000]  # plus one that does not exist


def test_apply_materialize_and_read_online(store: StoreSettings, lake: Lake, movielens: list[pa.Table]) -> None:
    first = movielens[0]
    table = lake.table(first)
    snapshot = table.current_snapshot().snapshot_id
    definition = definition_for(store, lake)
    assert feast_store.apply(store, definition) is True
    assert feast_store.apply(store, definition) is False  # same version: nothing written
    assert feast_store.applied_version(store, definition) == definition.version

    result = run(request_for(definition, store, lake, snapshot))

    assert result.passed and result.snapshot_id == snapshot
    assert result.rows_written == result.online_row_count == first.num_rows == 547  # users in the first 80%
    assert result.window_start == BEGINNING
    assert feast_pins.pinned_snapshot(definition.source.pin) == snapshot
    users = sample_users(first)
    assert online(store, definition.name, users) == expected(first, users)
    record = feast_pins.read_records(definition.source.pin)[MATERIALIZED]
    assert (record["version"], record["snapshot"], record["rows"]) == (definition.version, snapshot, first.num_rows)


def test_registry_and_pins_on_postgresql(postgres_store: StoreSettings, lake: Lake, movielens: list[pa.Table]) -> None:
    table = lake.table(movielens[0])
    definition = definition_for(postgres_store, lake)
    feast_store.apply(postgres_store, definition)
    result = run(request_for(definition, postgres_store, lake, table.current_snapshot().snapshot_id))
    assert result.passed and result.online_row_count == movielens[0].num_rows
    users = sample_users(movielens[0])
    assert online(postgres_store, definition.name, users) == expected(movielens[0], users)


def test_new_snapshot_is_materialized_incrementally(
    store: StoreSettings, lake: Lake, movielens: list[pa.Table]
) -> None:
    first, second = movielens
    table = lake.table(first)
    s1 = table.current_snapshot().snapshot_id
    definition = definition_for(store, lake)
    feast_store.apply(store, definition)
    run(request_for(definition, store, lake, s1))

    table.append(second)
    s2 = table.current_snapshot().snapshot_id
    result = run(request_for(definition, store, lake, s2, previous=s1))

    # The window starts at the earliest event the new snapshot appended, long before "now": the rows
    # Feast's materialize_incremental would have skipped as already covered.
    batch_time = pc.min(second["eventTimestamp"]).as_py()
    assert result.window_start == batch_time and batch_time < datetime.fromisoformat("2017-01-01T00:00:00+00:00")
    assert result.rows_written == second.num_rows
    assert feast_pins.pinned_snapshot(definition.source.pin) == s2
    users = sample_users(second)
    assert online(store, definition.name, users) == expected(second, users)
    changed = changed_users(first, second)[:10]
    assert changed, "the second batch changes some users"
    assert online(store, definition.name, changed) == expected(second, changed)

    again = run(request_for(definition, store, lake, s2, previous=s2))
    assert (again.rows_written, again.window_start) == (0, None)  # nothing new: nothing written


def test_pinning_an_older_snapshot_brings_its_values_back(
    store: StoreSettings, lake: Lake, movielens: list[pa.Table]
) -> None:
    first, second = movielens
    table = lake.table(first)
    s1 = table.current_snapshot().snapshot_id
    table.append(second)
    s2 = table.current_snapshot().snapshot_id
    definition = definition_for(store, lake)
    feast_store.apply(store, definition)
    run(request_for(definition, store, lake, s2))
    users = changed_users(first, second)[:10]
    assert online(store, definition.name, users) == expected(second, users)

    back = run(request_for(definition, store, lake, s1, previous=s2))  # s2 is no ancestor of s1: start over

    assert back.window_start == BEGINNING and back.rows_written == first.num_rows
    assert feast_pins.pinned_snapshot(definition.source.pin) == s1
    assert online(store, definition.name, users) == expected(first, users)


def test_failed_quality_check_writes_nothing(store: StoreSettings, lake: Lake, movielens: list[pa.Table]) -> None:
    first, second = movielens
    table = lake.table(first)
    s1 = table.current_snapshot().snapshot_id
    definition = definition_for(store, lake)
    feast_store.apply(store, definition)
    quality = {"minRows": 100, "features": [{"name": "meanRating", "maxNullFraction": 0.01}]}
    run(request_for(definition, store, lake, s1, quality=quality))
    users = sample_users(first)
    before = online(store, definition.name, users)

    # A malformed batch: every second user lost their mean rating.
    broken = second.set_column(
        second.schema.get_field_index("meanRating"), second.schema.field("meanRating"),
        pa.array([None if i % 2 else v for i, v in enumerate(second["meanRating"].to_pylist())], pa.float64()),
    )
    table.append(broken)
    s2 = table.current_snapshot().snapshot_id
    result = run(request_for(definition, store, lake, s2, previous=s1, quality=quality))

    assert not result.passed and result.rows_written == 0
    nulls = broken["meanRating"].null_count + first["meanRating"].null_count
    rows = first.num_rows + broken.num_rows
    assert result.quality.null_fractions["meanRating"] == pytest.approx(nulls / rows)
    assert f"({nulls} of {rows} rows) (expected <= 0.01)" in result.quality.summary()
    assert online(store, definition.name, users) == before
    assert feast_pins.pinned_snapshot(definition.source.pin) == s1
    records = feast_pins.read_records(definition.source.pin)
    assert records[MATERIALIZED]["snapshot"] == s1
    assert records[REJECTED]["snapshot"] == s2 and "maxNullFraction meanRating" in records[REJECTED]["failures"]


def test_removal_deletes_online_keys_and_leaves_the_lake_alone(
    store: StoreSettings, lake: Lake, movielens: list[pa.Table]
) -> None:
    table = lake.table(movielens[0])
    snapshot = table.current_snapshot().snapshot_id
    definition = definition_for(store, lake)
    feast_store.apply(store, definition)
    run(request_for(definition, store, lake, snapshot))
    assert feast_store.online_row_count(store, definition) == movielens[0].num_rows
    metadata, rows = table.metadata_location, table.scan().to_arrow()

    with pytest.raises(feast_store.DefinitionConflict):
        feast_store.remove(store, definition.name, "someone/else")  # not the owner
    assert feast_store.remove(store, definition.name, definition.owner) is True
    feast_pins.drop(definition.source.pin)

    assert feast_store.online_row_count(store, definition) == 0
    if store.online_kind.value == "redis":
        client = feast_store.redis_client(store)
        assert not list(client.scan_iter(match=b"*" + store.project.encode()))
    assert feast_store.get_view(feast_store.open_store(store), definition.name) is None
    assert feast_pins.pinned_snapshot(definition.source.pin) is None
    again = lake.catalog.load_table(table.name())
    assert again.metadata_location == metadata and again.current_snapshot().snapshot_id == snapshot
    assert again.scan().to_arrow().equals(rows)
    assert feast_store.remove(store, definition.name, definition.owner) is False  # already gone


def test_a_view_name_owned_by_another_featureset_is_refused(redis_store: StoreSettings, lake: Lake) -> None:
    mine = definition_for(redis_store, lake, name="user-features")
    feast_store.apply(redis_store, mine)
    theirs = definition_for(redis_store, lake, name="user.features")  # maps to the same Feast name
    with pytest.raises(feast_store.DefinitionConflict, match="belongs to"):
        feast_store.apply(redis_store, theirs)
    assert feast_store.applied_version(redis_store, mine) == mine.version
