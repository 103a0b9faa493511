"""The newest row per entity of a snapshot's event-time window, kept by DuckDB between the one pass
over the snapshot and the write: inclusive window, each entity once, newest event time first, then
newest created time, and floats (NaN, -0.0) back bit for bit."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa

from loom.drivers.feast_snapshots import NewestRows

T0 = datetime(2016, 10, 1, tzinfo=timezone.utc)
TS = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema([("userId", pa.int64()), ("eventTimestamp", TS), ("created", TS), ("rating", pa.float64())])


def batch(users: list[int], days: list[int], created: list[int], ratings: list[float]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({
        "userId": pa.array(users, pa.int64()),
        "eventTimestamp": pa.array([T0 + timedelta(days=d) for d in days], TS),
        "created": pa.array([T0 + timedelta(days=d) for d in created], TS),
        "rating": pa.array(ratings, pa.float64()),
    }, schema=SCHEMA)


def chosen(tmp_path: Path, batches: list[pa.RecordBatch], start_day: int, end_day: int) -> tuple[int, dict[int, float]]:
    with NewestRows(str(tmp_path)) as newest:
        count = newest.load(pa.RecordBatchReader.from_batches(SCHEMA, iter(batches)), ["userId"], "eventTimestamp",
                            "created", T0 + timedelta(days=start_day), T0 + timedelta(days=end_day))
        rows = pa.Table.from_batches(list(newest.batches(["userId", "rating"], batch_rows=2)), schema=pa.schema(
            [SCHEMA.field("userId"), SCHEMA.field("rating")])).to_pylist()
    return count, {row["userId"]: row["rating"] for row in rows}


def test_each_entity_once_within_the_inclusive_window_newest_event_then_newest_created(tmp_path: Path) -> None:
    batches = [batch([1, 2, 3, 4], [2, 3, 9, 10], [0, 0, 0, 0], [1.0, 2.0, 3.0, 4.0]),
               batch([1, 2, 2, 3], [1, 3, 3, 8], [9, 1, 2, 9], [-1.0, 2.1, 2.2, -3.0])]  # a later file, older rows

    count, rows = chosen(tmp_path, batches, start_day=2, end_day=9)

    assert count == 3  # user 4 (day 10) is outside; 1, 2, 3 once each
    assert rows == {1: 1.0, 2: 2.2, 3: 3.0}


def test_floats_come_back_bit_for_bit(tmp_path: Path) -> None:
    count, rows = chosen(tmp_path, [batch([1, 2], [1, 1], [1, 1], [-0.0, math.nan])], start_day=0, end_day=5)

    assert count == 2
    assert math.copysign(1.0, rows[1]) == -1.0 and math.isnan(rows[2])
