"""The changes the Iceberg table driver knows how to commit, as plain values: the schema planner
produces them, `iceberg_tables.evolve` applies them, events and tests read them.

Paths name columns as the table's *current* schema does (pyiceberg resolves them against the schema
the update started from); names of columns added in the same change are used only by `MoveColumn`
and by the partition and sort changes, which pyiceberg applies after the schema change."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pyiceberg.types import IcebergType, PrimitiveType

from loom.domain.iceberg_types import format_type

ColumnPath = tuple[str, ...]


def dotted(path: ColumnPath) -> str:
    return ".".join(path)


@dataclass(frozen=True)
class AddColumn:
    path: ColumnPath
    type: IcebergType
    doc: str | None = None

    def __str__(self) -> str:
        return f"add column {dotted(self.path)} {format_type(self.type)}"


@dataclass(frozen=True)
class UpdateColumn:
    """Widen the type, drop the not-null constraint and/or set the doc of one existing column."""

    path: ColumnPath
    type: PrimitiveType | None = None
    make_optional: bool = False
    doc: str | None = None

    def __str__(self) -> str:
        parts = []
        if self.type is not None:
            parts.append(f"widen to {format_type(self.type)}")
        if self.make_optional:
            parts.append("make optional")
        if self.doc is not None:
            parts.append("update doc")
        return f"{', '.join(parts)}: {dotted(self.path)}"


@dataclass(frozen=True)
class RenameColumn:
    path: ColumnPath
    new_name: str

    def __str__(self) -> str:
        return f"rename column {dotted(self.path)} to {self.new_name}"


@dataclass(frozen=True)
class DropColumn:
    path: ColumnPath

    def __str__(self) -> str:
        return f"drop column {dotted(self.path)}"


@dataclass(frozen=True)
class MoveColumn:
    """Top-level column order; `after=None` moves the column first."""

    name: str
    after: str | None

    def __str__(self) -> str:
        return f"move column {self.name} " + (f"after {self.after}" if self.after else "first")


SchemaChange = AddColumn | UpdateColumn | RenameColumn | DropColumn | MoveColumn


@dataclass(frozen=True)
class AddPartitionField:
    column: str
    transform: str
    name: str | None = None

    def __str__(self) -> str:
        return f"add partition field {self.transform}({self.column})"


@dataclass(frozen=True)
class RemovePartitionField:
    name: str

    def __str__(self) -> str:
        return f"remove partition field {self.name}"


@dataclass(frozen=True)
class RenamePartitionField:
    name: str
    new_name: str

    def __str__(self) -> str:
        return f"rename partition field {self.name} to {self.new_name}"


SpecChange = AddPartitionField | RemovePartitionField | RenamePartitionField


@dataclass(frozen=True)
class SortKey:
    column: str
    transform: str = "identity"
    descending: bool = False
    nulls_first: bool = True


@dataclass(frozen=True)
class TableChanges:
    """Everything one reconcile changes on one table, committed in a single transaction."""

    schema: tuple[SchemaChange, ...] = ()
    spec: tuple[SpecChange, ...] = ()
    sort_order: tuple[SortKey, ...] | None = None  # None leaves the sort order as it is
    properties: Mapping[str, str] = field(default_factory=dict)  # set (added or changed)

    def __bool__(self) -> bool:
        return bool(self.schema or self.spec or self.sort_order is not None or self.properties)

    def describe(self) -> list[str]:
        lines = [str(c) for c in (*self.schema, *self.spec)]
        if self.sort_order is not None:
            lines.append("replace sort order")
        if self.properties:
            lines.append("set properties " + ", ".join(sorted(self.properties)))
        return lines
