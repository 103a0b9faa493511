"""The DataLake service against real catalogs (SQLite, PostgreSQL) and the real kube-apiserver (for
Secrets): conditions, status fields, events, refusals, secrets, deletion. The status a reconcile
wrote is what the next one gets, as Kopf delivers it."""

from __future__ import annotations

import copy
import sys
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from loom.api.datalake import DataLakeSpec, DataLakeStatus
from loom.api.meta import API_VERSION
from loom.config import OperatorConfig
from loom.domain.outcome import Outcome
from loom.domain.workloads import PythonEnv
from loom.drivers.kube import KubeClient
from loom.drivers.kube_http import KubeHttp
from loom.executors.local import LocalExecutor
from loom.services import datalake
from loom.services.context import ReconcileContext
from loom.services.status import next_status
from tests.integration.conftest import Kubectl, sample
from tests.integration.datalake.conftest import CatalogUnderTest, Postgres

NOW = datetime(2025, 3, 1, 12, 0, 30, tzinfo=timezone.utc)


@pytest.fixture
def ctx(kube_api: KubeHttp, namespace: str, tmp_path: Path) -> ReconcileContext:
    kube = KubeClient(kube_api)
    executor = LocalExecutor(tmp_path / "runs", {PythonEnv.MAIN: sys.executable}, kube.get_secret)
    return ReconcileContext(namespace, "movielens", "uid-movielens", 1, kube,
                            OperatorConfig(dependency_retry_seconds=1), executor, NOW, {}, API_VERSION, "DataLake")


def after(ctx: ReconcileContext, outcome: Outcome) -> ReconcileContext:
    """The context of the next reconcile: the status this outcome is written as."""
    written, _ = next_status(DataLakeStatus, ctx.status, outcome, ctx.generation, ctx.now)
    return ctx if written is None else replace(ctx, status=written)


def lake_spec(properties: dict[str, str], **changes: Any) -> dict[str, Any]:
    """samples/datalake.yaml's spec, pointed at the catalog under test; without its ingests and
    maintenance (their workloads are tested on their own), so these tests see the tables step alone."""
    spec = copy.deepcopy(sample("datalake")["spec"])
    spec["catalog"] = {"type": "sql", "uri": properties["uri"], "warehouse": properties["warehouse"]}
    spec["ingest"] = []
    spec.pop("maintenance")
    spec.update(changes)
    return spec


def parse(spec: dict[str, Any]) -> DataLakeSpec:
    return DataLakeSpec.model_validate(spec)


def conditions(outcome: Outcome) -> dict[str, tuple[bool | None, str, str]]:
    return {c.type: (c.status, c.reason, c.message) for c in outcome.conditions}


def locations(cut: CatalogUnderTest, *names: str) -> dict[str, str]:
    return {n: cut.catalog.load_table(("movielens", n)).metadata_location for n in names}


def test_first_reconcile_creates_everything_second_changes_nothing(
    iceberg_catalog: CatalogUnderTest, ctx: ReconcileContext
) -> None:
    spec = parse(lake_spec(iceberg_catalog.properties))
    first = datalake.reconcile(spec, ctx)
    conds = conditions(first)
    assert conds["CatalogReady"][0] is True
    assert conds["SchemaCompatible"][0] is True
    assert conds["TablesReady"] == (True, "Reconciled", "3 table(s) in namespace movielens")
    assert first.ready.status is True and first.retry_after is None
    assert first.fields["table_count"] == 3
    rows = {t.name: t for t in first.fields["tables"]}
    assert list(rows) == ["ratings", "movies", "user_features"]
    assert rows["ratings"].schema_id == 0 and rows["ratings"].row_count == 0 and rows["ratings"].current_snapshot_id is None
    assert [(e.type, e.reason) for e in first.events] == [("Normal", "NamespaceCreated"), ("Normal", "TablesCreated")]
    assert "ratings, movies, user_features" in first.events[1].message

    before = locations(iceberg_catalog, "ratings", "movies", "user_features")
    second = datalake.reconcile(spec, after(ctx, first))
    assert second.events == ()
    assert second.conditions == first.conditions and second.fields == first.fields
    assert locations(iceberg_catalog, "ratings", "movies", "user_features") == before, "no commit on a no-op"


def test_refused_change_leaves_that_table_untouched_and_others_evolve(
    iceberg_catalog: CatalogUnderTest, ctx: ReconcileContext
) -> None:
    raw = lake_spec(iceberg_catalog.properties)
    datalake.reconcile(parse(raw), ctx)
    before = locations(iceberg_catalog, "ratings", "movies")
    ratings_schema = iceberg_catalog.catalog.load_table(("movielens", "ratings")).metadata.current_schema_id

    raw["tables"][0]["columns"][2]["type"] = "int"  # ratings.rating float -> int: not a safe change
    raw["tables"][1]["columns"].append({"name": "imdbId", "type": "long"})  # movies: safe
    raw["tables"][1]["columns"][2]["type"] = "long"  # movies.year int -> long: safe
    outcome = datalake.reconcile(parse(raw), ctx)

    status, reason, message = conditions(outcome)["SchemaCompatible"]
    assert (status, reason) == (False, "SchemaChangeRefused")
    assert "table ratings: column rating: changing float to int is not a safe type change" in message
    assert conditions(outcome)["TablesReady"][0] is True
    assert outcome.ready.status is False and outcome.ready.reason == "SchemaChangeRefused"
    ratings = iceberg_catalog.catalog.load_table(("movielens", "ratings"))
    assert ratings.metadata_location == before["ratings"], "the refused table is byte-for-byte unchanged"
    assert ratings.metadata.current_schema_id == ratings_schema
    movies = iceberg_catalog.catalog.load_table(("movielens", "movies"))
    assert movies.metadata_location != before["movies"]
    assert [f.name for f in movies.schema().fields][-1] == "imdbId"
    assert [(e.reason, e.message) for e in outcome.events] == [
        ("TableEvolved", "table movielens.movies: widen to long: year; add column imdbId long")
    ]
    assert {t.name: t.schema_id for t in outcome.fields["tables"]} == {"ratings": 0, "movies": 1, "user_features": 0}


def test_declaration_that_cannot_be_built_blocks_only_its_table(
    sql_catalog_sqlite: CatalogUnderTest, ctx: ReconcileContext
) -> None:
    raw = lake_spec(sql_catalog_sqlite.properties)
    raw["tables"][1]["partitionBy"] = [{"column": "title", "transform": "day"}]
    outcome = datalake.reconcile(parse(raw), ctx)
    conds = conditions(outcome)
    assert conds["SchemaCompatible"][:2] == (False, "SchemaChangeRefused")
    assert "table movies: column title: transform day cannot partition string values" in conds["SchemaCompatible"][2]
    assert conds["TablesReady"] == (False, "TableNotCreated", "1 of 3 table(s) cannot be created")
    assert outcome.fields["table_count"] == 2
    assert sorted(t for _, t in sql_catalog_sqlite.catalog.list_tables("movielens")) == ["ratings", "user_features"]


def test_catalog_credentials_come_from_the_secret_and_never_leak(
    postgres: Postgres, sql_catalog_postgres: CatalogUnderTest, ctx: ReconcileContext, kc: Kubectl
) -> None:
    uri = sql_catalog_postgres.properties["uri"]
    raw = lake_spec(sql_catalog_postgres.properties)
    raw["catalog"] = {"type": "sql", "warehouse": raw["catalog"]["warehouse"], "secretRef": {"name": "pg", "key": "uri"}}

    missing = datalake.reconcile(parse(raw), ctx)
    assert conditions(missing)["CatalogReady"][:2] == (False, "SecretNotFound")
    assert missing.retry_after == 1

    kc.run("create", "secret", "generic", "pg", f"--from-literal=uri={uri}", "--from-literal=other=ignored")
    outcome = datalake.reconcile(parse(raw), ctx)
    assert outcome.ready.status is True
    assert sorted(t for _, t in sql_catalog_postgres.catalog.list_tables("movielens")) == [
        "movies", "ratings", "user_features"]
    assert postgres.password not in repr(outcome)

    wrong = "definitely-not-the-password"
    kc.run("create", "secret", "generic", "pg-wrong", f"--from-literal=uri={uri.replace(postgres.password, wrong)}")
    raw["catalog"]["secretRef"] = {"name": "pg-wrong"}
    failed = datalake.reconcile(parse(raw), ctx)
    status, reason, message = conditions(failed)["CatalogReady"]
    assert (status, reason) == (False, "CatalogUnavailable")
    assert "password authentication failed" in message
    assert wrong not in repr(failed) and postgres.password not in repr(failed)
    assert failed.retry_after == 1


def test_a_table_dropped_outside_loom_is_recreated_with_a_warning(
    sql_catalog_sqlite: CatalogUnderTest, ctx: ReconcileContext
) -> None:
    spec = parse(lake_spec(sql_catalog_sqlite.properties))
    first = datalake.reconcile(spec, ctx)
    sql_catalog_sqlite.catalog.purge_table(("movielens", "movies"))
    again = datalake.reconcile(spec, after(ctx, first))  # the status says Loom had the table before
    assert [(e.type, e.reason) for e in again.events] == [("Warning", "TableRecreated")]
    assert sql_catalog_sqlite.catalog.table_exists(("movielens", "movies"))
    assert again.ready.status is True


@pytest.mark.parametrize("policy", ["Retain", "Delete"])
def test_deletion_policy(iceberg_catalog: CatalogUnderTest, ctx: ReconcileContext, policy: str) -> None:
    spec = parse(lake_spec(iceberg_catalog.properties, deletionPolicy=policy))
    ctx = after(ctx, datalake.reconcile(spec, ctx))
    cleanup = datalake.delete(spec, ctx)
    left = sorted(t for _, t in iceberg_catalog.catalog.list_tables("movielens")) if policy == "Retain" else []
    assert cleanup.left == ()
    if policy == "Retain":
        assert cleanup.removed == () and left == ["movies", "ratings", "user_features"]
    else:
        assert cleanup.removed == ("table movielens.ratings", "table movielens.movies", "table movielens.user_features")
        assert ("movielens",) not in iceberg_catalog.catalog.list_namespaces()
        assert datalake.delete(spec, ctx).removed == (), "deleting again finds nothing"
