"""The evolution planner: declared table vs current Iceberg metadata gives safe changes or refusals."""

from __future__ import annotations

from typing import Any

import pytest
from pyiceberg.partitioning import PartitionField as IcebergPartitionField
from pyiceberg.partitioning import PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table.metadata import TableMetadata, new_table_metadata
from pyiceberg.table.sorting import NullOrder, SortDirection, SortOrder
from pyiceberg.table.sorting import SortField as IcebergSortField
from pyiceberg.transforms import parse_transform
from pyiceberg.types import (
    DecimalType,
    DoubleType,
    IntegerType,
    ListType,
    LongType,
    MapType,
    NestedField,
    StringType,
    StructType,
)

from loom.api.datalake import SchemaEvolution, Table
from loom.domain.table_changes import (
    AddColumn,
    AddPartitionField,
    DropColumn,
    MoveColumn,
    RemovePartitionField,
    RenameColumn,
    RenamePartitionField,
    SortKey,
    TableChanges,
    UpdateColumn,
)
from loom.drivers.iceberg_tables import schema_for
from loom.services.datalake.schema_plan import Plan, Refusal, plan_creation, plan_table

STRICT = SchemaEvolution()
LENIENT = SchemaEvolution(allow_drop_columns=True, allow_renames=True)


def declare(*columns: str | dict[str, Any], **table: Any) -> Table:
    """`"name:type"` or a full column dict; `!` after the type marks a required column."""
    cols = []
    for c in columns:
        if isinstance(c, str):
            name, type_ = c.split(":", 1)
            cols.append({"name": name, "type": type_.rstrip("!"), "required": type_.endswith("!")})
        else:
            cols.append(c)
    return Table.model_validate({"name": "t", "columns": cols, **table})


def metadata(schema: Schema, partition: list[tuple[str, str, str]] = (), sort: list[str] = (),  # type: ignore[assignment]
             properties: dict[str, str] | None = None) -> TableMetadata:
    """Current table metadata as pyiceberg would create it (fresh ids, spec and sort order bound by name)."""
    spec = PartitionSpec(*(
        IcebergPartitionField(schema.find_field(col).field_id, 1000 + i, parse_transform(tr), name)
        for i, (col, tr, name) in enumerate(partition)
    ))
    order = SortOrder(*(
        IcebergSortField(schema.find_field(col).field_id, parse_transform("identity"), SortDirection.ASC,
                         NullOrder.NULLS_FIRST)
        for col in sort
    ))
    return new_table_metadata(schema, spec, order, "file:///wh/t", dict(properties or {}))


def current(*columns: str | dict[str, Any], **kwargs: Any) -> TableMetadata:
    return metadata(schema_for(declare(*columns).columns), **kwargs)


def plan(desired: Table, meta: TableMetadata, evolution: SchemaEvolution = STRICT) -> Plan:
    return plan_table(desired, evolution, meta)


def refused(result: Plan) -> dict[str, str]:
    assert result.changes == TableChanges(), "a refused plan must change nothing"
    return {r.column: r.reason for r in result.refusals}


# --- nothing to do ------------------------------------------------------------------------------


def test_identical_table_plans_nothing() -> None:
    desired = declare(
        {"name": "id", "type": "long", "required": True, "doc": "key"},
        "ts:timestamptz", "price:decimal(10,2)", "tags:list<string>", "attrs:map<string,long>",
        "addr:struct<street:string,zip:int>",
        partitionBy=[{"column": "ts", "transform": "day"}], sortBy=[{"column": "id"}],
        properties={"write.target-file-size-bytes": "1024"},
    )
    meta = metadata(schema_for(desired.columns), partition=[("ts", "day", "ts_day")], sort=["id"],
                    properties={"write.target-file-size-bytes": "1024", "other": "kept"})
    result = plan(desired, meta)
    assert result == Plan()
    assert not result.changes


def test_unset_doc_leaves_the_tables_doc_alone() -> None:
    meta = current({"name": "id", "type": "long", "doc": "from before"})
    assert plan(declare("id:long"), meta) == Plan()


# --- columns ------------------------------------------------------------------------------------


def test_add_optional_column_at_the_end() -> None:
    result = plan(declare("id:long", {"name": "score", "type": "double", "doc": "model score"}), current("id:long"))
    assert result.changes.schema == (AddColumn(("score",), DoubleType(), "model score"),)


def test_add_column_in_the_middle_moves_it_after_its_predecessor() -> None:
    result = plan(declare("id:long", "mid:int", "last:string"), current("id:long", "last:string"))
    assert result.changes.schema == (AddColumn(("mid",), IntegerType()), MoveColumn("mid", "id"))


def test_add_column_first() -> None:
    result = plan(declare("first:int", "id:long"), current("id:long"))
    assert result.changes.schema == (AddColumn(("first",), IntegerType()), MoveColumn("first", None))


def test_reorder_existing_columns() -> None:
    result = plan(declare("b:int", "a:int", "c:int"), current("a:int", "b:int", "c:int"))
    assert result.changes.schema == (MoveColumn("b", None),)


def test_add_required_column_is_refused() -> None:
    reasons = refused(plan(declare("id:long", "must:long!"), current("id:long")))
    assert reasons == {"must": "a new column cannot be required: rows already written have no value for it"}


@pytest.mark.parametrize(
    ("old", "new", "widened"),
    [("int", "long", LongType()), ("float", "double", DoubleType()), ("decimal(10,2)", "decimal(12,2)", DecimalType(12, 2))],
)
def test_widening(old: str, new: str, widened: object) -> None:
    result = plan(declare(f"x:{new}"), current(f"x:{old}"))
    assert result.changes.schema == (UpdateColumn(("x",), widened),)


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("long", "int", "narrowing long to int would lose values"),
        ("double", "float", "narrowing double to float would lose values"),
        ("decimal(12,2)", "decimal(10,2)", "narrowing decimal(12,2) to decimal(10,2) would lose values"),
        ("decimal(10,2)", "decimal(12,4)", "changing decimal(10,2) to decimal(12,4) is not a safe type change"),
        ("int", "string", "changing int to string is not a safe type change"),
        ("string", "binary", "changing string to binary is not a safe type change"),
        ("int", "double", "changing int to double is not a safe type change"),
        ("long", "list<long>", "changing long to list<long> is not a safe type change"),
        ("struct<a:int>", "map<string,int>", "changing struct<a:int> to map<string,int> is not a safe type change"),
    ],
)
def test_unsafe_type_changes_are_refused(old: str, new: str, reason: str) -> None:
    reasons = refused(plan(declare("id:long", f"x:{new}"), current("id:long", f"x:{old}")))
    assert list(reasons) == ["x"]
    assert reasons["x"].startswith(reason)


def test_required_to_optional() -> None:
    result = plan(declare("id:long"), current("id:long!"))
    assert result.changes.schema == (UpdateColumn(("id",), make_optional=True),)


def test_optional_to_required_is_refused() -> None:
    assert refused(plan(declare("id:long!"), current("id:long"))) == {
        "id": "cannot become required: rows already written may hold nulls"
    }


def test_doc_change() -> None:
    result = plan(declare({"name": "id", "type": "long", "doc": "new"}), current({"name": "id", "type": "long", "doc": "old"}))
    assert result.changes.schema == (UpdateColumn(("id",), doc="new"),)


def test_widen_optional_and_doc_in_one_update() -> None:
    result = plan(declare({"name": "n", "type": "long", "doc": "count"}), current("n:int!"))
    assert result.changes.schema == (UpdateColumn(("n",), LongType(), True, "count"),)


# --- renames and drops --------------------------------------------------------------------------


def test_rename_needs_opt_in() -> None:
    desired = declare("id:long", {"name": "user_id", "type": "long", "renamedFrom": "uid"})
    meta = current("id:long", "uid:long")
    assert refused(plan(desired, meta)) == {"user_id": "renaming uid to user_id needs schemaEvolution.allowRenames"}
    result = plan(desired, meta, SchemaEvolution(allow_renames=True))
    assert result.changes.schema == (RenameColumn(("uid",), "user_id"),)


def test_rename_already_applied_is_a_no_op() -> None:
    desired = declare({"name": "user_id", "type": "long", "renamedFrom": "uid"})
    assert plan(desired, current("user_id:long"), LENIENT) == Plan()


def test_rename_and_widen_address_the_old_name() -> None:
    desired = declare({"name": "b", "type": "long", "renamedFrom": "a"}, "c:int")
    result = plan(desired, current("a:int", "c:int"), LENIENT)
    assert result.changes.schema == (RenameColumn(("a",), "b"), UpdateColumn(("a",), LongType()))


def test_renamed_column_moved_by_its_old_name() -> None:
    desired = declare("c:int", {"name": "b", "type": "int", "renamedFrom": "a"})
    result = plan(desired, current("a:int", "c:int"), LENIENT)
    assert result.changes.schema == (RenameColumn(("a",), "b"), MoveColumn("c", None))


def test_renamed_from_a_missing_column_adds_it() -> None:
    desired = declare("id:long", {"name": "fresh", "type": "int", "renamedFrom": "never_was"})
    assert plan(desired, current("id:long"), LENIENT).changes.schema == (AddColumn(("fresh",), IntegerType()),)


def test_drop_needs_opt_in() -> None:
    meta = current("id:long", "old:string")
    assert refused(plan(declare("id:long"), meta)) == {
        "old": "is not in the spec; dropping it needs schemaEvolution.allowDropColumns"
    }
    assert plan(declare("id:long"), meta, LENIENT).changes.schema == (DropColumn(("old",)),)


def test_partition_source_cannot_be_dropped_even_with_opt_in() -> None:
    meta = current("id:long", "ts:timestamptz", partition=[("ts", "day", "ts_day")])
    assert refused(plan(declare("id:long"), meta, LENIENT)) == {
        "ts": "is the source of partition field ts_day; it cannot be dropped"
    }


def test_sort_source_cannot_be_dropped() -> None:
    meta = current("id:long", "k:int", sort=["k"])
    assert refused(plan(declare("id:long"), meta, LENIENT)) == {
        "k": "is in the table's sort order; remove it from sortBy first"
    }


def test_partition_source_type_cannot_change_even_when_widening() -> None:
    meta = current("id:int", "v:string", partition=[("id", "bucket[8]", "id_bucket")])
    assert refused(plan(declare("id:long", "v:string", partitionBy=[{"column": "id", "transform": "bucket[8]"}]), meta)) == {
        "id": "is the source of partition field id_bucket; its type cannot change from int to long"
    }


def test_every_refusal_is_reported_at_once() -> None:
    desired = declare("a:int", "b:string", "new:long!")
    reasons = refused(plan(desired, current("a:long", "b:int", "gone:int")))
    assert set(reasons) == {"a", "b", "new", "gone"}


def test_invalid_type_string_is_refused_with_the_parser_message() -> None:
    reasons = refused(plan(declare("a:list<varchar>"), current("a:long")))
    assert "unknown type 'varchar'" in reasons["a"]


# --- nested types -------------------------------------------------------------------------------


def test_struct_gains_an_optional_field() -> None:
    result = plan(declare("s:struct<x:int,y:string>"), current("s:struct<x:int>"))
    assert result.changes.schema == (AddColumn(("s", "y"), StringType()),)


def test_struct_field_widened() -> None:
    result = plan(declare("s:struct<x:long>"), current("s:struct<x:int>"))
    assert result.changes.schema == (UpdateColumn(("s", "x"), LongType()),)


def test_struct_field_narrowing_names_the_nested_column() -> None:
    assert refused(plan(declare("s:struct<x:int>"), current("s:struct<x:long>"))) == {
        "s.x": "narrowing long to int would lose values"
    }


def test_struct_field_drop_needs_opt_in() -> None:
    meta = current("s:struct<x:int,y:int>")
    assert list(refused(plan(declare("s:struct<x:int>"), meta))) == ["s.y"]
    assert plan(declare("s:struct<x:int>"), meta, LENIENT).changes.schema == (DropColumn(("s", "y")),)


def test_list_element_widened_and_struct_element_extended() -> None:
    assert plan(declare("l:list<long>"), current("l:list<int>")).changes.schema == (
        UpdateColumn(("l", "element"), LongType()),
    )
    assert plan(declare("l:list<struct<a:int,z:double>>"), current("l:list<struct<a:int>>")).changes.schema == (
        AddColumn(("l", "element", "z"), DoubleType()),
    )


def test_list_element_type_change_refused_by_path() -> None:
    assert refused(plan(declare("l:list<string>"), current("l:list<int>"))) == {
        "l.element": "changing int to string is not a safe type change "
        "(allowed: int→long, float→double, a larger decimal precision)"
    }


def test_map_value_widened_and_key_change_refused() -> None:
    assert plan(declare("m:map<string,double>"), current("m:map<string,float>")).changes.schema == (
        UpdateColumn(("m", "value"), DoubleType()),
    )
    assert refused(plan(declare("m:map<long,int>"), current("m:map<int,int>"))) == {
        "m": "map keys cannot change type (int to long)"
    }


def test_required_nested_parts_become_optional() -> None:
    schema = Schema(
        NestedField(1, "l", ListType(2, IntegerType(), element_required=True), required=False),
        NestedField(3, "m", MapType(4, StringType(), 5, IntegerType(), value_required=True), required=False),
        NestedField(6, "s", StructType(NestedField(7, "x", IntegerType(), required=True)), required=False),
    )
    result = plan(declare("l:list<int>", "m:map<string,int>", "s:struct<x:int>"), metadata(schema))
    assert set(result.changes.schema) == {
        UpdateColumn(("l", "element"), make_optional=True),
        UpdateColumn(("m", "value"), make_optional=True),
        UpdateColumn(("s", "x"), make_optional=True),
    }


def test_nested_partition_source_cannot_be_dropped_with_its_struct() -> None:
    schema = Schema(
        NestedField(1, "id", LongType(), required=True),
        NestedField(2, "s", StructType(NestedField(3, "day", IntegerType(), required=False)), required=False),
    )
    spec = PartitionSpec(IcebergPartitionField(3, 1000, parse_transform("identity"), "s_day"))
    meta = new_table_metadata(schema, spec, SortOrder(), "file:///wh/t", {})
    assert refused(plan(declare("id:long!"), meta, LENIENT)) == {
        "s": "is the source of partition field s_day; it cannot be dropped"
    }


# --- partition spec, sort order, properties -----------------------------------------------------


def test_partition_field_added_on_existing_and_new_columns() -> None:
    desired = declare("id:long", "ts:timestamptz", "region:string", partitionBy=[
        {"column": "ts", "transform": "month"}, {"column": "region", "transform": "truncate[2]", "name": "reg"}])
    result = plan(desired, current("id:long", "ts:timestamptz"))
    assert result.changes.schema == (AddColumn(("region",), StringType()),)
    assert result.changes.spec == (AddPartitionField("ts", "month"), AddPartitionField("region", "truncate[2]", "reg"))


def test_partition_transform_change_removes_then_adds() -> None:
    meta = current("ts:timestamptz", partition=[("ts", "day", "ts_day")])
    result = plan(declare("ts:timestamptz", partitionBy=[{"column": "ts", "transform": "hour"}]), meta)
    assert result.changes.spec == (RemovePartitionField("ts_day"), AddPartitionField("ts", "hour"))
    assert result.changes.schema == ()


def test_partition_field_removed_and_renamed() -> None:
    meta = current("a:int", "b:int", partition=[("a", "identity", "a"), ("b", "bucket[4]", "b_bucket_4")])
    result = plan(declare("a:int", "b:int", partitionBy=[{"column": "a", "transform": "identity", "name": "part_a"}]), meta)
    assert result.changes.spec == (RemovePartitionField("b_bucket_4"), RenamePartitionField("a", "part_a"))


def test_partition_follows_a_renamed_source_column() -> None:
    meta = current("day:date", partition=[("day", "identity", "day")])
    desired = declare({"name": "event_day", "type": "date", "renamedFrom": "day"},
                      partitionBy=[{"column": "event_day", "transform": "identity", "name": "day"}])
    assert plan(desired, meta, LENIENT).changes == TableChanges(schema=(RenameColumn(("day",), "event_day"),))


def test_transform_that_cannot_apply_is_refused() -> None:
    desired = declare("name:string", partitionBy=[{"column": "name", "transform": "year"}])
    assert refused(plan(desired, current("name:string"))) == {"name": "transform year cannot partition string values"}


def test_sort_order_replaced_only_when_different() -> None:
    meta = current("a:int", "b:int", sort=["a"])
    assert plan(declare("a:int", "b:int", sortBy=[{"column": "a"}]), meta) == Plan()
    desc = declare("a:int", "b:int", sortBy=[{"column": "b", "direction": "desc", "nullOrder": "nulls-last"}])
    assert plan(desc, meta).changes.sort_order == (SortKey("b", "identity", True, False),)
    assert plan(declare("a:int", "b:int"), meta).changes.sort_order == ()


def test_properties_set_when_added_or_changed_and_others_kept() -> None:
    meta = current("a:int", properties={"keep": "1", "change": "old"})
    result = plan(declare("a:int", properties={"change": "new", "add": "x", "keep": "1"}), meta)
    assert result.changes == TableChanges(properties={"change": "new", "add": "x"})


def test_describe_lists_every_change() -> None:
    result = plan(declare("id:long", "x:double", sortBy=[{"column": "id"}], properties={"k": "v"}), current("id:int"))
    assert result.changes.describe() == [
        "widen to long: id", "add column x double", "replace sort order", "set properties k",
    ]


# --- creation -----------------------------------------------------------------------------------


def test_creation_plan_carries_spec_sort_and_properties() -> None:
    desired = declare("id:long!", "ts:timestamptz", partitionBy=[{"column": "ts", "transform": "year"}],
                      sortBy=[{"column": "id"}], properties={"a": "b"})
    assert plan_creation(desired) == Plan(TableChanges(
        spec=(AddPartitionField("ts", "year", "ts_year"),), sort_order=(SortKey("id"),), properties={"a": "b"}))
    assert plan_creation(declare("id:long")).changes.sort_order is None


def test_creation_refuses_what_cannot_be_built() -> None:
    bad = declare("id:list<varchar>", "s:string", partitionBy=[{"column": "s", "transform": "day"}])
    result = plan_creation(bad)
    assert result.changes == TableChanges()
    assert [r.column for r in result.refusals] == ["id", "s"]
    assert result.refusals[1] == Refusal("s", "transform day cannot partition string values")


def test_creation_names_each_partition_field() -> None:
    desired = declare("id:long!", "s:string", "ts:timestamptz", partitionBy=[
        {"column": "id", "transform": "identity"}, {"column": "id", "transform": "bucket[16]"},
        {"column": "s", "transform": "truncate[4]"}, {"column": "ts", "transform": "hour", "name": "hourly"}])
    assert [(f.column, f.name) for f in plan_creation(desired).changes.spec if isinstance(f, AddPartitionField)] == [
        ("id", "id"), ("id", "id_bucket_16"), ("s", "s_trunc_4"), ("ts", "hourly")]


def test_creation_refuses_the_partitions_update_spec_refuses() -> None:
    desired = declare("id:long!", "ts:timestamptz", "s:string", partitionBy=[
        {"column": "id", "transform": "bucket[4]"}, {"column": "id", "transform": "bucket[4]", "name": "again"},
        {"column": "ts", "transform": "day"}, {"column": "ts", "transform": "hour"},
        {"column": "s", "transform": "identity", "name": "ts_day"}])
    assert plan_creation(desired).refusals == (
        Refusal("id", "is partitioned by bucket[4] twice"),
        Refusal("ts", "has two time partitions (day and hour); keep one"),
        Refusal("s", "partition field name ts_day is used twice"),
    )
