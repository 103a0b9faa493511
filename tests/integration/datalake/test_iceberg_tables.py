"""The table driver and the planner against real SQL catalogs (SQLite and PostgreSQL): creation is
idempotent, every plan pyiceberg accepts is one commit, data written before stays readable."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.schema import Schema
from pyiceberg.types import IntegerType, ListType, MapType, NestedField, StringType, StructType

from loom.api.datalake import SchemaEvolution, Table
from loom.domain.table_changes import AddPartitionField, TableChanges
from loom.drivers import iceberg_tables as tables
from loom.drivers import pyiceberg_internals
from loom.services.datalake.schema_plan import Plan, plan_creation, plan_table
from tests.integration.datalake.conftest import CatalogUnderTest

NS = "lake"
LENIENT = SchemaEvolution(allow_drop_columns=True, allow_renames=True)


def declare(name: str, columns: list[dict[str, Any]], **rest: Any) -> Table:
    return Table.model_validate({"name": name, "columns": columns, **rest})


RATINGS = declare(
    "ratings",
    [
        {"name": "userId", "type": "long", "required": True, "doc": "user"},
        {"name": "movieId", "type": "int", "required": True},
        {"name": "rating", "type": "float"},
        {"name": "ts", "type": "timestamptz", "required": True},
        {"name": "tags", "type": "list<string>"},
        {"name": "extra", "type": "struct<source:string,weight:decimal(10,2)>"},
    ],
    partitionBy=[{"column": "ts", "transform": "year"}, {"column": "userId", "transform": "bucket[4]", "name": "ub"}],
    sortBy=[{"column": "userId"}, {"column": "rating", "direction": "desc", "nullOrder": "nulls-last"}],
    properties={"write.target-file-size-bytes": "1048576"},
)


# Written to in tests: identity partitioning only, since pyiceberg computes time and bucket transforms
# of appended rows with the optional pyiceberg-core package.
EVENTS = declare(
    "events",
    [
        {"name": "userId", "type": "long", "required": True, "doc": "user"},
        {"name": "movieId", "type": "int", "required": True},
        {"name": "rating", "type": "float"},
        {"name": "ts", "type": "timestamptz", "required": True},
        {"name": "region", "type": "string"},
        {"name": "extra", "type": "struct<source:string,weight:decimal(10,2)>"},
    ],
    partitionBy=[{"column": "region", "transform": "identity"}],
    sortBy=[{"column": "userId"}],
)


def create(catalog: Catalog, table: Table) -> Any:
    tables.ensure_namespace(catalog, NS)
    creation = plan_creation(table)
    assert not creation.refusals
    created, fresh = tables.create_table(catalog, NS, table.name, tables.schema_for(table.columns), creation.changes)
    assert fresh
    return created


def rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"userId": i, "movieId": i * 10, "rating": 0.5 + i % 10 / 2, "ts": datetime(2000 + i % 20, 1, 1, tzinfo=timezone.utc),
         "region": f"r{i % 3}", "extra": {"source": "test", "weight": Decimal("1.25")}}
        for i in range(start, start + n)
    ]


def append(table: Any, data: list[dict[str, Any]]) -> None:
    table.append(pa.Table.from_pylist(data, schema=table.schema().as_arrow()))


def test_created_table_matches_its_declaration(iceberg_catalog: CatalogUnderTest) -> None:
    _, catalog = iceberg_catalog
    table = create(catalog, RATINGS)
    loaded = catalog.load_table((NS, "ratings"))
    assert [f.name for f in loaded.schema().fields] == ["userId", "movieId", "rating", "ts", "tags", "extra"]
    assert loaded.schema().find_field("userId").required and loaded.schema().find_field("userId").doc == "user"
    assert [(f.name, str(f.transform)) for f in loaded.spec().fields] == [("ts_year", "year"), ("ub", "bucket[4]")]
    assert [(loaded.schema().find_column_name(f.source_id), str(f.direction), str(f.null_order))
            for f in loaded.sort_order().fields] == [("userId", "ASC", "NULLS FIRST"), ("rating", "DESC", "NULLS LAST")]
    assert loaded.properties["write.target-file-size-bytes"] == "1048576"
    assert len(loaded.metadata.metadata_log) == 0, "creation is one commit"
    # What was created is exactly what the planner wants: reconciling again changes nothing.
    assert plan_table(RATINGS, SchemaEvolution(), loaded.metadata) == Plan()
    state = tables.observe(table)
    assert (state.current_snapshot_id, state.row_count, state.data_files, state.total_bytes) == (None, 0, 0, 0)


def test_unnamed_partition_fields_are_named_as_update_spec_names_them(iceberg_catalog: CatalogUnderTest) -> None:
    _, catalog = iceberg_catalog
    transforms = ["identity", "bucket[16]", "truncate[4]", "year", "month", "day", "hour", "void"]
    columns = [{"name": f"c{i}", "type": "timestamp" if i in (3, 4, 5, 6) else "string"} for i in range(len(transforms))]
    declared = declare("layout", columns, partitionBy=[
        {"column": f"c{i}", "transform": t} for i, t in enumerate(transforms)])
    tables.ensure_namespace(catalog, NS)
    by_update_spec = catalog.create_table((NS, "by_update_spec"), tables.schema_for(declared.columns))
    with by_update_spec.update_spec() as spec:
        for p in declared.partition_by:
            spec.add_field(p.column, p.transform)
    wanted = [(f.name, str(f.transform)) for f in by_update_spec.spec().fields]
    assert [(f.name, str(f.transform)) for f in create(catalog, declared).spec().fields] == wanted


def test_create_is_idempotent(iceberg_catalog: CatalogUnderTest) -> None:
    _, catalog = iceberg_catalog
    first = create(catalog, RATINGS)
    again, fresh = tables.create_table(catalog, NS, "ratings", tables.schema_for(RATINGS.columns),
                                       plan_creation(RATINGS).changes)
    assert not fresh
    assert again.metadata_location == first.metadata_location
    assert not tables.ensure_namespace(catalog, NS)


@pytest.mark.parametrize("together", [True, False], ids=["one-transaction", "one-create-table-each"])
def test_create_tables_reports_each_table_apart(
    iceberg_catalog: CatalogUnderTest, monkeypatch: pytest.MonkeyPatch, together: bool
) -> None:
    """A SQL catalog's tables are created together; any other catalog's one create_table each. Either
    way each is created as `create_table` creates it, a name taken already is the other writer's, and a
    table that cannot be created stops no other."""
    _, catalog = iceberg_catalog
    if not together:
        monkeypatch.setattr(pyiceberg_internals, "sql_catalog", lambda catalog: None)
    taken = create(catalog, EVENTS)
    broken = TableChanges(spec=(AddPartitionField("nowhere", "identity", "nowhere"),))
    new = {name: (tables.schema_for(declared.columns), plan_creation(declared).changes)
           for name, declared in (("ratings", RATINGS), ("events", EVENTS))}

    made = tables.create_tables(catalog, NS, {**new, "broken": (tables.schema_for(RATINGS.columns), broken)})

    assert list(made) == ["ratings", "events", "broken"]
    ratings, events, failed = made.values()
    assert isinstance(ratings, tables.Created) and ratings.fresh
    loaded = catalog.load_table((NS, "ratings"))
    assert (loaded.metadata_location, loaded.metadata) == (ratings.metadata_location, ratings.metadata)
    assert plan_table(RATINGS, SchemaEvolution(), loaded.metadata) == Plan()
    assert tables.observe_metadata("ratings", ratings.metadata_location, ratings.metadata) == tables.observe(loaded)
    assert isinstance(events, tables.Created) and not events.fresh
    assert events.metadata_location == taken.metadata_location
    assert isinstance(failed, ValueError) and "nowhere" in str(failed)
    assert sorted(name for _, name in catalog.list_tables(NS)) == ["events", "ratings"]


def test_observe_reads_the_snapshot_summary(iceberg_catalog: CatalogUnderTest) -> None:
    _, catalog = iceberg_catalog
    table = create(catalog, EVENTS)
    append(table, rows(50))
    append(table, rows(30, start=50))
    state = tables.observe(catalog.load_table((NS, "events")))
    assert state.current_snapshot_id == table.current_snapshot().snapshot_id
    assert state.row_count == 80
    assert state.data_files == len(table.inspect.files())
    assert state.total_bytes == sum(table.inspect.files()["file_size_in_bytes"].to_pylist())
    assert state.data_files >= 3, "one file per region partition at least"
    assert state.schema_id == 0 and state.name == "events"


def test_safe_evolution_is_one_commit_and_old_data_stays_readable(iceberg_catalog: CatalogUnderTest) -> None:
    _, catalog = iceberg_catalog
    table = create(catalog, EVENTS)
    append(table, rows(20))
    before = catalog.load_table((NS, "events"))
    columns = [c.model_dump(by_alias=True, exclude_none=True) for c in EVENTS.columns]
    columns[1]["type"] = "long"  # widen movieId int -> long
    columns[5]["type"] = "struct<source:string,weight:decimal(12,2),note:string>"  # widen nested, add nested
    columns.insert(2, {"name": "device", "type": "string", "doc": "where the rating came from"})
    evolved = declare("events", columns, partitionBy=[{"column": "ts", "transform": "month"}],
                      sortBy=[{"column": "userId"}], properties={"owner": "loom"})
    plan = plan_table(evolved, SchemaEvolution(), before.metadata)
    assert not plan.refusals and plan.changes
    commits, schema_id = len(before.metadata.metadata_log), before.metadata.current_schema_id
    tables.evolve(before, plan.changes)

    after = catalog.load_table((NS, "events"))
    assert len(after.metadata.metadata_log) == commits + 1, "one commit"
    assert after.metadata.current_schema_id == schema_id + 1, "one new schema"
    assert [f.name for f in after.schema().fields][:3] == ["userId", "movieId", "device"]
    assert str(after.schema().find_field("movieId").field_type) == "long"
    assert [str(f.transform) for f in after.spec().fields] == ["month"]
    assert after.properties["owner"] == "loom"
    assert plan_table(evolved, SchemaEvolution(), after.metadata) == Plan()

    data = after.scan().to_arrow().sort_by("userId")
    assert data.num_rows == 20
    assert data.column("movieId").to_pylist() == [i * 10 for i in range(20)]
    assert data.column("device").to_pylist() == [None] * 20
    assert data.column("extra").to_pylist()[0] == {"source": "test", "weight": pytest.approx(1.25), "note": None}


EVOLUTIONS: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]] = {
    "rename-and-widen": (
        [{"name": "a", "type": "int"}, {"name": "b", "type": "string"}],
        [{"name": "b", "type": "string"}, {"name": "a2", "type": "long", "renamedFrom": "a"}],
        {},
    ),
    "drop-and-make-optional": (
        [{"name": "a", "type": "long", "required": True}, {"name": "gone", "type": "string"}],
        [{"name": "a", "type": "long"}],
        {},
    ),
    "nested-list-map": (
        [{"name": "l", "type": "list<struct<x:int>>"}, {"name": "m", "type": "map<string,float>"}],
        [{"name": "l", "type": "list<struct<x:long,y:string>>"}, {"name": "m", "type": "map<string,double>"}],
        {},
    ),
    "partition-and-sort": (
        [{"name": "a", "type": "int"}, {"name": "t", "type": "timestamp"}],
        [{"name": "a", "type": "int"}, {"name": "t", "type": "timestamp"}, {"name": "r", "type": "string"}],
        {"partitionBy": [{"column": "t", "transform": "day"}, {"column": "r", "transform": "truncate[3]"}],
         "sortBy": [{"column": "r", "direction": "desc"}]},
    ),
}


@pytest.mark.parametrize("case", sorted(EVOLUTIONS))
def test_plans_apply_cleanly(iceberg_catalog: CatalogUnderTest, case: str) -> None:
    """Whatever the planner proposes, pyiceberg commits, and afterwards nothing is left to do."""
    _, catalog = iceberg_catalog
    old_columns, new_columns, layout = EVOLUTIONS[case]
    table = create(catalog, declare("t", old_columns))
    desired = declare("t", new_columns, **layout)
    plan = plan_table(desired, LENIENT, table.metadata)
    assert not plan.refusals and plan.changes
    tables.evolve(table, plan.changes)
    after = catalog.load_table((NS, "t"))
    assert len(after.metadata.metadata_log) == 1
    assert plan_table(desired, LENIENT, after.metadata) == Plan()


def test_drop_purges_files_and_empty_namespace(iceberg_catalog: CatalogUnderTest) -> None:
    _, catalog = iceberg_catalog
    table = create(catalog, EVENTS)
    append(table, rows(10))
    data_files = [urlparse(p).path for p in table.inspect.files()["file_path"].to_pylist()]
    metadata_file = Path(urlparse(catalog.load_table((NS, "events")).metadata_location).path)
    assert metadata_file.exists() and all(Path(p).exists() for p in data_files)
    other = create(catalog, declare("other", [{"name": "a", "type": "int"}]))

    assert tables.drop_table(catalog, NS, "events")
    assert tables.load_table(catalog, NS, "events") is None
    assert not metadata_file.exists() and not any(Path(p).exists() for p in data_files)
    assert not tables.drop_table(catalog, NS, "events")
    assert not tables.drop_namespace_if_empty(catalog, NS), "another table still lives there"
    assert tables.load_table(catalog, NS, "other").metadata_location == other.metadata_location
    assert tables.drop_table(catalog, NS, "other")
    assert tables.drop_namespace_if_empty(catalog, NS)
    assert (NS,) not in catalog.list_namespaces()
    assert not tables.drop_namespace_if_empty(catalog, NS)


def test_required_nested_parts_of_a_foreign_table_are_relaxed(iceberg_catalog: CatalogUnderTest) -> None:
    """A table created elsewhere with not-null nested parts: the spec's syntax makes them optional."""
    _, catalog = iceberg_catalog
    catalog.create_namespace(NS)
    foreign = catalog.create_table((NS, "foreign"), Schema(
        NestedField(1, "l", ListType(2, IntegerType(), element_required=True), required=False),
        NestedField(3, "m", MapType(4, StringType(), 5, IntegerType(), value_required=True), required=False),
        NestedField(6, "s", StructType(NestedField(7, "x", IntegerType(), required=True)), required=False),
    ))
    desired = declare("foreign", [{"name": "l", "type": "list<int>"}, {"name": "m", "type": "map<string,int>"},
                                  {"name": "s", "type": "struct<x:int>"}])
    tables.evolve(foreign, plan_table(desired, SchemaEvolution(), foreign.metadata).changes)
    after = catalog.load_table((NS, "foreign")).schema()
    assert not after.find_field("l.element").required
    assert not after.find_field("m.value").required
    assert not after.find_field("s.x").required
    assert plan_table(desired, SchemaEvolution(), catalog.load_table((NS, "foreign")).metadata) == Plan()
