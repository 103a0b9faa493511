"""One table, one owner, through whole reconciles and deletions of two DataLakes over one real SQLite
Iceberg catalog in a temp dir, with the fake Kubernetes (which holds the DataLakes that exist) and
executor: who records itself on a table, who leaves it alone, who adopts it and when."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from pyiceberg.catalog import Catalog as IcebergCatalog

from loom.api.datalake import DataLakeSpec
from loom.api.kinds import DATALAKE
from loom.config import OperatorConfig
from loom.domain.outcome import Outcome
from loom.drivers import iceberg_tables
from loom.drivers.iceberg_catalog import catalog_properties, open_catalog
from loom.drivers.iceberg_owner import OWNER, OWNER_UID
from loom.services import datalake
from loom.services.context import ReconcileContext
from tests.support.executors import FakeExecutor
from tests.support.kube import FakeKube

NOW = datetime(2025, 3, 1, 12, 0, 30, tzinfo=timezone.utc)
STATUS = {"conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled"}]}


def lake(tmp_path: Path, movie_id: str = "int", policy: str = "Retain") -> DataLakeSpec:
    return DataLakeSpec.model_validate({
        "catalog": {"type": "sql", "uri": f"sqlite:///{tmp_path}/catalog.db", "warehouse": f"file://{tmp_path}/wh"},
        "namespace": "movielens",
        "deletionPolicy": policy,
        "tables": [{"name": "movies", "columns": [{"name": "movieId", "type": movie_id, "required": True}]}],
    })


def with_ratings(spec: DataLakeSpec) -> DataLakeSpec:
    ratings = {"name": "ratings", "columns": [{"name": "userId", "type": "long", "required": True}]}
    raw = spec.model_dump(by_alias=True, exclude_none=True)
    return DataLakeSpec.model_validate({**raw, "tables": [*raw["tables"], ratings]})


class Cluster:
    """The DataLakes that exist, as the fake Kubernetes API holds them."""

    def __init__(self) -> None:
        self.kube = FakeKube()

    def add(self, name: str, uid: str) -> None:
        self.kube.put(DATALAKE, {"metadata": {"namespace": "ml", "name": name, "uid": uid}})

    def remove(self, name: str) -> None:
        del self.kube.objects[(DATALAKE.plural, "ml", name)]

    def ctx(self, name: str, uid: str, status: dict[str, Any] | None = None) -> ReconcileContext:
        return ReconcileContext("ml", name, uid, 1, self.kube, OperatorConfig(dependency_retry_seconds=2),
                                FakeExecutor(), NOW, status or {}, "loom.dev/v1alpha1", "DataLake")


@pytest.fixture
def cluster() -> Cluster:
    found = Cluster()
    found.add("first", "uid-first")
    found.add("second", "uid-second")
    return found


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[IcebergCatalog]:
    opened = open_catalog("default", catalog_properties(lake(tmp_path).catalog, {}))
    yield opened
    opened.close()


def condition(outcome: Outcome, type_: str) -> tuple[bool | None, str, str]:
    found = next(c for c in outcome.conditions if c.type == type_)
    return found.status, found.reason, found.message


def movie_id(catalog: IcebergCatalog) -> str:
    return str(catalog.load_table(("movielens", "movies")).schema().find_field("movieId").field_type)


def owner(catalog: IcebergCatalog, table: str = "movies") -> tuple[str | None, str | None]:
    properties = catalog.load_table(("movielens", table)).metadata.properties
    return properties.get(OWNER), properties.get(OWNER_UID)


def test_a_second_lake_leaves_the_first_ones_table_alone(tmp_path: Path, cluster: Cluster,
                                                         catalog: IcebergCatalog) -> None:
    first = datalake.reconcile(lake(tmp_path), cluster.ctx("first", "uid-first"))
    assert first.ready.status is True and owner(catalog) == ("ml/first", "uid-first")

    second = datalake.reconcile(with_ratings(lake(tmp_path, "long")), cluster.ctx("second", "uid-second"))
    assert movie_id(catalog) == "int", "the second lake's widening must not reach the first one's table"
    status, reason, message = condition(second, "TablesReady")
    assert (status, reason) == (False, "TableOwnedElsewhere") and "DataLake ml/first" in message
    assert second.ready.status is False and second.ready.reason == "TableOwnedElsewhere"
    assert "ml/first" in second.ready.message and second.retry_after is None
    rows = {row.name: row for row in second.fields["tables"]}
    assert rows["movies"].owned_by == "ml/first" and rows["movies"].schema_id is None
    assert rows["ratings"].owned_by is None and rows["ratings"].schema_id == 0, "its other table goes on"
    assert owner(catalog, "ratings") == ("ml/second", "uid-second")

    again = datalake.reconcile(lake(tmp_path), cluster.ctx("first", "uid-first"))
    assert again.ready.status is True and again.events == ()


def test_when_the_owner_is_gone_the_next_claimant_adopts_and_evolves(tmp_path: Path, cluster: Cluster,
                                                                   catalog: IcebergCatalog) -> None:
    datalake.reconcile(lake(tmp_path), cluster.ctx("first", "uid-first"))
    cluster.remove("first")  # deleted with deletionPolicy Retain
    second = datalake.reconcile(lake(tmp_path, "long"), cluster.ctx("second", "uid-second"))
    assert second.ready.status is True, second
    assert movie_id(catalog) == "long" and owner(catalog) == ("ml/second", "uid-second")
    assert [(e.reason, e.message) for e in second.events] == [
        ("TableAdopted", "table movielens.movies: adopted, its owner DataLake ml/first no longer exists"),
        ("TableEvolved", "table movielens.movies: widen to long: movieId")]


def test_a_new_lake_of_the_owners_name_is_not_the_owner_but_adopts(tmp_path: Path, cluster: Cluster,
                                                                    catalog: IcebergCatalog) -> None:
    datalake.reconcile(lake(tmp_path), cluster.ctx("first", "uid-first"))
    cluster.add("first", "uid-first-again")  # deleted and created again: a new object
    outcome = datalake.reconcile(lake(tmp_path), cluster.ctx("first", "uid-first-again"))
    assert outcome.ready.status is True and owner(catalog) == ("ml/first", "uid-first-again")
    assert [e.reason for e in outcome.events] == ["TableAdopted"]


def test_a_table_without_an_owner_is_adopted(tmp_path: Path, cluster: Cluster, catalog: IcebergCatalog) -> None:
    catalog.create_namespace("movielens")
    catalog.create_table(("movielens", "movies"), iceberg_tables.schema_for(lake(tmp_path).tables[0].columns))
    outcome = datalake.reconcile(lake(tmp_path), cluster.ctx("second", "uid-second"))
    assert outcome.ready.status is True and owner(catalog) == ("ml/second", "uid-second")
    assert [(e.reason, e.message) for e in outcome.events] == [
        ("TableAdopted", "table movielens.movies: adopted, it recorded no owner")]


def test_an_owner_that_cannot_be_read_keeps_the_table(tmp_path: Path, cluster: Cluster, catalog: IcebergCatalog,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    datalake.reconcile(lake(tmp_path), cluster.ctx("first", "uid-first"))

    def forbidden(*_: Any) -> None:
        raise PermissionError("datalakes.loom.dev is forbidden")

    monkeypatch.setattr(cluster.kube, "get_loom", forbidden)
    outcome = datalake.reconcile(lake(tmp_path, "long"), cluster.ctx("second", "uid-second"))
    assert movie_id(catalog) == "int" and owner(catalog) == ("ml/first", "uid-first")
    status, reason, message = condition(outcome, "TablesReady")
    assert (status, reason) == (False, "TableOwnedElsewhere") and "forbidden" in message
    assert outcome.retry_after == 2


def test_delete_drops_only_the_tables_the_lake_owns(tmp_path: Path, cluster: Cluster,
                                                    catalog: IcebergCatalog) -> None:
    datalake.reconcile(lake(tmp_path), cluster.ctx("first", "uid-first"))
    spec = with_ratings(lake(tmp_path, policy="Delete"))
    datalake.reconcile(spec, cluster.ctx("second", "uid-second"))
    cleanup = datalake.delete(spec, cluster.ctx("second", "uid-second", STATUS))
    assert cleanup.left == () and cleanup.removed == ("table movielens.ratings",)
    assert [name for _, name in catalog.list_tables("movielens")] == ["movies"]
    assert owner(catalog) == ("ml/first", "uid-first")
