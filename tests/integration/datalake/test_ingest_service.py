"""DataLake ingestion through the whole service (services/datalake) with the real local executor, its
thread and the real ingest component, against a real SQL catalog: once and scheduled ingests, the
`Ingested` condition, `lastIngest` per table, failures that name the file, and an operator restart in
between. Nothing polls the service: it is reconciled again when the executor reports that a run
finished, as the operator's wake-up does, and no outcome asks to come back (no retry_after, no requeue_at)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from loom.api.datalake import DataLakeSpec, DataLakeStatus, LastIngest
from loom.api.meta import API_VERSION
from loom.config import OperatorConfig
from loom.domain.outcome import Observed, Outcome
from loom.domain.workloads import PythonEnv, RunChange
from loom.executors.local import LocalExecutor
from loom.services import datalake
from loom.services.context import ReconcileContext
from loom.services.status import next_status
from tests.conftest import eventually
from tests.integration.datalake.conftest import CatalogUnderTest
from tests.integration.datalake.test_ingest import ratings
from tests.support.kube import FakeKube  # these lakes have no Secret: the Kubernetes API is not involved

SELECTOR = {"loom.dev/datalake": "movielens"}


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc).replace(second=30, microsecond=0)

    def __call__(self) -> datetime:
        return self.now


class Lake:
    """One DataLake reconciled as the operator does it: each reconcile gets the status the previous one
    wrote, and the executor's thread runs schedules and retries and reports run changes."""

    def __init__(self, state: Path, clock: Clock, retry_base: timedelta) -> None:
        self.state, self.clock, self.retry_base = state, clock, retry_base
        self.status: dict[str, Any] = {}
        self.changes: list[RunChange] = []
        self.lock = threading.Lock()
        self.executor = self._start()

    def _start(self) -> LocalExecutor:
        ex = LocalExecutor(self.state, {PythonEnv.MAIN: sys.executable}, lambda ns, n: {}, clock=self.clock,
                           on_change=self._changed, retry_base=self.retry_base, poll_seconds=0.2)
        ex.start()
        return ex

    def _changed(self, change: RunChange) -> None:
        with self.lock:
            self.changes.append(change)

    def restart(self) -> None:
        """A new executor over the same state, as after an operator restart."""
        self.executor.stop()
        self.executor = self._start()

    def stop(self) -> None:
        self.executor.stop()
        for name in self.executor.names("ml", {}):  # nothing left running after a failed test
            self.executor.delete("ml", name)

    def reconcile(self, spec: DataLakeSpec) -> Outcome:
        ctx = ReconcileContext("ml", "movielens", "00000000-0000-4000-8000-0000000000aa", 1, FakeKube(),
                               OperatorConfig(dependency_retry_seconds=1), self.executor, self.clock(),
                               self.status, API_VERSION, "DataLake")
        outcome = datalake.reconcile(spec, ctx)
        written, _ = next_status(DataLakeStatus, self.status, outcome, 1, self.clock())
        if written is not None:
            self.status = written
        assert outcome.retry_after is None and outcome.requeue_at is None, outcome
        return outcome

    def finished(self, count: int = 1) -> list[RunChange]:
        """Wait until `count` runs have been reported finished, each naming this lake as its owner."""
        def ended() -> list[RunChange] | None:
            with self.lock:
                done = [c for c in self.changes if c.run.finished]
            assert all(c.owner is not None and c.owner.name == "movielens" for c in done), done
            return done if len(done) >= count else None

        return eventually(ended, timeout=90, interval=0.2, what=f"{count} run(s) reported finished")

    def names(self) -> set[str]:
        return self.executor.names("ml", SELECTOR)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_lake(tmp_path: Path, clock: Clock) -> Iterator[Callable[..., Lake]]:
    lakes: list[Lake] = []

    def make(retry_base: timedelta = timedelta(seconds=10)) -> Lake:
        lakes.append(Lake(tmp_path / "state", clock, retry_base))
        return lakes[-1]

    yield make
    for lake in lakes:
        lake.stop()


def spec(properties: Mapping[str, str], incoming: Path, **ingest: Any) -> DataLakeSpec:
    return DataLakeSpec.model_validate({
        "catalog": {"type": "sql", "uri": properties["uri"], "warehouse": properties["warehouse"]},
        "namespace": "movielens",
        "tables": [
            {"name": "ratings", "columns": [
                {"name": "userId", "type": "long", "required": True},
                {"name": "movieId", "type": "long", "required": True},
                {"name": "rating", "type": "float", "required": True},
                {"name": "timestamp", "type": "timestamptz", "required": True},
            ], "partitionBy": [{"column": "timestamp", "transform": "year"}]},
            {"name": "movies", "columns": [{"name": "movieId", "type": "long", "required": True}]},
        ],
        "ingest": [{"name": "ratings-batches", "table": "ratings",
                    "source": {"format": "parquet", "uri": f"file://{incoming}/*.parquet"}, **ingest}],
    })


def ingested(outcome: Outcome) -> Observed:
    return next(c for c in outcome.conditions if c.type == "Ingested")


def last_ingest(outcome: Outcome, table: str = "ratings") -> LastIngest | None:
    return next(row.last_ingest for row in outcome.fields["tables"] if row.name == table)


def test_once_ingest_runs_once_and_reports_the_commit(
    iceberg_catalog: CatalogUnderTest, make_lake: Callable[..., Lake], tmp_path: Path
) -> None:
    properties, catalog = iceberg_catalog
    (tmp_path / "in").mkdir()
    pq.write_table(ratings(0, 1000), tmp_path / "in" / "a.parquet")
    lake_spec = spec(properties, tmp_path / "in")
    lake = make_lake()

    first = lake.reconcile(lake_spec)
    assert (ingested(first).status, ingested(first).reason) == (None, "Ingesting")

    lake.finished(1)
    report = lake.reconcile(lake_spec)
    assert (ingested(report).status, ingested(report).reason) == (True, "Ingested")
    table = catalog.load_table("movielens.ratings")
    last = last_ingest(report)
    assert last is not None
    assert (last.files, last.rows, last.snapshot_id) == (1, 1000, table.current_snapshot().snapshot_id)

    # Restart: a new executor over the same state finds the run done and starts nothing.
    lake.restart()
    pq.write_table(ratings(1000, 10), tmp_path / "in" / "b.parquet")
    again = lake.reconcile(lake_spec)
    assert ingested(again).status is True
    (work,) = lake.names()
    assert len(lake.executor.runs("ml", work)) == 1
    table.refresh()
    assert len(table.metadata.snapshots) == 1

    # A changed ingest is a new workload and the old one goes. The record is per ingest name, so a
    # renamed ingest starts from nothing and loads both files (renaming is how to re-load on purpose).
    renamed = lake_spec.model_copy(update={"ingest": [lake_spec.ingest[0].model_copy(update={"name": "ratings-all"})]})
    assert ingested(lake.reconcile(renamed)).status is None
    names = lake.names()
    assert work not in names and len(names) == 1
    lake.finished(2)  # the restarted executor reports the new run
    report = lake.reconcile(renamed)
    assert ingested(report).status is True
    last = last_ingest(report)
    assert last is not None and last.files == 2


def test_a_malformed_file_fails_the_ingest_at_once_and_it_is_not_submitted_again(
    iceberg_catalog: CatalogUnderTest, make_lake: Callable[..., Lake], tmp_path: Path, clock: Clock
) -> None:
    properties, catalog = iceberg_catalog
    incoming = tmp_path / "in"
    incoming.mkdir()
    pq.write_table(ratings(0, 100), incoming / "a.parquet")
    (incoming / "b.parquet").write_text("not parquet at all")
    lake_spec = spec(properties, incoming)
    lake = make_lake(retry_base=timedelta(seconds=1))
    lake.reconcile(lake_spec)

    def failed_for_good() -> bool:
        with lake.lock:
            return any(c.run.finished for c in lake.changes)

    # The same file would fail the same way: the component says so (EXIT_INPUT_ERROR), no retry.
    eventually(failed_for_good, timeout=120, interval=0.5, what="the attempt to fail")
    lake.finished(1)
    report = lake.reconcile(lake_spec)
    condition = ingested(report)
    assert (condition.status, condition.reason) == (False, "IngestFailed")
    assert f"file://{incoming}/b.parquet: cannot read as parquet" in condition.message
    assert "nothing committed" in condition.message and "(an input error, not retried)" in condition.message
    assert catalog.load_table("movielens.ratings").current_snapshot() is None
    assert last_ingest(report) is None

    (work,) = lake.names()
    attempts = sorted(p.name for p in (lake.state / "runs" / "ml" / work).glob("attempt-*"))
    assert attempts == ["attempt-1"]
    again = lake.reconcile(lake_spec)
    assert ingested(again) == condition, "a failed run is not started again by the reconcile"
    assert sorted(p.name for p in (lake.state / "runs" / "ml" / work).glob("attempt-*")) == attempts


def test_scheduled_ingest_runs_on_its_ticks(
    iceberg_catalog: CatalogUnderTest, make_lake: Callable[..., Lake], tmp_path: Path, clock: Clock
) -> None:
    properties, catalog = iceberg_catalog
    incoming = tmp_path / "in"
    incoming.mkdir()
    pq.write_table(ratings(0, 100), incoming / "a.parquet")
    lake_spec = spec(properties, incoming, schedule="*/5 * * * *")
    lake = make_lake()

    report = lake.reconcile(lake_spec)  # healthy and waiting for its tick: no retry, no requeue
    assert (ingested(report).status, ingested(report).reason) == (True, "Ingested")
    assert "scheduled (*/5 * * * *), next run at" in ingested(report).message
    assert catalog.load_table("movielens.ratings").current_snapshot() is None

    clock.now += timedelta(minutes=5)
    lake.executor.wake()  # the executor's thread ticks; the run's end is reported, not polled
    lake.finished(1)
    report = lake.reconcile(lake_spec)
    assert (ingested(report).status, ingested(report).reason) == (True, "Ingested")
    last = last_ingest(report)
    assert last is not None and last.files == 1

    pq.write_table(ratings(100, 50), incoming / "b.parquet")
    clock.now += timedelta(minutes=5)
    lake.executor.wake()
    lake.finished(2)
    report = lake.reconcile(lake_spec)
    last = last_ingest(report)
    assert last is not None and (last.files, last.rows) == (1, 50)
    assert catalog.load_table("movielens.ratings").scan().to_arrow().num_rows == 150


def test_an_ingest_waits_for_a_table_that_cannot_be_created(
    sql_catalog_sqlite: CatalogUnderTest, make_lake: Callable[..., Lake], tmp_path: Path
) -> None:
    raw = spec(sql_catalog_sqlite.properties, tmp_path).model_dump(by_alias=True, exclude_none=True)
    raw["tables"][0]["partitionBy"] = [{"column": "rating", "transform": "day"}]  # a float cannot be
    lake = make_lake()
    report = lake.reconcile(DataLakeSpec.model_validate(raw))
    assert (ingested(report).status, ingested(report).message) == (None, "ingest ratings-batches waits for table ratings")
    assert lake.names() == set()
