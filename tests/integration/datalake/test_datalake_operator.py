"""DataLakes through the real kube-apiserver and the operator: kubectl apply creates and evolves
tables, refuses unsafe changes visibly, repairs drift on its periodic resync, honours deletionPolicy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from loom import devcluster
from tests.integration.conftest import Kubectl, Operator, condition, eventually, free_port, sample
from tests.integration.datalake.conftest import CatalogUnderTest, Postgres

NS = "movielens"


def datalake(properties: dict[str, str], **spec: Any) -> dict[str, Any]:
    """samples/datalake.yaml pointed at the catalog under test, without its ingests and maintenance
    (those run in test_lake_lifecycle.py), so Ready here speaks of the tables alone."""
    lake = sample("datalake")
    lake["spec"]["catalog"] = {"type": "sql", "uri": properties["uri"], "warehouse": properties["warehouse"]}
    lake["spec"]["ingest"] = []
    lake["spec"].pop("maintenance")
    lake["spec"].update(spec)
    return lake


def reconciled(kc: Kubectl, generation: int = 1) -> dict[str, Any]:
    obj = kc.get("datalake", "movielens")
    status = obj.get("status", {})
    assert obj["metadata"]["generation"] == generation and status.get("observedGeneration") == generation, status
    assert condition(obj, "Ready") is not None, status
    return obj


def ready(kc: Kubectl, generation: int = 1) -> dict[str, Any]:
    obj = reconciled(kc, generation)
    assert condition(obj, "Ready")["status"] == "True", obj["status"]
    return obj


def events(kc: Kubectl) -> list[tuple[str, str, str]]:
    out = kc.run("get", "events", "--field-selector", "involvedObject.name=movielens", "-o", "json").stdout
    return [(e["type"], e["reason"], e["message"]) for e in json.loads(out)["items"]]


def table_rows(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in obj["status"]["tables"]}


def test_apply_creates_the_tables(kc: Kubectl, operator: Operator, sql_catalog_sqlite: CatalogUnderTest) -> None:
    kc.apply(datalake(sql_catalog_sqlite.properties))
    obj = eventually(lambda: ready(kc), what="DataLake Ready")
    assert {c["type"]: c["status"] for c in obj["status"]["conditions"]} == {
        "CatalogReady": "True", "SchemaCompatible": "True", "TablesReady": "True", "Ready": "True"}
    assert obj["status"]["tableCount"] == 3
    rows = table_rows(obj)
    assert list(rows) == ["ratings", "movies", "user_features"]
    assert rows["ratings"] == {"name": "ratings", "schemaId": 0, "specId": 0, "rowCount": 0, "dataFiles": 0,
                               "totalBytes": 0}
    ratings = sql_catalog_sqlite.catalog.load_table((NS, "ratings"))
    assert [f.name for f in ratings.schema().fields] == ["userId", "movieId", "rating", "timestamp"]
    assert [str(f.transform) for f in ratings.spec().fields] == ["year"]
    assert obj["metadata"]["finalizers"] == ["loom.dev/finalizer"]
    eventually(lambda: ("Normal", "TablesCreated", "created in movielens: ratings, movies, user_features")
               in events(kc), what="TablesCreated event")


def test_secret_backed_postgres_catalog(
    kc: Kubectl, operator: Operator, postgres: Postgres, sql_catalog_postgres: CatalogUnderTest
) -> None:
    uri = sql_catalog_postgres.properties["uri"]
    kc.run("create", "secret", "generic", "catalog", f"--from-literal=uri={uri}")
    lake = datalake(sql_catalog_postgres.properties)
    lake["spec"]["catalog"] = {"type": "sql", "warehouse": sql_catalog_postgres.properties["warehouse"],
                               "secretRef": {"name": "catalog"}}
    kc.apply(lake)
    obj = eventually(lambda: ready(kc), what="DataLake Ready")
    assert obj["status"]["tableCount"] == 3
    assert sorted(t for _, t in sql_catalog_postgres.catalog.list_tables(NS)) == ["movies", "ratings", "user_features"]
    assert postgres.password not in json.dumps(obj) + json.dumps(events(kc))


def test_safe_change_is_one_commit_and_old_data_stays_readable(
    kc: Kubectl, operator: Operator, iceberg_catalog: CatalogUnderTest
) -> None:
    lake = datalake(iceberg_catalog.properties)
    kc.apply(lake)
    eventually(lambda: ready(kc))
    movies = iceberg_catalog.catalog.load_table((NS, "movies"))
    movies.append(pa.Table.from_pylist(
        [{"movieId": 1, "title": "Toy Story", "year": 1995, "genres": "Animation"},
         {"movieId": 2, "title": "Jumanji", "year": 1995, "genres": "Adventure"}],
        schema=movies.schema().as_arrow()))
    movies = iceberg_catalog.catalog.load_table((NS, "movies"))
    commits = len(movies.metadata.metadata_log)
    snapshot = movies.current_snapshot().snapshot_id

    lake["spec"]["tables"][1]["columns"][2]["type"] = "long"  # year: int -> long
    lake["spec"]["tables"][1]["columns"].append({"name": "imdbId", "type": "long", "doc": "IMDb id"})
    kc.apply(lake)
    obj = eventually(lambda: ready(kc, generation=2) if table_rows(ready(kc, 2))["movies"]["schemaId"] == 1 else None,
                     what="movies evolved")
    row = table_rows(obj)["movies"]
    assert (row["currentSnapshotId"], row["rowCount"], row["dataFiles"]) == (snapshot, 2, 1)
    after = iceberg_catalog.catalog.load_table((NS, "movies"))
    assert len(after.metadata.metadata_log) == commits + 1, "the whole change is one commit"
    assert after.metadata.current_schema_id == 1
    data = after.scan().to_arrow().sort_by("movieId").to_pylist()
    assert data == [
        {"movieId": 1, "title": "Toy Story", "year": 1995, "genres": "Animation", "imdbId": None},
        {"movieId": 2, "title": "Jumanji", "year": 1995, "genres": "Adventure", "imdbId": None},
    ]
    eventually(lambda: ("Normal", "TableEvolved", "table movielens.movies: widen to long: year; add column imdbId long")
               in events(kc), what="TableEvolved event")


def test_unsafe_change_is_refused_and_the_table_left_as_it_was(
    kc: Kubectl, operator: Operator, iceberg_catalog: CatalogUnderTest
) -> None:
    lake = datalake(iceberg_catalog.properties)
    kc.apply(lake)
    eventually(lambda: ready(kc))
    before = iceberg_catalog.catalog.load_table((NS, "ratings"))
    metadata_file = Path(before.metadata_location.removeprefix("file://"))
    metadata_bytes = metadata_file.read_bytes()

    lake["spec"]["tables"][0]["columns"][0]["type"] = "int"  # userId: long -> int narrows
    lake["spec"]["tables"][2]["columns"].append({"name": "lastSeen", "type": "timestamptz"})  # another table: safe
    kc.apply(lake)
    obj = eventually(lambda: reconciled(kc, generation=2), what="generation 2 observed")
    refused = condition(obj, "SchemaCompatible")
    assert (refused["status"], refused["reason"]) == ("False", "SchemaChangeRefused")
    assert "table ratings: column userId: narrowing long to int would lose values" in refused["message"]
    assert condition(obj, "Ready")["status"] == "False"

    after = iceberg_catalog.catalog.load_table((NS, "ratings"))
    assert after.metadata_location == before.metadata_location
    assert metadata_file.read_bytes() == metadata_bytes
    assert after.metadata.current_schema_id == before.metadata.current_schema_id
    assert table_rows(obj)["ratings"]["schemaId"] == 0
    assert table_rows(obj)["user_features"]["schemaId"] == 1, "the other table was still evolved"

    def warned() -> bool:
        return any(t == "Warning" and r == "SchemaChangeRefused" and "column userId: narrowing long to int" in m
                   for t, r, m in events(kc))

    eventually(warned, what="a Warning event naming the column")


@pytest.mark.parametrize("policy", ["Retain", "Delete"])
def test_deletion_policy(kc: Kubectl, operator: Operator, sql_catalog_sqlite: CatalogUnderTest, policy: str) -> None:
    kc.apply(datalake(sql_catalog_sqlite.properties, deletionPolicy=policy))
    eventually(lambda: ready(kc))
    kc.run("delete", "datalake", "movielens", "--timeout=60s")
    assert kc.run("get", "datalake", "movielens", check=False).returncode != 0
    left = sorted(t for _, t in sql_catalog_sqlite.catalog.list_tables(NS)) if policy == "Retain" else None
    if policy == "Retain":
        assert left == ["movies", "ratings", "user_features"]
    else:
        assert (NS,) not in sql_catalog_sqlite.catalog.list_namespaces()


def test_delete_without_the_secret_lets_go_and_keeps_the_tables(
    kc: Kubectl, operator: Operator, sql_catalog_sqlite: CatalogUnderTest
) -> None:
    """As when a whole namespace goes and its Secret is deleted first: the finalizer must not hang."""
    kc.run("create", "secret", "generic", "catalog", f"--from-literal=uri={sql_catalog_sqlite.properties['uri']}")
    lake = datalake(sql_catalog_sqlite.properties, deletionPolicy="Delete")
    lake["spec"]["catalog"] = {"type": "sql", "warehouse": sql_catalog_sqlite.properties["warehouse"],
                               "secretRef": {"name": "catalog"}}
    kc.apply(lake)
    eventually(lambda: ready(kc))
    kc.run("delete", "secret", "catalog")
    kc.run("delete", "datalake", "movielens", "--timeout=60s")
    assert sorted(t for _, t in sql_catalog_sqlite.catalog.list_tables(NS)) == ["movies", "ratings", "user_features"]


# --- periodic resync: a separate operator process, whose resync interval is set by environment --


@pytest.fixture
def resyncing_operator(cluster: devcluster.Cluster, namespace: str, tmp_path: Path) -> Iterator[float]:
    """`loom run` with a 1 s resync, watching only this test's namespace; yields the interval."""
    interval = 1.0
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "LOOM_RESYNC_SECONDS": str(interval)}
    log = (tmp_path / "operator.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "loom.cli", "run", "--namespace", namespace, "--metrics-port", "0",
         "--liveness", f"http://127.0.0.1:{free_port()}/healthz"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        yield interval
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    assert proc.returncode in (0, -15), (tmp_path / "operator.log").read_text()


def unchanged_for(kc: Kubectl, seconds: float) -> dict[str, Any] | None:
    """The object, if its resourceVersion stayed the same for `seconds` (Kopf patches its annotations
    right after a handler, so Ready alone does not mean nothing else is coming)."""
    first = kc.get("datalake", "movielens")
    time.sleep(seconds)
    second = kc.get("datalake", "movielens")
    return second if second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"] else None


def test_resync_repairs_a_dropped_table_and_otherwise_writes_nothing(
    kc: Kubectl, resyncing_operator: float, sql_catalog_sqlite: CatalogUnderTest
) -> None:
    kc.apply(datalake(sql_catalog_sqlite.properties))
    eventually(lambda: ready(kc), timeout=60, what="DataLake Ready")
    settled = eventually(lambda: unchanged_for(kc, 2.0), timeout=60, what="Kopf's own bookkeeping to settle")
    time.sleep(4 * resyncing_operator)  # several resyncs that find nothing new
    quiet = kc.get("datalake", "movielens")
    assert quiet["metadata"]["resourceVersion"] == settled["metadata"]["resourceVersion"], "a no-op resync writes"
    assert quiet["status"] == settled["status"]

    sql_catalog_sqlite.catalog.purge_table((NS, "movies"))
    eventually(lambda: sql_catalog_sqlite.catalog.table_exists((NS, "movies")), timeout=30,
               what="movies recreated by the resync")
    recreated = sql_catalog_sqlite.catalog.load_table((NS, "movies"))
    assert recreated.current_snapshot() is None, "recreated empty"
    assert [f.name for f in recreated.schema().fields] == ["movieId", "title", "year", "genres"]
    eventually(lambda: ("Warning", "TableRecreated",
                        "table movielens.movies was missing from the catalog (dropped outside Loom); recreated it empty")
               in events(kc), what="a Warning event about the recreated table")
