"""Iceberg type strings as the DataLake spec writes them (`long`, `decimal(10,2)`, `list<string>`,
`map<string,long>`, `struct<a:int,b:string>`) to pyiceberg types and back.

pyiceberg parses primitive type strings itself (`IcebergType.model_validate`), but its nested types
are JSON objects, so the nesting is parsed here and every leaf is handed to pyiceberg."""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import count

from pyiceberg.exceptions import ValidationError
from pyiceberg.types import (
    DecimalType,
    IcebergType,
    ListType,
    MapType,
    NestedField,
    PrimitiveType,
    StructType,
)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TypeSyntaxError(ValueError):
    """A type string that is not an Iceberg type; the message points at the offending position."""


class _Parser:
    """Recursive descent over one type string; nested ids are provisional (pyiceberg assigns fresh
    ids when a table is created or a column added)."""

    def __init__(self, text: str, ids: Iterator[int]) -> None:
        self.text = text
        self.pos = 0
        self.ids = ids

    def fail(self, expected: str) -> TypeSyntaxError:
        return TypeSyntaxError(f"invalid Iceberg type {self.text!r}: expected {expected} at position {self.pos}")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def accept(self, token: str) -> bool:
        self.skip_space()
        if self.text.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False

    def expect(self, token: str) -> None:
        if not self.accept(token):
            raise self.fail(repr(token))

    def name(self) -> str:
        self.skip_space()
        match = _NAME.match(self.text, self.pos)
        if not match:
            raise self.fail("a field name")
        self.pos = match.end()
        return match.group()

    def type(self) -> IcebergType:
        self.skip_space()
        for keyword, parse in (("list<", self.list_type), ("map<", self.map_type), ("struct<", self.struct_type)):
            if self.accept(keyword):
                return parse()
        return self.primitive()

    def list_type(self) -> ListType:
        element_id = next(self.ids)
        element = self.type()
        self.expect(">")
        return ListType(element_id, element, element_required=False)

    def map_type(self) -> MapType:
        key_id, value_id = next(self.ids), next(self.ids)
        key = self.type()
        self.expect(",")
        value = self.type()
        self.expect(">")
        return MapType(key_id, key, value_id, value, value_required=False)

    def struct_type(self) -> StructType:
        fields: list[NestedField] = []
        while True:
            name = self.name()
            if any(f.name == name for f in fields):
                raise TypeSyntaxError(f"invalid Iceberg type {self.text!r}: field {name!r} appears twice")
            self.expect(":")
            fields.append(NestedField(next(self.ids), name, self.type(), required=False))
            if self.accept(">"):
                return StructType(*fields)
            self.expect(",")

    def primitive(self) -> PrimitiveType:
        """Up to the next top-level `,` or `>`; the parenthesised decimal arguments hold a comma."""
        start, depth = self.pos, 0
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in "([":
                depth += 1
            elif char in ")]":
                depth -= 1
            elif depth == 0 and char in ",>":
                break
            self.pos += 1
        token = re.sub(r"\s+", "", self.text[start : self.pos])
        if not token:
            raise self.fail("a type")
        try:
            parsed = IcebergType.model_validate(token)
        except (ValueError, ValidationError) as error:  # pydantic's, or pyiceberg's own for decimal/fixed
            raise TypeSyntaxError(f"invalid Iceberg type {self.text!r}: unknown type {token!r}") from error
        if not isinstance(parsed, PrimitiveType):
            raise TypeSyntaxError(f"invalid Iceberg type {self.text!r}: unknown type {token!r}")
        return parsed


def parse_type(text: str, ids: Iterator[int] | None = None) -> IcebergType:
    """The pyiceberg type for one spec type string; raises TypeSyntaxError with the position.
    Nested fields take their ids from `ids` (pass one counter for a whole schema so none repeat)."""
    parser = _Parser(text, ids if ids is not None else count(1))
    parsed = parser.type()
    parser.skip_space()
    if parser.pos != len(text):
        raise parser.fail("end of type")
    return parsed


def format_type(type_: IcebergType) -> str:
    """The spec's spelling of a type (no field ids), for messages that users compare with their YAML."""
    if isinstance(type_, ListType):
        return f"list<{format_type(type_.element_type)}>"
    if isinstance(type_, MapType):
        return f"map<{format_type(type_.key_type)},{format_type(type_.value_type)}>"
    if isinstance(type_, StructType):
        return "struct<" + ",".join(f"{f.name}:{format_type(f.field_type)}" for f in type_.fields) + ">"
    if isinstance(type_, DecimalType):
        return f"decimal({type_.precision},{type_.scale})"
    return str(type_)
