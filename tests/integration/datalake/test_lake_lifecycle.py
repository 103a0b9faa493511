"""The DataLake sample end to end on real MovieLens data: `kubectl apply` creates the tables, the
operator's ingests (run by the local executor) load the replayed files, and a batch that lands later is
picked up on schedule as a new snapshot — each file exactly once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ROOT
from tests.integration.conftest import Kubectl, Operator, condition, eventually, sample
from tests.integration.datalake.conftest import CatalogUnderTest

REPLAY = ROOT / "components" / "movielens"


def replay(incoming: Path, step: str) -> None:
    subprocess.run([sys.executable, str(REPLAY), "--out", str(incoming), "--batches", "2", step], check=True,
                   capture_output=True)


def lake(catalog: CatalogUnderTest, incoming: Path) -> dict[str, Any]:
    """The sample, its catalog and incoming directory moved under the test's temp dirs; ingests run every minute."""
    obj = sample("datalake")
    obj["spec"]["catalog"] = {"type": "sql", "uri": catalog.properties["uri"], "warehouse": catalog.properties["warehouse"]}
    for ingest in obj["spec"]["ingest"]:
        ingest["source"]["uri"] = ingest["source"]["uri"].replace("file:///var/tmp/loom/movielens/incoming", f"file://{incoming}")
        if ingest.get("schedule"):
            ingest["schedule"] = "* * * * *"
    return obj


def tables(kc: Kubectl) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in kc.get("datalake", "movielens").get("status", {}).get("tables", [])}


def test_sample_ingests_movielens_and_picks_up_a_new_batch(
    kc: Kubectl, operator: Operator, sql_catalog_sqlite: CatalogUnderTest, tmp_path: Path
) -> None:
    incoming = tmp_path / "incoming"
    replay(incoming, "initial")
    kc.apply(lake(sql_catalog_sqlite, incoming))

    def loaded() -> dict[str, dict[str, Any]]:
        obj = kc.get("datalake", "movielens")
        assert (condition(obj, "Ingested") or {}).get("status") == "True", obj.get("status")
        rows = tables(kc)
        assert rows["ratings"].get("rowCount") == 80003 and rows["movies"].get("rowCount") == 9066, rows
        assert rows["user_features"].get("rowCount"), rows
        return rows

    first = eventually(loaded, timeout=150, what="the initial MovieLens load")
    assert condition(kc.get("datalake", "movielens"), "Ready")["status"] == "True"
    assert first["ratings"]["lastIngest"]["files"] == 1
    assert first["ratings"]["lastIngest"]["rows"] == 80003
    assert first["ratings"]["lastIngest"]["snapshotId"] == first["ratings"]["currentSnapshotId"]

    replay(incoming, "next")  # new ratings arrive; the next scheduled run commits them, and only them

    def grown() -> dict[str, dict[str, Any]]:
        rows = tables(kc)
        assert rows["ratings"]["currentSnapshotId"] != first["ratings"]["currentSnapshotId"], rows["ratings"]
        return rows

    second = eventually(grown, timeout=150, what="the next batch to be ingested")
    assert second["ratings"]["rowCount"] == 80003 + second["ratings"]["lastIngest"]["rows"]
    assert second["ratings"]["lastIngest"]["files"] == 1
    table = sql_catalog_sqlite.catalog.load_table("movielens.ratings")
    assert table.scan().to_arrow().num_rows == second["ratings"]["rowCount"]
