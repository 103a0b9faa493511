"""The DataLake reconcile as a whole, on a real SQLite Iceberg catalog in a temp dir with the fake
Kubernetes and executor: how often it reads the catalog, and what its messages keep or hide."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pyiceberg.catalog import Catalog as IcebergCatalog
from pyiceberg.io import OutputFile
from pyiceberg.serializers import ToOutputFile
from pyiceberg.table import Table as IcebergTable
from pyiceberg.table.metadata import TableMetadata

from loom.config import OperatorConfig
from loom.drivers import iceberg_lake, iceberg_tables
from loom.services import datalake
from loom.services.context import ReconcileContext
from tests.support.executors import FakeExecutor
from tests.support.kube import FakeKube
from tests.support.specs import sqlite_lake

NOW = datetime(2025, 3, 1, 12, 0, 30, tzinfo=timezone.utc)
SECRET = "hunter2-not-in-any-message"


@pytest.fixture
def ctx() -> Iterator[ReconcileContext]:
    kube = FakeKube()
    kube.put_secret("ml", "lake-credentials", {"s3.secret-access-key": SECRET})
    yield ReconcileContext("ml", "movielens", "uid-1", 1, kube, OperatorConfig(dependency_retry_seconds=1),
                           FakeExecutor(), NOW, {}, "loom.dev/v1alpha1", "DataLake")


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Every table load of the code under test, counted by table name."""
    counted: Counter[str] = Counter()
    load = iceberg_tables.load_table

    def counting(catalog: IcebergCatalog, namespace: str, name: str) -> IcebergTable | None:
        counted[name] += 1
        return load(catalog, namespace, name)

    monkeypatch.setattr(iceberg_tables, "load_table", counting)
    return counted


def test_each_table_is_loaded_once_per_reconcile(tmp_path: Path, ctx: ReconcileContext, loads: Counter[str]) -> None:
    spec = sqlite_lake(tmp_path, ingest=[
        {"name": "ratings", "table": "ratings", "source": {"format": "parquet", "uri": "file:///in/r/*.parquet"},
         "schedule": "*/5 * * * *"},
        {"name": "movies", "table": "movies", "source": {"format": "parquet", "uri": "file:///in/m.parquet"}},
    ])
    assert datalake.reconcile(spec, ctx).ready.status is not False
    loads.clear()
    outcome = datalake.reconcile(spec, ctx)
    assert outcome.ready.status is not False, outcome
    assert loads == {"ratings": 1, "movies": 1}


def test_the_catalog_is_opened_once_to_read_and_once_to_write_all_tables(
    tmp_path: Path, ctx: ReconcileContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    open_catalog = iceberg_lake.open_catalog

    def counting(name: str, properties: dict[str, str]) -> IcebergCatalog:
        opened.append(name)
        return open_catalog(name, properties)

    monkeypatch.setattr(iceberg_lake, "open_catalog", counting)
    spec = sqlite_lake(tmp_path, tables=[
        {"name": f"t{i}", "columns": [{"name": "id", "type": "long", "required": True}]} for i in range(5)])
    outcome = datalake.reconcile(spec, ctx)
    assert outcome.ready.status is not False, outcome
    assert [row.schema_id for row in outcome.fields["tables"]] == [0] * 5
    assert len(opened) == 2, "one read for observe, one write of the namespace and the five tables"


def test_messages_hide_secret_values_and_nothing_else(
    tmp_path: Path, ctx: ReconcileContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_metadata = ToOutputFile.table_metadata

    def failing(metadata: TableMetadata, output_file: OutputFile, overwrite: bool = False) -> None:
        if "/movies/" in output_file.location:
            raise OSError(f"sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) disk I/O error "
                          f"writing {tmp_path}/wh with s3.secret-access-key={SECRET}")
        write_metadata(metadata, output_file, overwrite)

    monkeypatch.setattr(ToOutputFile, "table_metadata", staticmethod(failing))
    outcome = datalake.reconcile(sqlite_lake(tmp_path), ctx)
    tables_ready = next(c for c in outcome.conditions if c.type == "TablesReady")
    assert tables_ready.status is False and outcome.retry_after == 1
    assert SECRET not in repr(outcome)
    assert (f"table movies: sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) disk I/O error "
            f"writing {tmp_path}/wh with s3.secret-access-key=***") in tables_ready.message
