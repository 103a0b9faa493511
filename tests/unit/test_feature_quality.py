"""The quality gate's numbers: one streaming profile of a snapshot and a pure verdict on it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa

from loom.api.featureset import Quality
from loom.features.quality import Profiler, SnapshotProfile, evaluate

T0 = datetime(2016, 10, 1, tzinfo=timezone.utc)
TS = pa.timestamp("us", tz="UTC")


def batch(users: list[int], ratings: list[float | None], days: list[int]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {"userId": pa.array(users, pa.int64()), "meanRating": pa.array(ratings, pa.float64()),
         "eventTimestamp": pa.array([T0 + timedelta(days=d) for d in days], TS)}
    )


def test_profile_counts_rows_nulls_and_newest_event_across_batches() -> None:
    batches = [batch([1, 2, 3], [4.0, None, 3.5], [0, 1, 2]), batch([1, 4, 5], [None, None, 2.0], [5, 9, 10])]
    profiler = Profiler(["meanRating"], "eventTimestamp")
    for each in batches:
        profiler.add(each)
    got = profiler.result()
    assert got.rows == 6
    assert got.null_counts == {"meanRating": 3}
    assert got.newest_event == T0 + timedelta(days=10)


def test_watching_profiles_the_batches_a_consumer_reads_and_passes_them_on() -> None:
    batches = [batch([1, 2], [None, 2.0], [0, 3]), batch([3], [1.0], [1])]
    profiler = Profiler(["meanRating"], "eventTimestamp")
    read = list(profiler.watching(pa.RecordBatchReader.from_batches(batches[0].schema, iter(batches))))
    assert read == batches
    assert profiler.result() == SnapshotProfile(rows=3, null_counts={"meanRating": 1}, newest_event=T0 + timedelta(days=3))


def test_passing_snapshot_reports_its_numbers() -> None:
    snap = SnapshotProfile(rows=1000, null_counts={"meanRating": 5}, newest_event=T0)
    quality = Quality.model_validate({"minRows": 100, "freshness": "30d",
                                      "features": [{"name": "meanRating", "maxNullFraction": 0.01}]})
    report = evaluate(snap, quality, now=T0 + timedelta(days=1))
    assert report.passed
    assert report.null_fractions == {"meanRating": 0.005}
    assert report.summary() == "1000 rows, meanRating nulls 0.0050"


def test_every_failed_check_carries_the_numbers() -> None:
    snap = SnapshotProfile(rows=42, null_counts={"meanRating": 21}, newest_event=T0)
    quality = Quality.model_validate({"minRows": 100, "freshness": "7d",
                                      "features": [{"name": "meanRating", "maxNullFraction": 0.1}]})
    report = evaluate(snap, quality, now=T0 + timedelta(days=10))
    assert not report.passed
    assert [(f.check, f.subject) for f in report.failures] == [
        ("minRows", "table"), ("maxNullFraction", "meanRating"), ("freshness", "table")]
    text = report.summary()
    assert "minRows table: 42 rows (expected >= 100 rows)" in text
    assert "maxNullFraction meanRating: 0.5000 null (21 of 42 rows) (expected <= 0.1)" in text
    assert "freshness table: newest event 2016-10-01T00:00:00+00:00 is 10 days, 0:00:00 old" in text
    assert report.to_json()["failures"][0] == {"check": "minRows", "subject": "table",
                                                "expected": ">= 100 rows", "actual": "42 rows"}


def test_an_empty_snapshot_fails_freshness_and_min_rows_but_has_no_null_fraction() -> None:
    snap = SnapshotProfile(rows=0, null_counts={"meanRating": 0}, newest_event=None)
    quality = Quality.model_validate({"minRows": 1, "freshness": "1d",
                                      "features": [{"name": "meanRating", "maxNullFraction": 0}]})
    report = evaluate(snap, quality, now=T0)
    assert [f.check for f in report.failures] == ["minRows", "freshness"]
    assert report.null_fractions == {"meanRating": 0.0}
