"""The materialization workload as the executors run it: a plain CLI whose last stdout line is the
result, exit 0 when materialized and 3 (with the failing numbers) when the quality gate refuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa

from loom.domain.workloads import EXIT_INPUT_ERROR
from loom.drivers import feast_store
from loom.drivers.feast_store import StoreSettings
from tests.conftest import ROOT
from tests.integration.features.conftest import USER_FEATURE_SPEC, Lake, definition_for, request_for

COMPONENT = ROOT / "components" / "materialize"


def materialize(request_json: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run the component as the executors do: the request is a workload file in $LOOM_WORKLOAD_FILES."""
    (tmp_path / "request.json").write_text(request_json)
    return subprocess.run([sys.executable, str(COMPONENT), "--request", "@request.json"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "LOOM_WORKLOAD_FILES": str(tmp_path)})


def test_cli_materializes_and_reports(redis_store: StoreSettings, lake: Lake, movielens: list[pa.Table],
                                      tmp_path: Path) -> None:
    table = lake.table(movielens[0])
    snapshot = table.current_snapshot().snapshot_id
    definition = definition_for(redis_store, lake)
    feast_store.apply(redis_store, definition)

    proc = materialize(request_for(definition, redis_store, lake, snapshot).model_dump_json(), tmp_path)

    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["status"] == "Succeeded"
    assert (result["snapshotId"], result["rowsWritten"], result["onlineRowCount"]) == (snapshot, 547, 547)
    assert result["featureViewVersion"] == definition.version and result["durationSeconds"] > 0
    assert result["quality"]["passed"] is True
    assert "Materializing" in proc.stderr  # Feast's progress stays off stdout


def test_cli_exits_non_zero_with_the_failing_numbers(redis_store: StoreSettings, lake: Lake,
                                                     movielens: list[pa.Table], tmp_path: Path) -> None:
    table = lake.table(movielens[0])
    definition = definition_for(redis_store, lake)
    feast_store.apply(redis_store, definition)
    request = request_for(definition, redis_store, lake, table.current_snapshot().snapshot_id,
                          quality={"minRows": 1000})

    proc = materialize(request.model_dump_json(), tmp_path)

    assert proc.returncode == 3, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["status"] == "QualityCheckFailed" and result["rowsWritten"] == 0
    assert result["quality"]["failures"] == [
        {"check": "minRows", "subject": "table", "expected": ">= 1000 rows", "actual": "547 rows"}]
    assert "quality gate rejected snapshot" in proc.stderr and "547 rows (expected >= 1000 rows)" in proc.stderr
    assert result["onlineRowCount"] is None
    assert feast_store.online_row_count(redis_store, definition) == 0


def test_a_run_planned_for_another_definition_refuses(redis_store: StoreSettings, lake: Lake,
                                                      movielens: list[pa.Table], tmp_path: Path) -> None:
    table = lake.table(movielens[0])
    definition = definition_for(redis_store, lake)
    feast_store.apply(redis_store, definition)
    spec = json.loads(json.dumps(USER_FEATURE_SPEC))
    spec["ttl"] = "1d"
    stale = definition_for(redis_store, lake, spec)

    proc = materialize(request_for(stale, redis_store, lake, table.current_snapshot().snapshot_id).model_dump_json(),
                       tmp_path)

    assert proc.returncode == 1
    assert f"the registry holds version {definition.version}" in proc.stderr
    assert feast_store.online_row_count(redis_store, definition) == 0


def test_input_that_cannot_be_materialized_exits_as_an_input_error(
    redis_store: StoreSettings, lake: Lake, movielens: list[pa.Table], tmp_path: Path
) -> None:
    """A snapshot the table does not have fails the same way however often it runs: exit 65, which
    the executors do not retry, with a one-line verdict last."""
    lake.table(movielens[0])
    definition = definition_for(redis_store, lake)
    feast_store.apply(redis_store, definition)

    proc = materialize(request_for(definition, redis_store, lake, 424242).model_dump_json(), tmp_path)

    assert proc.returncode == EXIT_INPUT_ERROR, proc.stderr
    verdict = proc.stderr.strip().splitlines()[-1]
    assert verdict.startswith("input error: ") and "424242" in verdict
    assert feast_store.online_row_count(redis_store, definition) == 0
