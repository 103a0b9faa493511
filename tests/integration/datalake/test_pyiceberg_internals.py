"""What Loom relies on in pyiceberg's internals (drivers/pyiceberg_internals.py), pinned against real
pyiceberg and a real SQLite catalog (and PostgreSQL for table creation): data files written apart from
any snapshot, in the table's schema and partition spec, sized by a target given per write; a commit of
a transaction's staged changes with extra requirements, made exactly once; and tables of a SQL catalog
created as create_table creates them, in one transaction. A pyiceberg upgrade that changes any of it fails here."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import CommitFailedException, NoSuchNamespaceError
from pyiceberg.manifest import DataFile, FileFormat
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table, TableProperties, Transaction
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.sorting import SortField, SortOrder
from pyiceberg.table.update import AssertDefaultSpecId, AssertTableUUID
from pyiceberg.transforms import BucketTransform, IdentityTransform, TruncateTransform, YearTransform
from pyiceberg.types import DoubleType, LongType, NestedField, StringType, StructType, TimestamptzType
from sqlalchemy import event

from loom.drivers import pyiceberg_internals
from loom.drivers.iceberg_catalog import open_catalog
from loom.drivers.pyiceberg_internals import (
    NewMetadata,
    TableDefinition,
    commit_once,
    create_sql_tables,
    sql_catalog,
    write_data_files,
)
from tests.integration.datalake.conftest import CatalogUnderTest

SCHEMA = Schema(
    NestedField(1, "id", LongType(), required=True),
    NestedField(2, "region", StringType(), required=True),
    NestedField(3, "score", DoubleType()),
)
BY_REGION = PartitionSpec(PartitionField(source_id=2, field_id=1000, transform=IdentityTransform(), name="region"))
ARROW = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("region", pa.string(), nullable=False),
                   pa.field("score", pa.float64())])
REGIONS = ("eu", "us")


def rows(first: int, n: int) -> pa.Table:
    ids = range(first, first + n)
    return pa.table({"id": list(ids), "region": [REGIONS[i % 2] for i in ids], "score": [i / 4 for i in ids]},
                    schema=ARROW)


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    catalog = open_catalog("default", {"type": "sql", "uri": f"sqlite:///{tmp_path / 'catalog.db'}",
                                       "warehouse": f"file://{tmp_path / 'warehouse'}"})
    catalog.create_namespace("lake")
    yield catalog
    catalog.close()


@pytest.fixture
def table(catalog: Catalog) -> Table:
    return catalog.create_table(("lake", "scores"), schema=SCHEMA, partition_spec=BY_REGION)


def local(data_file: DataFile) -> Path:
    return Path(urlparse(data_file.file_path).path)


def staged_append(table: Table, data_files: list[DataFile]) -> Transaction:
    tx = table.transaction()
    with tx.update_snapshot().fast_append() as append:
        for data_file in data_files:
            append.append_data_file(data_file)
    return tx


def test_write_data_files_writes_parquet_of_the_schema_and_spec_without_a_snapshot(
    catalog: Catalog, table: Table
) -> None:
    metadata_location = table.metadata_location
    write_uuid, counter = uuid.uuid4(), itertools.count()

    first = list(write_data_files(table, rows(0, 100), write_uuid, counter))
    second = list(write_data_files(table, rows(100, 10), write_uuid, counter))

    for data_file in first + second:
        assert local(data_file).is_file() and data_file.file_format == FileFormat.PARQUET
        assert local(data_file).stem.endswith(str(write_uuid))
        assert local(data_file).parent.name == f"region={data_file.partition[0]}"  # the spec's partition path
        written = pq.read_table(local(data_file))
        assert [f.metadata[b"PARQUET:field_id"] for f in written.schema] == [b"1", b"2", b"3"]
        assert data_file.record_count == written.num_rows
        assert set(written["region"].to_pylist()) == {data_file.partition[0]}  # one partition per file
    assert {f.partition[0] for f in first} == set(REGIONS)
    assert len({f.file_path for f in first + second}) == len(first) + len(second)  # the shared counter
    assert sum(f.record_count for f in first) == 100
    reloaded = catalog.load_table(("lake", "scores"))
    assert reloaded.metadata_location == metadata_location and reloaded.current_snapshot() is None


def test_write_data_files_honours_a_target_size_without_touching_the_table(catalog: Catalog, table: Table) -> None:
    data = rows(0, 20_000)
    properties = dict(table.metadata.properties)

    default = list(write_data_files(table, data, uuid.uuid4()))
    small = list(write_data_files(table, data, uuid.uuid4(), target_file_size_bytes=data.nbytes // 20))

    assert len(default) == len(REGIONS)  # one file per partition at the default 512 MB
    assert len(small) > 2 * len(default)
    assert sum(f.record_count for f in small) == data.num_rows
    assert TableProperties.WRITE_TARGET_FILE_SIZE_BYTES not in table.metadata.properties
    assert dict(table.metadata.properties) == properties
    assert dict(catalog.load_table(("lake", "scores")).properties) == properties


WIDE = Schema(
    NestedField(1, "id", LongType(), required=True),
    NestedField(2, "region", StringType()),
    NestedField(3, "at", TimestamptzType()),
    NestedField(4, "place", StructType(NestedField(5, "city", StringType()))),
)
WIDE_SPEC = PartitionSpec(
    PartitionField(source_id=3, field_id=1000, transform=YearTransform(), name="at_year"),
    PartitionField(source_id=2, field_id=1001, transform=IdentityTransform(), name="region"),
    PartitionField(source_id=1, field_id=1002, transform=BucketTransform(4), name="id_bucket"),
    PartitionField(source_id=5, field_id=1003, transform=TruncateTransform(1), name="city_initial"),
)


def wide_rows(n: int) -> pa.Table:
    """Rows over several values of every partition field, nulls among them, in no partition order."""
    return pa.Table.from_pylist([
        {"id": i * 7919 % n, "region": (None, "eu", "us")[i % 3],
         "at": None if i % 5 == 0 else datetime(2000 + i * 31 % 4, 1 + i % 12, 1, tzinfo=timezone.utc),
         "place": {"city": (None, "Oslo", "Lima", "Lyon")[i * 13 % 4]}}
        for i in range(n)
    ], schema=WIDE.as_arrow())


def by_partition(table: Table) -> dict[str, list[int]]:
    """Each partition's ids in the order its files hold them."""
    ids: dict[str, list[int]] = {}
    for task in table.scan().plan_files():
        ids.setdefault(str(task.file.partition), []).extend(pq.read_table(local(task.file))["id"].to_pylist())
    return ids


def test_write_data_files_splits_rows_by_partition_as_pyiceberg_does(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one-pass split (sorted slices, nulls and nested sources included) puts each row in the
    partition pyiceberg's own append puts it in, in the same order."""
    monkeypatch.setattr(pyiceberg_internals, "SPLIT_ROWS", 97)  # many slices, each over many partitions
    data = wide_rows(3000)
    ours = catalog.create_table(("lake", "ours"), schema=WIDE, partition_spec=WIDE_SPEC)
    theirs = catalog.create_table(("lake", "theirs"), schema=WIDE, partition_spec=WIDE_SPEC)

    staged = list(write_data_files(ours, data, uuid.uuid4()))
    commit_once(catalog, ours, staged_append(ours, staged))
    theirs.append(data)

    expected = by_partition(catalog.load_table(("lake", "theirs")))
    assert len(expected) > 50 and any("None" in partition for partition in expected)
    assert by_partition(catalog.load_table(("lake", "ours"))) == expected
    assert len(staged) == len(expected)  # one file per partition at the default target size


def test_commit_once_commits_staged_appends_with_extra_requirements(catalog: Catalog, table: Table) -> None:
    data_files = list(write_data_files(table, rows(0, 50), uuid.uuid4()))
    tx = staged_append(table, data_files)
    tx.set_properties({"loom.test": "record"})

    commit_once(catalog, table, tx, (AssertTableUUID(uuid=table.metadata.table_uuid),
                                     AssertDefaultSpecId(default_spec_id=table.metadata.default_spec_id)))

    committed = catalog.load_table(("lake", "scores"))
    assert committed.properties["loom.test"] == "record"  # staged in the same transaction, same commit
    assert len(committed.metadata.snapshots) == 1
    assert {task.file.file_path for task in committed.scan().plan_files()} == {f.file_path for f in data_files}
    assert sorted(committed.scan().to_arrow()["id"].to_pylist()) == list(range(50))


def test_commit_once_refuses_when_an_extra_requirement_no_longer_holds(catalog: Catalog, table: Table) -> None:
    tx = staged_append(table, list(write_data_files(table, rows(0, 10), uuid.uuid4())))

    with pytest.raises(CommitFailedException):
        commit_once(catalog, table, tx, (AssertDefaultSpecId(default_spec_id=table.metadata.default_spec_id + 1),))

    assert catalog.load_table(("lake", "scores")).current_snapshot() is None


def test_commit_once_neither_rebases_nor_retries_on_a_moved_branch(
    catalog: Catalog, table: Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transaction's own requirements assert the branch head its snapshot was built on; a
    concurrent commit makes the one attempt fail, and nothing is committed on top of it."""
    tx = staged_append(table, list(write_data_files(table, rows(0, 10), uuid.uuid4())))
    catalog.load_table(("lake", "scores")).append(rows(1000, 5))  # another writer gets there first
    head = catalog.load_table(("lake", "scores")).metadata.current_snapshot_id
    attempts: list[object] = []
    commit_table = catalog.commit_table

    def counted(*args: Any) -> Any:
        attempts.append(args)
        return commit_table(*args)

    monkeypatch.setattr(catalog, "commit_table", counted)

    with pytest.raises(CommitFailedException):
        commit_once(catalog, table, tx)

    assert len(attempts) == 1
    after = catalog.load_table(("lake", "scores"))
    assert after.metadata.current_snapshot_id == head and len(after.metadata.snapshots) == 1
    assert sorted(after.scan().to_arrow()["id"].to_pylist()) == list(range(1000, 1005))


BY_ID = SortOrder(SortField(source_id=1, transform=IdentityTransform()))


def sql(catalog: Catalog) -> SqlCatalog:
    found = sql_catalog(catalog)
    assert found is not None
    return found


def commits(catalog: Catalog) -> list[object]:
    """Every commit of the SQL catalog's engine from now on."""
    seen: list[object] = []
    event.listen(sql(catalog).engine, "commit", seen.append)
    return seen


def without_identity(metadata: TableMetadata) -> dict[str, Any]:
    """The metadata apart from what differs between two tables of the same definition."""
    return metadata.model_dump(exclude={"location", "table_uuid", "last_updated_ms"})


@pytest.mark.parametrize("namespace_location", [False, True])
def test_create_sql_tables_makes_what_create_table_makes_in_one_commit(
    iceberg_catalog: CatalogUnderTest, tmp_path: Path, namespace_location: bool
) -> None:
    _, catalog = iceberg_catalog
    placed = {"location": f"file://{tmp_path}/placed/"} if namespace_location else {}
    catalog.create_namespace("made", placed)
    theirs = catalog.create_table(("made", "theirs"), SCHEMA, partition_spec=BY_REGION, sort_order=BY_ID,
                                  properties={"owner": "me"})
    definition = TableDefinition(SCHEMA, BY_REGION, BY_ID, {"owner": "me"})
    committed = commits(catalog)

    made = create_sql_tables(sql(catalog), "made", {"ours": definition, "also": definition})

    assert len(committed) == 1
    assert list(made) == ["ours", "also"]
    for name, new in made.items():
        assert isinstance(new, NewMetadata)
        loaded = catalog.load_table(("made", name))
        assert (loaded.metadata_location, loaded.metadata) == (new.metadata_location, new.metadata)
        assert loaded.location() == theirs.location().removesuffix("/theirs") + f"/{name}"
        assert new.metadata_location.startswith(f"{loaded.location()}/metadata/00000-")
        assert without_identity(loaded.metadata) == without_identity(theirs.metadata)
    assert sorted(catalog.list_tables("made")) == [("made", "also"), ("made", "ours"), ("made", "theirs")]


def test_create_sql_tables_leaves_a_name_taken_meanwhile_to_its_writer(iceberg_catalog: CatalogUnderTest) -> None:
    """The shared transaction fails on the taken name; each row then goes alone, as create_table's."""
    _, catalog = iceberg_catalog
    catalog.create_namespace("made")
    taken = catalog.create_table(("made", "taken"), Schema(NestedField(1, "other", StringType())))
    definition = TableDefinition(SCHEMA, BY_REGION, BY_ID, {})

    made = create_sql_tables(sql(catalog), "made", {"first": definition, "taken": definition, "last": definition})

    assert made["taken"] is None
    assert catalog.load_table(("made", "taken")).metadata_location == taken.metadata_location
    for name in ("first", "last"):
        new = made[name]
        assert isinstance(new, NewMetadata)
        assert catalog.load_table(("made", name)).metadata_location == new.metadata_location


def test_create_sql_tables_needs_the_namespace(iceberg_catalog: CatalogUnderTest) -> None:
    _, catalog = iceberg_catalog
    with pytest.raises(NoSuchNamespaceError):
        create_sql_tables(sql(catalog), "missing", {"t": TableDefinition(SCHEMA, BY_REGION, BY_ID, {})})
