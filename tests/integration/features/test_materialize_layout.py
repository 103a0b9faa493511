"""Loom's Redis writer against Feast's own `materialize`, byte for byte: the same lake snapshot, the
same project and view in two Redis databases, one written by `FeatureStore.materialize` and one by
`features.materialize.run`; every key, every hash field and every value must be equal.

The table has a column of every dtype a FeatureSet accepts, with the values where encodings differ
(null, NaN, 0, "", negative numbers, empty and multi-byte lists), a composite entity key (INT64 and
STRING, which Feast sorts by name), and rows of one entity spread over two files, the later file
holding an older event time for some entities: only the newest row per entity may be written.

One known difference is left out: Feast passes an integer column with nulls through float64 (pandas),
so it rounds values beyond 2**53 there; Loom writes them exactly."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import redis

from loom.domain.feature_views import feast_project
from loom.drivers import feast_pins, feast_store
from loom.drivers.feast_store import OnlineKind, StoreSettings
from loom.features.materialize import BEGINNING, run
from tests.integration.features.conftest import USER_FEATURES, Lake, definition_for, request_for

BASE = datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
SPEC: dict[str, Any] = {
    "source": {"dataLakeRef": {"name": "movielens", "table": USER_FEATURES}, "timestampField": "eventTimestamp"},
    "entities": [{"name": "user", "joinKeys": ["userId"], "valueType": "INT64"},
                 {"name": "region", "joinKeys": ["region"], "valueType": "STRING"}],
    "features": [{"name": n, "dtype": d} for n, d in [
        ("i32", "Int32"), ("i64", "Int64"), ("f32", "Float32"), ("f64", "Float64"), ("s", "String"),
        ("b", "Bool"), ("raw", "Bytes"), ("seen", "UnixTimestamp"), ("ai64", "Array(Int64)"),
        ("af32", "Array(Float32)"), ("astr", "Array(String)")]],
    "ttl": "3650d",
}
SCHEMA = pa.schema([
    ("userId", pa.int64()), ("region", pa.string()), ("eventTimestamp", pa.timestamp("us", tz="UTC")),
    ("i32", pa.int32()), ("i64", pa.int64()), ("f32", pa.float32()), ("f64", pa.float64()), ("s", pa.string()),
    ("b", pa.bool_()), ("raw", pa.binary()), ("seen", pa.timestamp("us", tz="UTC")), ("ai64", pa.list_(pa.int64())),
    ("af32", pa.list_(pa.float32())), ("astr", pa.list_(pa.string())),
])
SPECIAL: list[dict[str, Any]] = [  # one row each, cycled over the entities
    {"i32": 0, "i64": 0, "f32": 0.0, "f64": 0.0, "s": "", "b": False, "raw": b"", "seen": datetime(1970, 1, 1, tzinfo=timezone.utc),
     "ai64": [], "af32": [], "astr": []},
    {"i32": None, "i64": None, "f32": None, "f64": None, "s": None, "b": None, "raw": None, "seen": None,
     "ai64": None, "af32": None, "astr": None},
    {"i32": -7, "i64": -(2**40), "f32": float("nan"), "f64": float("nan"), "s": "grüße ✓", "b": True,
     "raw": b"\x00\xff\r\n", "seen": datetime(2001, 9, 9, 1, 46, 40, 999999, tzinfo=timezone.utc),
     "ai64": [-1, 0, 2**62, 300], "af32": [1.5, -0.0, float("inf")], "astr": ["a", "", "ü" * 70]},
    {"i32": 2**31 - 1, "i64": 2**52, "f32": -3.25, "f64": 1e-300, "s": "x" * 200, "b": False,
     "raw": bytes(range(256)), "seen": datetime(2030, 1, 1, tzinfo=timezone.utc),
     "ai64": list(range(100)), "af32": [0.1] * 40, "astr": ["one"]},
]


def rows(users: range, minutes: int) -> pa.Table:
    out = []
    for user in users:
        special = SPECIAL[user % len(SPECIAL)]
        out.append({"userId": user, "region": f"r{user % 3}", "eventTimestamp": BASE + timedelta(minutes=minutes + user),
                    **{**special, "i64": special["i64"] if special["i64"] is None else special["i64"] + minutes}})
    return pa.Table.from_pylist(out, schema=SCHEMA)


def settings(tmp_path: Path, redis_server: str, project: str, side: str, db: int) -> StoreSettings:
    return StoreSettings(project, f"sqlite:///{tmp_path / side / 'registry.db'}", OnlineKind.REDIS,
                         f"{redis_server},db={db}")


def everything(connection: str) -> dict[bytes, dict[bytes, bytes]]:
    host, port = connection.split(",")[0].split(":")
    client = redis.Redis(host=host, port=int(port), db=int(connection.split("db=")[1]))
    return {key: client.hgetall(key) for key in client.scan_iter(count=1000)}


@pytest.fixture
def databases(redis_server: str) -> None:
    host, port = redis_server.split(":")
    for db in (1, 2):
        redis.Redis(host=host, port=int(port), db=db).flushdb()


def test_loom_writes_what_feast_writes_byte_for_byte(tmp_path: Path, lake: Lake, redis_server: str,
                                                     databases: None) -> None:
    table = lake.table(rows(range(1, 401), minutes=10))
    table.append(rows(range(1, 801, 2), minutes=5))  # a later file: older rows for odd users 1..399, new users after
    snapshot = table.current_snapshot().snapshot_id
    project = feast_project(f"t-{uuid.uuid4().hex[:10]}")
    feast_side = settings(tmp_path, redis_server, project, "feast", 1)
    loom_side = settings(tmp_path, redis_server, project, "loom", 2)

    feast_definition = definition_for(feast_side, lake, SPEC)
    feast_store.apply(feast_side, feast_definition)
    feast_pins.move(feast_definition.source.pin, feast_pins.snapshot_metadata_location(table, snapshot))
    feast_store.open_store(feast_side).materialize(BEGINNING, datetime.now(timezone.utc), [feast_definition.name])

    loom_definition = definition_for(loom_side, lake, SPEC)
    feast_store.apply(loom_side, loom_definition)
    result = run(request_for(loom_definition, loom_side, lake, snapshot))

    assert result.passed and result.rows_written == result.online_row_count == 600
    assert result.rows_per_second > 0
    written, expected = everything(loom_side.online_connection), everything(feast_side.online_connection)
    assert len(expected) == 600
    assert written.keys() == expected.keys()
    differing = [key for key in expected if written[key] != expected[key]]
    fields = {f: (written[k].get(f), v) for k in differing[:1] for f, v in expected[k].items() if written[k].get(f) != v}
    assert not differing, f"{len(differing)} keys differ, e.g. {differing[0]!r}: (loom, feast) by field {fields}"


def test_a_later_file_with_an_older_event_never_overwrites_a_newer_row(tmp_path: Path, lake: Lake,
                                                                       redis_server: str) -> None:
    table = lake.table(rows(range(1, 5), minutes=10))
    table.append(rows(range(1, 5), minutes=5))
    store = settings(tmp_path, redis_server, feast_project(f"t-{uuid.uuid4().hex[:10]}"), "loom", 0)
    definition = definition_for(store, lake, SPEC)
    feast_store.apply(store, definition)

    run(request_for(definition, store, lake, table.current_snapshot().snapshot_id))

    reader_rows = [{"userId": u, "region": f"r{u % 3}"} for u in range(1, 5)]
    online = feast_store.open_store(store).get_online_features(
        features=[f"{definition.name}:i64"], entity_rows=reader_rows).to_dict()
    assert online["i64"] == [None if SPECIAL[u % 4]["i64"] is None else SPECIAL[u % 4]["i64"] + 10 for u in range(1, 5)]
