"""A deleted DataLake's cleanup against a real SQLite Iceberg catalog and the fakes: workloads always go,
tables only under deletionPolicy Delete and only once the lake got a status, and a catalog that
cannot be reached is reported as tables left, with how to drop them."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from loom.api.datalake import DataLakeSpec
from loom.config import OperatorConfig
from loom.domain.workloads import Workload
from loom.drivers import iceberg_lake, iceberg_tables
from loom.drivers.iceberg_catalog import catalog_properties, open_catalog
from loom.services import datalake
from loom.services.context import ReconcileContext
from loom.services.deletion import verdict
from tests.support.executors import FakeExecutor
from tests.support.kube import FakeKube

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
STATUS = {"conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled"}]}
CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens there
WORKLOADS = ("movielens-ingest-movies", "movielens-maintenance")


def spec_of(uri: str, tmp_path: Path, policy: str = "Delete", kind: str = "sql") -> DataLakeSpec:
    return DataLakeSpec.model_validate({
        "catalog": {"type": kind, "uri": uri, "warehouse": f"file://{tmp_path}/wh"},
        "namespace": "movielens",
        "deletionPolicy": policy,
        "tables": [{"name": "ratings", "columns": [{"name": "userId", "type": "long", "required": True}]},
                   {"name": "movies", "columns": [{"name": "movieId", "type": "long", "required": True}]}],
    })


def context(executor: FakeExecutor, status: dict[str, Any]) -> ReconcileContext:
    return ReconcileContext("ml", "movielens", "uid-1", 1, FakeKube(), OperatorConfig(dependency_retry_seconds=3),
                            executor, NOW, status, "loom.dev/v1alpha1", "DataLake")


def executor_with_workloads() -> FakeExecutor:
    executor = FakeExecutor()
    for name in WORKLOADS:
        executor.submit(Workload(name, "ml", "ingest", labels={"loom.dev/datalake": "movielens"}))
    executor.submit(Workload("other-ingest", "ml", "ingest", labels={"loom.dev/datalake": "other"}))
    return executor


def tables(spec: DataLakeSpec) -> list[str]:
    catalog = open_catalog("default", catalog_properties(spec.catalog, {}))
    try:
        return sorted(t for _, t in catalog.list_tables("movielens")) if catalog.list_namespaces() else []
    finally:
        catalog.close()


@pytest.fixture
def created(tmp_path: Path) -> str:
    """A catalog in which the lake's tables exist."""
    uri = f"sqlite:///{tmp_path}/catalog.db"
    datalake.reconcile(spec_of(uri, tmp_path), context(FakeExecutor(), {}))
    return uri


def test_delete_drops_the_tables_and_the_workloads(tmp_path: Path, created: str) -> None:
    executor = executor_with_workloads()
    cleanup = datalake.delete(spec_of(created, tmp_path), context(executor, STATUS))
    assert cleanup.left == () and tables(spec_of(created, tmp_path)) == []
    assert cleanup.removed == ("workload movielens-ingest-movies", "workload movielens-maintenance",
                               "table movielens.ratings", "table movielens.movies")
    assert list(executor.workloads) == [("ml", "other-ingest")]


def test_the_catalog_is_opened_once_to_read_the_owners_and_once_to_drop(
    tmp_path: Path, created: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    open_lake_catalog = iceberg_lake.open_catalog

    def counting(name: str, properties: dict[str, str]) -> Any:
        opened.append(name)
        return open_lake_catalog(name, properties)

    monkeypatch.setattr(iceberg_lake, "open_catalog", counting)
    cleanup = datalake.delete(spec_of(created, tmp_path), context(FakeExecutor(), STATUS))
    assert cleanup.removed == ("table movielens.ratings", "table movielens.movies") and cleanup.left == ()
    assert len(opened) == 2, "one read, then both tables and the namespace dropped in one call"


def test_a_namespace_that_cannot_be_dropped_is_left_after_its_tables(
    tmp_path: Path, created: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(catalog: Any, namespace: str) -> bool:
        raise OSError("namespace locked")

    monkeypatch.setattr(iceberg_tables, "drop_namespace_if_empty", failing)
    cleanup = datalake.delete(spec_of(created, tmp_path), context(FakeExecutor(), STATUS))
    assert cleanup.removed == ("table movielens.ratings", "table movielens.movies")
    (left,) = cleanup.left
    assert (left.what, left.why) == ("namespace movielens in catalog default", "OSError: namespace locked")


def test_retain_never_drops_but_removes_the_workloads(tmp_path: Path, created: str) -> None:
    executor = executor_with_workloads()
    spec = spec_of(created, tmp_path, policy="Retain")
    cleanup = datalake.delete(spec, context(executor, STATUS))
    assert cleanup.left == () and tables(spec) == ["movies", "ratings"]
    assert sorted(name for _, name in executor.deleted) == list(WORKLOADS)


def test_a_lake_that_never_got_a_status_lets_go_at_once(tmp_path: Path) -> None:
    executor = executor_with_workloads()
    cleanup = datalake.delete(spec_of(CLOSED, tmp_path, kind="rest"), context(executor, {}))
    assert cleanup.left == () and verdict(cleanup, 0, 5, 3).retry_after is None
    assert sorted(name for _, name in executor.deleted) == list(WORKLOADS)


def test_an_invalid_spec_removes_only_the_workloads(tmp_path: Path) -> None:
    executor = executor_with_workloads()
    cleanup = datalake.delete(None, context(executor, STATUS))
    assert cleanup.left == () and sorted(name for _, name in executor.deleted) == list(WORKLOADS)


def test_an_unreachable_catalog_is_retried_then_left_with_how_to_drop_the_tables(tmp_path: Path) -> None:
    executor = executor_with_workloads()
    cleanup = datalake.delete(spec_of(CLOSED, tmp_path, kind="rest"), context(executor, STATUS))
    (left,) = cleanup.left
    assert left.what == "tables movielens.ratings, movielens.movies in catalog default"
    assert left.why.endswith("drop them with pyiceberg: catalog.purge_table('movielens.ratings'), "
                             "catalog.purge_table('movielens.movies')")
    assert verdict(cleanup, 0, 5, 3).retry_after == 3
    final = verdict(cleanup, 4, 5, 3)
    assert final.retry_after is None and final.warning is not None and "movielens.ratings" in final.warning
    assert sorted(name for _, name in executor.deleted) == list(WORKLOADS), "workloads go even so"


def test_a_missing_secret_leaves_the_tables_and_names_it(tmp_path: Path, created: str) -> None:
    spec = DataLakeSpec.model_validate({**spec_of(created, tmp_path).model_dump(by_alias=True, exclude_none=True),
                                        "catalog": {"type": "sql", "uri": created, "secretRef": {"name": "gone"}}})
    (left,) = datalake.delete(spec, context(FakeExecutor(), STATUS)).left
    assert "Secret ml/gone does not exist" in left.why and tables(spec) == ["movies", "ratings"]


def test_a_table_that_fails_to_drop_is_left_and_the_ones_before_it_are_gone(
    tmp_path: Path, created: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop_table = iceberg_tables.drop_table

    def failing(catalog: Any, namespace: str, name: str) -> bool:
        if name == "movies":
            raise OSError("warehouse not writable")
        return drop_table(catalog, namespace, name)

    monkeypatch.setattr(iceberg_tables, "drop_table", failing)
    cleanup = datalake.delete(spec_of(created, tmp_path), context(FakeExecutor(), STATUS))
    assert cleanup.removed == ("table movielens.ratings",)
    (left,) = cleanup.left
    assert left.what == "tables movielens.movies in catalog default"
    assert left.why.startswith("OSError: warehouse not writable; drop them with pyiceberg")
    assert tables(spec_of(created, tmp_path)) == ["movies"]
