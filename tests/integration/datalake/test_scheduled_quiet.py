"""A DataLake whose scheduled ingest is healthy is quiet: the real operator (local executor, real
kube-apiserver) reconciles it with result "ok" while it waits for a tick and when the tick's run
starts and finishes (the run change brings it back, nothing polls), Kopf records no retry in its
`loom.dev/*` progress annotations, and nothing is logged at ERROR."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from prometheus_client import REGISTRY

from tests.integration.conftest import Kubectl, condition, eventually, start_operator
from tests.integration.datalake.conftest import CatalogUnderTest
from tests.integration.datalake.test_ingest import ratings

KOPF_PREFIX = "loom.dev/"


def reconciles(result: str) -> float:
    """DataLake reconciles so far with this result; the operator runs in this process, so its registry is ours."""
    return REGISTRY.get_sample_value("loom_reconcile_total", {"kind": "DataLake", "result": result}) or 0.0


def lake(catalog: CatalogUnderTest, incoming: Path) -> dict[str, Any]:
    return {
        "apiVersion": "loom.dev/v1alpha1", "kind": "DataLake", "metadata": {"name": "movielens"},
        "spec": {
            "catalog": {"type": "sql", "uri": catalog.properties["uri"], "warehouse": catalog.properties["warehouse"]},
            "namespace": "movielens",
            "tables": [{"name": "ratings", "columns": [
                {"name": "userId", "type": "long", "required": True},
                {"name": "movieId", "type": "long", "required": True},
                {"name": "rating", "type": "float", "required": True},
                {"name": "timestamp", "type": "timestamptz", "required": True},
            ]}],
            "ingest": [{"name": "ratings", "table": "ratings", "schedule": "* * * * *",
                        "source": {"format": "parquet", "uri": f"file://{incoming}/*.parquet"}}],
        },
    }


def kopf_progress(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Kopf's per-handler progress records (JSON annotations under its prefix; not its diff base)."""
    found = {}
    for key, value in (obj["metadata"].get("annotations") or {}).items():
        if key.startswith(KOPF_PREFIX) and not key.endswith("last-handled-configuration"):
            try:
                record = json.loads(value)
            except ValueError:
                continue
            if isinstance(record, dict):
                found[key] = record
    return found


def test_a_healthy_scheduled_ingest_reconciles_ok_without_retries_or_errors(
    kc: Kubectl, namespace: str, sql_catalog_sqlite: CatalogUnderTest, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    pq.write_table(ratings(0, 100), incoming / "a.parquet")
    caplog.set_level(logging.INFO)
    before = {result: reconciles(result) for result in ("ok", "retry", "error")}
    progress: dict[str, dict[str, Any]] = {}

    def look(check: Any) -> Any:
        """Every look at the object also collects any Kopf progress record it carries."""
        obj = kc.get("datalake", "movielens")
        progress.update(kopf_progress(obj))
        return check(obj)

    def served(kind: str) -> bool:
        proc = kc.run("get", kind, check=False)
        return proc.returncode == 0 and not proc.stderr.strip().startswith("Error")

    # A fresh API server answers 429 while a new CRD's storage initializes, which Kopf's watches log
    # at ERROR before they retry; that is the cluster starting, not the operator failing.
    for kind in ("datalakes", "featuresets", "trainingjobs", "inferenceservices"):
        eventually(lambda: served(kind), what=f"{kind} served")
    op = start_operator(namespace)
    with op.runner:
        kc.apply(lake(sql_catalog_sqlite, incoming))

        def waiting_for_its_tick(obj: dict[str, Any]) -> dict[str, Any]:
            ingested = condition(obj, "Ingested") or {}
            assert (ingested.get("status"), ingested.get("reason")) == ("True", "Ingested"), obj.get("status")
            # On a loaded machine the first tick may come before a look sees it waiting.
            assert any(said in ingested["message"] for said in
                       ("scheduled (* * * * *), next run at", "last scheduled run succeeded")), ingested
            assert condition(obj, "Ready")["status"] == "True"
            return obj

        eventually(lambda: look(waiting_for_its_tick), timeout=60, what="Ready, waiting for (or past) the first tick")

        def ingested_on_its_tick(obj: dict[str, Any]) -> dict[str, Any]:
            (row,) = obj["status"]["tables"]
            assert row.get("lastIngest", {}).get("rows") == 100, obj["status"]
            assert "last scheduled run succeeded" in condition(obj, "Ingested")["message"]
            return obj

        eventually(lambda: look(ingested_on_its_tick), timeout=150, interval=0.5, what="the tick's run to be reported")
        final = look(lambda obj: obj)

    assert op.runner.exception is None, op.runner.output
    assert reconciles("ok") - before["ok"] >= 3, "created, the run started, the run finished"
    assert reconciles("retry") == before["retry"] and reconciles("error") == before["error"]
    assert kopf_progress(final) == {}, "Kopf keeps no progress once the reconcile succeeded"
    retried = {k: r for k, r in progress.items() if r.get("delayed") or r.get("retries") or r.get("failure")}
    assert retried == {}, f"Kopf recorded retries: {retried}"
    errors = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], errors
