"""Point-in-time-correct training sets pinned to a lake snapshot, against real Feast and pyiceberg.

Synthetic rows, because the property under test needs them: a row that arrives late (in a later
snapshot) with an event time before a label's must be used exactly when the training set is pinned
to a snapshot that holds it, and a row whose event time is after the label's must never be used."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loom.drivers import feast_store
from loom.drivers.feast_pins import SnapshotNotPinnable
from loom.drivers.feast_store import StoreSettings
from loom.features.materialize import run
from loom.features.training_set import export_training_set
from tests.conftest import ROOT
from tests.integration.features.conftest import Lake, definition_for, request_for

DAY = datetime(2016, 5, 1, tzinfo=timezone.utc)
TS = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema([pa.field("userId", pa.int64(), nullable=False), pa.field("score", pa.float64()),
                    pa.field("eventTimestamp", TS, nullable=False)])
SPEC: dict[str, Any] = {
    "source": {"dataLakeRef": {"name": "movielens", "table": "user_stats"}, "timestampField": "eventTimestamp"},
    "entities": [{"name": "user", "joinKeys": ["userId"]}],
    "features": [{"name": "score", "dtype": "Float64"}],
    "ttl": "1d",
}


def at(hour: float, days: int = 0) -> datetime:
    return DAY + timedelta(days=days, hours=hour)


def rows(*items: tuple[int, float, datetime]) -> pa.Table:
    return pa.table({"userId": [i[0] for i in items], "score": [i[1] for i in items],
                     "eventTimestamp": [i[2] for i in items]}, schema=SCHEMA)


LABELS = pa.table({
    "userId": pa.array([1, 1, 2, 2, 3], pa.int64()),
    "timestamp": pa.array([at(11), at(13), at(10), at(10, days=2), at(11)], TS),
    "rating": [4.0, 3.5, 5.0, 1.0, 2.0],
})


def scores(path: Path) -> dict[tuple[int, datetime], float | None]:
    table = pq.read_table(path)
    return {(r["userId"], r["timestamp"]): r["score"] for r in table.to_pylist()}


@pytest.fixture
def snapshots(redis_store: StoreSettings, lake: Lake) -> tuple[StoreSettings, str, int, int, Any]:
    """Snapshot A, then B with a late row for user 1 and a later row for user 2; both materialized."""
    table = lake.table(rows((1, 1.0, at(10)), (1, 2.0, at(12)), (2, 5.0, at(9))), name="user_stats")
    a = table.current_snapshot().snapshot_id
    definition = definition_for(redis_store, lake, SPEC)
    feast_store.apply(redis_store, definition)
    assert run(request_for(definition, redis_store, lake, a)).passed
    table.append(rows((1, 1.5, at(10.5)), (2, 9.0, at(11))))
    b = table.current_snapshot().snapshot_id
    assert run(request_for(definition, redis_store, lake, b, previous=a)).passed
    return redis_store, definition.name, a, b, table


def test_late_rows_are_used_only_from_the_snapshot_that_holds_them(snapshots: tuple, tmp_path: Path) -> None:
    settings, view, a, b, _ = snapshots
    as_of_a = export_training_set(settings, view, LABELS, "timestamp", a, tmp_path / "a.parquet")
    as_of_b = export_training_set(settings, view, LABELS, "timestamp", b, tmp_path / "b.parquet")

    assert as_of_a.rows == as_of_b.rows == LABELS.num_rows
    assert scores(as_of_a.path) == {
        (1, at(11)): 1.0,   # the 12:00 row is after the label: never used
        (1, at(13)): 2.0,
        (2, at(10)): 5.0,
        (2, at(10, days=2)): None,  # the newest row is older than the 1d ttl
        (3, at(11)): None,  # no features at all
    }
    assert scores(as_of_b.path) == {
        (1, at(11)): 1.5,   # the late row (event 10:30, arrived in B) is the newest at or before 11:00
        (1, at(13)): 2.0,
        (2, at(10)): 5.0,   # the 11:00 row of B is after the label: never used
        (2, at(10, days=2)): None,
        (3, at(11)): None,
    }
    labels = {(r["userId"], r["timestamp"]): r["rating"] for r in pq.read_table(as_of_b.path).to_pylist()}
    assert labels == {(r["userId"], r["timestamp"]): r["rating"] for r in LABELS.to_pylist()}
    meta = pq.read_schema(as_of_a.path).metadata
    assert meta[b"loom.snapshot_id"] == str(a).encode()
    assert meta[b"loom.feature_view_version"] == as_of_a.feature_view_version.encode()


def test_a_snapshot_not_yet_materialized_cannot_be_pinned(snapshots: tuple, tmp_path: Path) -> None:
    settings, view, _, _, table = snapshots
    table.append(rows((1, 7.0, at(10.75))))
    with pytest.raises(SnapshotNotPinnable):
        export_training_set(settings, view, LABELS, "timestamp", table.current_snapshot().snapshot_id,
                            tmp_path / "c.parquet")


def test_cli_exports_the_same_training_set(snapshots: tuple, tmp_path: Path) -> None:
    settings, view, a, _, _ = snapshots
    pq.write_table(LABELS, tmp_path / "labels.parquet")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "components" / "training-set"), "--registry", settings.registry_uri,
         "--project", settings.project, "--view", view, "--snapshot-id", str(a), "--labels",
         str(tmp_path / "labels.parquet"), "--timestamp-field", "timestamp", "--out", str(tmp_path / "cli.parquet")],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (result["rows"], result["snapshotId"]) == (LABELS.num_rows, a)
    assert scores(tmp_path / "cli.parquet")[(1, at(11))] == 1.0
