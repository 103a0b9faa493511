"""The DataLake ingestion step (services/lake_ingest.py) driving the real local executor and the real
ingest component against a real SQL catalog: once and scheduled ingests, the `Ingested` condition,
`lastIngest` per table, failures that name the file, and an operator restart in between."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog import Catalog

from loom.api.datalake import DataLakeSpec
from loom.domain.outcome import Observed
from loom.domain.workloads import OwnerRef, Phase, PythonEnv
from loom.executors.local import LocalExecutor
from loom.services import lake_ingest
from tests.conftest import eventually
from tests.integration.datalake.conftest import CatalogUnderTest
from tests.integration.datalake.test_ingest import MOVIES, RATINGS, YEAR, ratings

OWNER = OwnerRef("loom.dev/v1alpha1", "DataLake", "movielens", "00000000-0000-4000-8000-0000000000aa")


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc).replace(second=30, microsecond=0)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def lake(iceberg_catalog: CatalogUnderTest) -> tuple[dict[str, str], Catalog]:
    properties, catalog = iceberg_catalog
    catalog.create_namespace("movielens")
    catalog.create_table("movielens.ratings", RATINGS, partition_spec=YEAR)
    catalog.create_table("movielens.movies", MOVIES)
    return properties, catalog


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "state"
    ex = LocalExecutor(tmp_path / "state", {PythonEnv.MAIN: sys.executable}, lambda ns, n: {})
    for name in ex.names("ml", {}):  # nothing left running after a failed test
        ex.delete("ml", name)


def executor(state: Path, clock: Clock) -> LocalExecutor:
    """A fresh instance each call, as after an operator restart."""
    return LocalExecutor(state, {PythonEnv.MAIN: sys.executable}, lambda ns, n: {}, clock=clock)


def spec(properties: Mapping[str, str], incoming: Path, **ingest: Any) -> DataLakeSpec:
    return DataLakeSpec.model_validate({
        "catalog": {"type": "sql", "uri": properties["uri"], "warehouse": properties["warehouse"]},
        "namespace": "movielens",
        "tables": [
            {"name": "ratings", "columns": [{"name": "userId", "type": "long", "required": True}]},
            {"name": "movies", "columns": [{"name": "movieId", "type": "long", "required": True}]},
        ],
        "ingest": [{"name": "ratings-batches", "table": "ratings",
                    "source": {"format": "parquet", "uri": f"file://{incoming}/*.parquet"}, **ingest}],
    })


def reconcile(lake_spec: DataLakeSpec, catalog: Catalog, state: Path, clock: Clock) -> lake_ingest.IngestReport:
    tables = {t.name: catalog.load_table(("movielens", t.name)).properties for t in lake_spec.tables}
    return lake_ingest.reconcile(lake_spec, "ml", "movielens", OWNER, executor(state, clock), tables, now=clock())


def ingested(report: lake_ingest.IngestReport) -> Observed:
    (condition,) = report.conditions
    assert condition.type == "Ingested"
    return condition


def settles(lake_spec: DataLakeSpec, catalog: Catalog, state: Path, clock: Clock) -> lake_ingest.IngestReport:
    def done() -> lake_ingest.IngestReport | None:
        report = reconcile(lake_spec, catalog, state, clock)
        return report if ingested(report).status is not None else None

    return eventually(done, timeout=60, interval=0.5, what="the ingest to finish")


def test_once_ingest_runs_once_and_reports_the_commit(
    lake: tuple[dict[str, str], Catalog], tmp_path: Path, state: Path, clock: Clock
) -> None:
    properties, catalog = lake
    (tmp_path / "in").mkdir()
    pq.write_table(ratings(0, 1000), tmp_path / "in" / "a.parquet")
    lake_spec = spec(properties, tmp_path / "in")

    first = reconcile(lake_spec, catalog, state, clock)
    assert (ingested(first).status, ingested(first).reason) == (None, "Ingesting")
    assert first.retry_after == lake_ingest.POLL_SECONDS

    report = settles(lake_spec, catalog, state, clock)
    assert (ingested(report).status, ingested(report).reason) == (True, "Ingested")
    table = catalog.load_table("movielens.ratings")
    last = report.last_ingest["ratings"]
    assert (last.files, last.rows, last.snapshot_id) == (1, 1000, table.current_snapshot().snapshot_id)
    assert report.retry_after is None

    # Restart: a new executor over the same state finds the run done and starts nothing.
    pq.write_table(ratings(1000, 10), tmp_path / "in" / "b.parquet")
    again = reconcile(lake_spec, catalog, state, clock)
    assert ingested(again).status is True
    (work,) = executor(state, clock).names("ml", {lake_ingest.DATALAKE_LABEL: "movielens"})
    assert len(executor(state, clock).runs("ml", work)) == 1
    table.refresh()
    assert len(table.metadata.snapshots) == 1

    # A changed ingest is a new workload and the old one goes. The record is per ingest name, so a
    # renamed ingest starts from nothing and loads both files (renaming is how to re-load on purpose).
    changed = spec(properties, tmp_path / "in", mode="append", schedule=None)
    changed = changed.model_copy(update={"ingest": [changed.ingest[0].model_copy(update={"name": "ratings-all"})]})
    report = settles(changed, catalog, state, clock)
    names = executor(state, clock).names("ml", {lake_ingest.DATALAKE_LABEL: "movielens"})
    assert work not in names and len(names) == 1
    assert report.last_ingest["ratings"].files == 2


def test_failed_ingest_names_the_file_and_retries_later(
    lake: tuple[dict[str, str], Catalog], tmp_path: Path, state: Path, clock: Clock
) -> None:
    properties, catalog = lake
    incoming = tmp_path / "in"
    incoming.mkdir()
    pq.write_table(ratings(0, 100), incoming / "a.parquet")
    (incoming / "b.parquet").write_text("not parquet at all")
    lake_spec = spec(properties, incoming)

    report = settles(lake_spec, catalog, state, clock)
    condition = ingested(report)
    assert (condition.status, condition.reason) == (False, "IngestFailed")
    assert f"file://{incoming}/b.parquet: cannot read as parquet" in condition.message
    assert "nothing committed" in condition.message
    assert catalog.load_table("movielens.ratings").current_snapshot() is None
    assert report.last_ingest == {}
    assert 0 < report.retry_after <= lake_ingest.RETRY_FAILED_SECONDS

    (incoming / "b.parquet").unlink()  # the user fixes the input; the retry comes after the backoff
    assert ingested(reconcile(lake_spec, catalog, state, clock)).status is False
    clock.now = datetime.now(timezone.utc) + timedelta(seconds=lake_ingest.RETRY_FAILED_SECONDS + 1)
    retried = reconcile(lake_spec, catalog, state, clock)
    assert "retrying now" in ingested(retried).message
    report = settles(lake_spec, catalog, state, clock)
    assert ingested(report).status is True and report.last_ingest["ratings"].rows == 100


def test_scheduled_ingest_runs_on_its_ticks(
    lake: tuple[dict[str, str], Catalog], tmp_path: Path, state: Path, clock: Clock
) -> None:
    properties, catalog = lake
    incoming = tmp_path / "in"
    incoming.mkdir()
    pq.write_table(ratings(0, 100), incoming / "a.parquet")
    lake_spec = spec(properties, incoming, schedule="*/5 * * * *")

    report = reconcile(lake_spec, catalog, state, clock)
    assert (ingested(report).status, ingested(report).reason) == (True, "Ingested")
    assert "scheduled (*/5 * * * *)" in ingested(report).message
    assert 0 < report.retry_after <= 5 * 60 + 1  # called again at the next tick
    assert catalog.load_table("movielens.ratings").current_snapshot() is None

    clock.now += timedelta(minutes=5)
    first = reconcile(lake_spec, catalog, state, clock)
    assert ingested(first).status is None and first.retry_after == lake_ingest.POLL_SECONDS
    report = settles(lake_spec, catalog, state, clock)
    assert ingested(report).status is True and report.last_ingest["ratings"].files == 1

    pq.write_table(ratings(100, 50), incoming / "b.parquet")
    clock.now += timedelta(minutes=5)
    report = reconcile(lake_spec, catalog, state, clock)
    assert ingested(report).status is True  # a later run in progress does not flip the condition
    (work,) = executor(state, clock).names("ml", {lake_ingest.DATALAKE_LABEL: "movielens"})
    eventually(lambda: all(r.phase == Phase.SUCCEEDED for r in executor(state, clock).runs("ml", work)))
    report = reconcile(lake_spec, catalog, state, clock)
    assert (report.last_ingest["ratings"].files, report.last_ingest["ratings"].rows) == (1, 50)
    assert catalog.load_table("movielens.ratings").scan().to_arrow().num_rows == 150


def test_waits_for_the_table(tmp_path: Path, state: Path, clock: Clock) -> None:
    lake_spec = spec({"uri": "sqlite:////nonexistent/catalog.db", "warehouse": "file:///nonexistent"}, tmp_path)
    report = lake_ingest.reconcile(lake_spec, "ml", "movielens", OWNER, executor(state, clock), {}, now=clock())
    assert (ingested(report).status, ingested(report).message) == (None, "ingest ratings-batches waits for table ratings")
    assert executor(state, clock).names("ml", {}) == set()
