"""kill -9, again and again: a scheduled ingest still commits every source row exactly once, and runs
of one workload never overlap.

The real operator runs as a process (`loom run --executor local`) against the real API server and a
SQLite Iceberg catalog, ingesting parquet files that arrive over time on a `* * * * *` schedule (a new
schedule's first run is at its next minute; a failed attempt is retried after 10 s, then 20 s). While
that goes on, the test kills with SIGKILL:

- the ingest workload three times while it reads and writes data: the component alone (its supervisor
  records exit 137); the supervisor alone (the component lives on as an orphan in the supervisor's
  process group and may commit by itself); and the whole process group (nothing records how that
  attempt ended);
- the operator three times: at start-up, in the middle of its first reconcile (the schedule is stored,
  the status perhaps not); right after it saw the orphan's supervisor die, while the orphan goes on
  (new files arrive while no operator runs); and while the second run's last attempt is in flight, so
  that the run finishes with no operator to see it.

Then the table holds each source row once (no duplicate, no missing key), each source file is in
exactly one ingest commit, no two attempts of the workload were ever alive at once (by the executor's
records and by sampling /proc throughout), and the DataLake's status agrees with the table.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loom import devcluster
from loom.drivers import ingest_record
from loom.executors.local_runs import RETRY_FILE, attempt_status
from tests.integration.conftest import Kubectl, condition, eventually
from tests.integration.datalake.chaos import (
    Attempt,
    ComponentWatch,
    Operators,
    attempt,
    attempts,
    component_pids,
    overlapping,
    schedule_runs,
)
from tests.integration.datalake.conftest import CatalogUnderTest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

ROWS_PER_FILE = 500_000  # 0.15 s of the component's time each on the idle 2-core machine, seconds when busy
FIRST_FILES, RETRY_FILES, NEXT_TICK_FILES = 8, 2, 6
INGEST = "events"
TABLE = "chaos.events"
EXIT_SIGKILL = 128 + signal.SIGKILL  # how the supervisor records a component killed by SIGKILL
SUPERVISOR_DIED = "ended without recording an exit code"


class Incoming:
    """The ingest's source directory. Row keys run 0, 1, 2, ... across the files in the order they
    are dropped, so the table must end up holding exactly 0 .. rows-1. A file appears whole (renamed
    into place), as a well-behaved producer delivers it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.uris: list[str] = []
        directory.mkdir()

    @property
    def rows(self) -> int:
        return len(self.uris) * ROWS_PER_FILE

    def drop(self, files: int) -> None:
        for _ in range(files):
            n = len(self.uris)
            ids = np.arange(n * ROWS_PER_FILE, (n + 1) * ROWS_PER_FILE, dtype=np.int64)
            table = pa.table({
                "id": ids,
                "value": ids.astype(np.float64) / 2,
                "at": pa.array(1_400_000_000_000_000 + ids * 1_000_000, pa.timestamp("us", tz="UTC")),
            })
            path = self.directory / f"part-{n:03d}.parquet"
            tmp = self.directory / f".{path.name}.tmp"  # not matched by the ingest's glob
            pq.write_table(table, tmp)
            os.replace(tmp, path)
            self.uris.append(f"file://{path}")


def datalake(catalog: CatalogUnderTest, incoming: Path) -> dict[str, Any]:
    return {
        "apiVersion": "loom.dev/v1alpha1", "kind": "DataLake", "metadata": {"name": "chaos"},
        "spec": {
            "catalog": {"type": "sql", "uri": catalog.properties["uri"], "warehouse": catalog.properties["warehouse"]},
            "namespace": "chaos",
            "tables": [{"name": "events", "columns": [
                {"name": "id", "type": "long", "required": True},
                {"name": "value", "type": "double", "required": True},
                {"name": "at", "type": "timestamptz", "required": True},
            ]}],
            "ingest": [{"name": INGEST, "table": "events", "schedule": "* * * * *",
                        "source": {"format": "parquet", "uri": f"file://{incoming}/*.parquet"}}],
        },
    }


@pytest.fixture
def operators(namespace: str, cluster: devcluster.Cluster, tmp_path: Path) -> Iterator[Operators]:
    ops = Operators(namespace, tmp_path / "operator-state", tmp_path)
    yield ops
    ops.close()


@pytest.fixture
def watch(operators: Operators) -> Iterator[ComponentWatch]:
    watching = ComponentWatch(operators.state_dir, "ingest")
    watching.start()
    yield watching
    watching.stop()


def test_kill_dash_nine_never_loses_or_duplicates_a_row_and_runs_never_overlap(
    kc: Kubectl, namespace: str, sql_catalog_sqlite: CatalogUnderTest, tmp_path: Path,
    operators: Operators, watch: ComponentWatch,
) -> None:
    state = operators.state_dir
    began = time.monotonic()

    def note(what: str) -> None:
        """The test's timeline, in its captured output: what a failure shows first."""
        print(f"{time.monotonic() - began:6.1f}s {datetime.now(timezone.utc):%H:%M:%S.%f} {what}")

    incoming = Incoming(tmp_path / "incoming")
    incoming.drop(FIRST_FILES)

    def run_dir(index: int) -> Path:
        runs = schedule_runs(state, namespace, workload)
        assert len(runs) > index, f"{len(runs)} run(s) of {workload} so far"
        return runs[index]

    def reading(index: int, number: int, line: str, timeout: float = 100) -> Attempt:
        """Attempt `number` of run `index` once its component logged `line` (it reads and writes data)."""
        def check() -> Attempt:
            assert op.proc.poll() is None, op.tail()
            at = attempt(run_dir(index), number)
            assert at.supervisor is not None and line in at.output, f"{at}: {at.output[-300:]!r}"
            return at
        return eventually(check, timeout=timeout, interval=0.05, what=f"attempt {number} of run {index} at {line!r}")

    def finished(at: Attempt) -> Attempt:
        def check() -> Attempt:
            done = attempt(at.dir.parent, at.number)
            assert done.exit_code is not None, f"{done} has not finished"
            return done
        return eventually(check, timeout=60, what=f"{at} to finish")

    # Start-up. A new schedule's first run is at the next minute after it was stored.
    kc.apply(datalake(sql_catalog_sqlite, incoming.directory))
    op = operators.start()
    note("DataLake created, operator 1 started")

    def scheduled() -> str:
        assert op.proc.poll() is None, op.tail()
        found = list((state / "schedules" / namespace).glob("*.json"))
        assert found, "no schedule stored yet"
        return found[0].stem

    workload = eventually(scheduled, timeout=60, interval=0.02, what="the first reconcile to store the schedule")
    op.kill()  # operator kill 1: at start-up, in the middle of its first reconcile
    note("operator 1 killed at start-up")
    op = operators.start()

    # Run 1, attempt 1: the component alone is killed; its supervisor records exit 137.
    a1 = reading(0, 1, f"reading 2/{FIRST_FILES}", timeout=120)  # the tick, then the operator's start-up
    (component,) = component_pids(a1)
    os.kill(component, signal.SIGKILL)  # workload kill 1
    note("component of run 1 attempt 1 killed")
    assert finished(a1).exit_code == EXIT_SIGKILL

    # Run 1, attempt 2 (10 s later): the supervisor alone is killed; its component goes on as an orphan
    # in the supervisor's process group. Once the operator has seen the attempt fail (it schedules the
    # retry) it is killed too, and new files arrive while none runs.
    a2 = reading(0, 2, f"reading 2/{FIRST_FILES}")
    os.kill(a2.leader, signal.SIGKILL)  # workload kill 2
    supervisor_killed = datetime.now(timezone.utc)
    eventually(lambda: (a2.dir / RETRY_FILE).exists(), timeout=30, interval=0.05, what=f"the retry of {a2}")
    op.kill()  # operator kill 2: an ingest in flight, its component orphaned
    note("supervisor of run 1 attempt 2 and operator 2 killed")
    op = operators.start()
    incoming.drop(RETRY_FILES)
    eventually(op.healthy, timeout=60, what="the third operator's liveness")
    note("operator 3 healthy")

    # Run 1, attempt 3 (20 s later): runs to the end. Files for the next tick arrive once it has listed its own.
    a3 = reading(0, 3, "reading 1/")
    incoming.drop(NEXT_TICK_FILES)
    assert finished(a3).exit_code == 0, a3.output[-500:]
    note("run 1 attempt 3 succeeded")

    # Run 2 (the next tick), attempt 1: the whole process group is killed, supervisor and component.
    b1 = reading(1, 1, f"reading 2/{NEXT_TICK_FILES}")
    os.killpg(b1.leader, signal.SIGKILL)  # workload kill 3
    note("process group of run 2 attempt 1 killed")

    # Run 2, attempt 2 (10 s later): the operator is killed and the run finishes while none runs.
    b2 = reading(1, 2, f"reading 2/{NEXT_TICK_FILES}")
    op.kill()  # operator kill 3: an ingest run in flight
    note("operator 3 killed")
    assert finished(b2).exit_code == 0, b2.output[-500:]
    op = operators.start()
    note("run 2 attempt 2 succeeded with no operator running; operator 4 started")

    catalog = sql_catalog_sqlite.catalog

    def reported() -> tuple[dict[str, Any], Any]:
        assert op.proc.poll() is None, op.tail()
        table = catalog.load_table(TABLE)
        committed = ingest_record.committed_files(table.properties, INGEST)
        assert sorted(committed) == incoming.uris, f"{len(committed)} of {len(incoming.uris)} files committed"
        obj = kc.get("datalake", "chaos")
        (row,) = obj.get("status", {}).get("tables", [{}])
        assert row.get("lastIngest", {}).get("snapshotId") == table.metadata.current_snapshot_id, obj.get("status")
        assert "last scheduled run succeeded" in (condition(obj, "Ingested") or {}).get("message", ""), obj["status"]
        assert (condition(obj, "Ready") or {}).get("status") == "True", obj["status"]
        return obj, table

    obj, table = eventually(reported, timeout=60, interval=0.5, what="the DataLake to report the last files ingested")
    watch.stop()
    note("the DataLake reports the last files ingested")

    # Exactly once, row by row: keys 0 .. rows-1, each once, with its own values. (The keys are sorted
    # stably: the table holds a few sorted runs, which that merges in linear time; np.unique took 45 s
    # for 8 M keys on the busy 2-core machine.)
    data = table.scan().to_arrow()
    ids = data.column("id").to_numpy()
    keys = np.sort(ids, kind="stable")
    distinct = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
    duplicates = len(keys) - len(distinct)
    missing = incoming.rows - int(np.count_nonzero((distinct >= 0) & (distinct < incoming.rows)))
    assert (len(ids), duplicates, missing) == (incoming.rows, 0, 0), \
        f"{len(ids)} rows for {incoming.rows} written: {duplicates} duplicate key(s), {missing} missing"
    assert np.array_equal(data.column("value").to_numpy(), ids / 2), "a row's values are not its own"

    # ... and file by file: each source file is in exactly one ingest commit, which added its rows.
    commits = [s for s in table.snapshots() if s.summary and s.summary.get(ingest_record.SUMMARY_NAME) == INGEST]
    per_commit = [json.loads(s.summary[ingest_record.SUMMARY_FILES]) for s in commits]
    assert sorted(uri for files in per_commit for uri in files) == incoming.uris, per_commit
    assert sum(int(s.summary["added-records"]) for s in commits) == incoming.rows

    # The attempts went as the kills made them go.
    runs = schedule_runs(state, namespace, workload)
    first, second = attempts(runs[0]), attempts(runs[1])
    assert [a.exit_code for a in first] == [EXIT_SIGKILL, None, 0], first
    assert [a.exit_code for a in second] == [None, 0], second
    assert SUPERVISOR_DIED in attempt_status(runs[1] / "attempt-1").message, second[0]
    orphan = watch.sightings[a2.leader]
    assert orphan.last > supervisor_killed, "the component was not seen alive after its supervisor was killed"

    # One run at a time: never two component process groups of the workload in one /proc sample, and
    # no attempt (of any run) started before the previous one had ended.
    everything = [a for run in runs for a in attempts(run) if a.supervisor is not None]
    assert watch.samples > 100 and all(a.supervisor in watch.sightings for a in first + second), \
        f"the watcher saw {sorted(watch.sightings)} in {watch.samples} samples, attempts {everything}"
    assert watch.overlaps == []
    assert overlapping(everything, watch) == []

    # The status agrees with the table.
    status = obj["status"]
    (row,) = status["tables"]
    last = commits[-1]
    assert last.snapshot_id == table.metadata.current_snapshot_id == row["currentSnapshotId"]
    assert row["rowCount"] == incoming.rows
    assert row["dataFiles"] == sum(1 for _ in table.scan().plan_files())
    assert row["lastIngest"]["files"] == NEXT_TICK_FILES
    assert row["lastIngest"]["rows"] == NEXT_TICK_FILES * ROWS_PER_FILE == int(last.summary["added-records"])
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert status["tableCount"] == 1
    for type_ in ("CatalogReady", "SchemaCompatible", "TablesReady", "Ingested", "Ready"):
        assert (condition(obj, type_) or {}).get("status") == "True", (type_, status["conditions"])
    note("checked")
