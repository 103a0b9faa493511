"""The spec's Iceberg type strings parsed into pyiceberg types, and printed back the same way."""

from __future__ import annotations

from itertools import count

import pytest
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    FixedType,
    FloatType,
    IntegerType,
    ListType,
    LongType,
    MapType,
    NestedField,
    StringType,
    StructType,
    TimestampNanoType,
    TimestampType,
    TimestamptzType,
    TimeType,
    UUIDType,
)

from loom.domain.iceberg_types import TypeSyntaxError, format_type, parse_type

PRIMITIVES = {
    "boolean": BooleanType(),
    "int": IntegerType(),
    "long": LongType(),
    "float": FloatType(),
    "double": DoubleType(),
    "date": DateType(),
    "time": TimeType(),
    "timestamp": TimestampType(),
    "timestamptz": TimestamptzType(),
    "timestamp_ns": TimestampNanoType(),
    "string": StringType(),
    "uuid": UUIDType(),
    "binary": BinaryType(),
    "fixed[16]": FixedType(16),
    "decimal(10,2)": DecimalType(10, 2),
}


@pytest.mark.parametrize("text", sorted(PRIMITIVES))
def test_primitives_round_trip(text: str) -> None:
    assert parse_type(text) == PRIMITIVES[text]
    assert format_type(parse_type(text)) == text


def test_decimal_allows_spaces_as_the_crd_pattern_does() -> None:
    assert parse_type("decimal( 38 , 9 )") == DecimalType(38, 9)


def test_list_map_struct() -> None:
    assert parse_type("list<string>") == ListType(1, StringType(), element_required=False)
    assert parse_type("map<string,long>") == MapType(1, StringType(), 2, LongType(), value_required=False)
    assert parse_type("struct<a:int,b:string>") == StructType(
        NestedField(1, "a", IntegerType(), required=False), NestedField(2, "b", StringType(), required=False)
    )


def test_deep_nesting_with_decimal_commas_and_spaces() -> None:
    text = "struct<a: decimal(10,2), b: list<map<string, struct<c:fixed[4], d:list<long>>>>>"
    parsed = parse_type(text)
    assert isinstance(parsed, StructType)
    a, b = parsed.fields
    assert a.field_type == DecimalType(10, 2)
    assert isinstance(b.field_type, ListType)
    inner = b.field_type.element_type
    assert isinstance(inner, MapType) and inner.key_type == StringType()
    assert isinstance(inner.value_type, StructType)
    assert [f.name for f in inner.value_type.fields] == ["c", "d"]
    assert format_type(parsed) == text.replace(" ", "")


def test_nested_ids_are_unique_across_a_shared_counter() -> None:
    ids = count(1)
    first = parse_type("struct<a:int,b:list<long>>", ids)
    second = parse_type("map<string,struct<x:int>>", ids)
    assert isinstance(first, StructType) and isinstance(second, MapType)
    seen = [f.field_id for f in first.fields] + [first.fields[1].field_type.element_id]  # type: ignore[union-attr]
    seen += [second.key_id, second.value_id, second.value_type.fields[0].field_id]  # type: ignore[union-attr]
    assert len(seen) == len(set(seen)) == 6


def test_nested_fields_are_optional() -> None:
    parsed = parse_type("list<struct<a:int>>")
    assert isinstance(parsed, ListType) and not parsed.element_required
    assert not parsed.element_type.fields[0].required  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("list<", "expected a type at position 5"),
        ("list<string", "expected '>' at position 11"),
        ("map<string>", "expected ',' at position 10"),
        ("struct<>", "expected a field name at position 7"),
        ("struct<a int>", "expected ':'"),
        ("struct<a:int,a:long>", "field 'a' appears twice"),
        ("varchar", "unknown type 'varchar'"),
        ("list<varchar>", "unknown type 'varchar'"),
        ("long>", "expected end of type at position 4"),
        ("decimal(10)", "unknown type 'decimal(10)'"),
    ],
)
def test_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(TypeSyntaxError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        parse_type(text)
    assert repr(text) in str(info.value)
