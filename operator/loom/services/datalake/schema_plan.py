"""Pure planning of table evolution: the declared table against the table's current metadata gives
either the changes that keep every snapshot readable, or refusals that name the column and why.

Allowed without opt-in: add an optional column (nested too), widen int→long, float→double or a
decimal's precision (the promotions of the Iceberg table spec; pyiceberg's reader-side `promote` also
accepts string↔binary, which other engines do not), required→optional, doc changes, column order,
partition fields, sort order, properties. Renames need `allowRenames`, drops `allowDropColumns`.
Never: narrowing or any other type change, a new required column, optional→required, a type change
of a partition source column, dropping a partition or sort source column."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.sorting import NullOrder, SortDirection, SortField
from pyiceberg.transforms import VoidTransform, parse_transform
from pyiceberg.types import (
    DecimalType,
    DoubleType,
    FloatType,
    IcebergType,
    IntegerType,
    ListType,
    LongType,
    MapType,
    NestedField,
    PrimitiveType,
    StructType,
)

from loom.api.datalake import Column, SchemaEvolution, Table
from loom.domain.iceberg_types import TypeSyntaxError, format_type, parse_type
from loom.domain.table_changes import (
    AddColumn,
    AddPartitionField,
    ColumnPath,
    DropColumn,
    MoveColumn,
    RemovePartitionField,
    RenameColumn,
    RenamePartitionField,
    SchemaChange,
    SortKey,
    SpecChange,
    TableChanges,
    UpdateColumn,
    dotted,
)


@dataclass(frozen=True)
class Refusal:
    """A change Loom will not make; `column` is the spec's (dotted) column name."""

    column: str
    reason: str

    def __str__(self) -> str:
        return f"column {self.column}: {self.reason}"


@dataclass(frozen=True)
class Plan:
    changes: TableChanges = field(default_factory=TableChanges)
    refusals: tuple[Refusal, ...] = ()


def _widens(old: PrimitiveType, new: PrimitiveType) -> bool:
    if isinstance(old, IntegerType) and isinstance(new, LongType):
        return True
    if isinstance(old, FloatType) and isinstance(new, DoubleType):
        return True
    return (
        isinstance(old, DecimalType)
        and isinstance(new, DecimalType)
        and old.scale == new.scale
        and new.precision > old.precision
    )


def _kind(type_: IcebergType) -> type:
    """Primitive, or the nested type's class: no change between these is ever safe."""
    return PrimitiveType if type_.is_primitive else type(type_)


class _Planner:
    """Walks current and desired schemas together, collecting changes and refusals."""

    def __init__(self, metadata: TableMetadata, evolution: SchemaEvolution) -> None:
        self.evolution = evolution
        self.schema = metadata.schema()
        self.changes: list[SchemaChange] = []
        self.refusals: list[Refusal] = []
        # Partition fields by source id: current spec (type changes) and every spec (drops).
        self.current_sources = {f.source_id: f.name for f in metadata.spec().fields}
        self.all_sources = {f.source_id: f.name for s in metadata.partition_specs for f in s.fields}
        self.sort_sources = {f.source_id for f in _sort_fields(metadata)}

    def refuse(self, column: str, reason: str) -> None:
        self.refusals.append(Refusal(column, reason))

    # --- columns -------------------------------------------------------------------------------
    def drop(self, path: ColumnPath, current: NestedField) -> None:
        name = dotted(path)
        if not self.evolution.allow_drop_columns:
            self.refuse(name, "is not in the spec; dropping it needs schemaEvolution.allowDropColumns")
        elif ids := self.all_sources.keys() & _field_ids(current):
            self.refuse(name, f"is the source of partition field {self.all_sources[min(ids)]}; it cannot be dropped")
        elif self.sort_sources & _field_ids(current):
            self.refuse(name, "is in the table's sort order; remove it from sortBy first")
        else:
            self.changes.append(DropColumn(path))

    def compare(
        self, path: ColumnPath, display: str, current: NestedField, want: IcebergType, required: bool, doc: str | None
    ) -> None:
        """One existing field against its desired type, requiredness and doc (recursing into nesting)."""
        make_optional = current.required and not required
        if required and not current.required:
            self.refuse(display, "cannot become required: rows already written may hold nulls")
        new_doc = doc if doc is not None and doc != current.doc else None
        have = current.field_type
        widened: PrimitiveType | None = None
        if _kind(have) != _kind(want):
            self.refuse(display, f"changing {format_type(have)} to {format_type(want)} is not a safe type change")
        elif isinstance(have, PrimitiveType) and isinstance(want, PrimitiveType) and have != want:
            if current.field_id in self.current_sources:
                self.refuse(
                    display,
                    f"is the source of partition field {self.current_sources[current.field_id]}; "
                    f"its type cannot change from {format_type(have)} to {format_type(want)}",
                )
            elif _widens(have, want):
                widened = want
            elif _widens(want, have):
                self.refuse(display, f"narrowing {format_type(have)} to {format_type(want)} would lose values")
            else:
                self.refuse(
                    display,
                    f"changing {format_type(have)} to {format_type(want)} is not a safe type change "
                    "(allowed: int→long, float→double, a larger decimal precision)",
                )
        elif isinstance(have, StructType) and isinstance(want, StructType):
            self.compare_struct(path, display, have, want)
        elif isinstance(have, ListType) and isinstance(want, ListType):
            self.compare_nested(path, display, "element", have.element_field, want.element_field)
        elif isinstance(have, MapType) and isinstance(want, MapType):
            if not _same_shape(have.key_type, want.key_type):
                self.refuse(
                    display,
                    f"map keys cannot change type ({format_type(have.key_type)} to {format_type(want.key_type)})",
                )
            self.compare_nested(path, display, "value", have.value_field, want.value_field)
        if widened is not None or make_optional or new_doc is not None:
            self.changes.append(UpdateColumn(path, widened, make_optional, new_doc))

    def compare_nested(
        self, path: ColumnPath, display: str, part: str, current: NestedField, want: NestedField
    ) -> None:
        self.compare((*path, part), f"{display}.{part}", current, want.field_type, want.required, None)

    def compare_struct(self, path: ColumnPath, display: str, have: StructType, want: StructType) -> None:
        current = {f.name: f for f in have.fields}
        for wanted in want.fields:
            if wanted.name in current:
                self.compare(
                    (*path, wanted.name), f"{display}.{wanted.name}", current.pop(wanted.name),
                    wanted.field_type, wanted.required, wanted.doc,
                )
            else:
                self.changes.append(AddColumn((*path, wanted.name), wanted.field_type))
        for name, gone in current.items():
            self.drop((*path, name), gone)


def _sort_fields(metadata: TableMetadata) -> list[SortField]:
    order = metadata.sort_order_by_id(metadata.default_sort_order_id)
    return list(order.fields) if order else []


def _field_ids(f: NestedField) -> set[int]:
    """The field's id and the ids of everything nested in it."""
    ids = {f.field_id}
    type_ = f.field_type
    if isinstance(type_, StructType):
        nested: Iterable[NestedField] = type_.fields
    elif isinstance(type_, ListType):
        nested = (type_.element_field,)
    elif isinstance(type_, MapType):
        nested = (type_.key_field, type_.value_field)
    else:
        nested = ()
    for child in nested:
        ids |= _field_ids(child)
    return ids


def _same_shape(a: IcebergType, b: IcebergType) -> bool:
    """Type equality that ignores field ids (the desired side carries provisional ones)."""
    return format_type(a) == format_type(b)


def _parse_columns(columns: Iterable[Column]) -> tuple[dict[str, IcebergType], list[Refusal]]:
    types: dict[str, IcebergType] = {}
    refusals = []
    for column in columns:
        try:
            types[column.name] = parse_type(column.type)
        except TypeSyntaxError as error:
            refusals.append(Refusal(column.name, str(error)))
    return types, refusals


def _moves(current_order: list[str], desired: list[str], ref: Mapping[str, str]) -> list[MoveColumn]:
    """Moves that turn `current_order` (desired names) into `desired`; `ref` maps a desired name to
    the name pyiceberg knows it by inside the update (old name for existing columns)."""
    order = list(current_order)
    moves = []
    for i, name in enumerate(desired):
        if order[i] == name:
            continue
        order.remove(name)
        order.insert(i, name)
        moves.append(MoveColumn(ref[name], ref[desired[i - 1]] if i else None))
    return moves


def plan_table(desired: Table, evolution: SchemaEvolution, metadata: TableMetadata) -> Plan:
    """The changes that bring an existing table to `desired`, or the refusals that forbid it."""
    types, parse_refusals = _parse_columns(desired.columns)
    if parse_refusals:
        return Plan(refusals=tuple(parse_refusals))
    planner = _Planner(metadata, evolution)
    current = {f.name: f for f in planner.schema.fields}
    desired_names = {c.name for c in desired.columns}
    matched: dict[str, NestedField] = {}  # desired name -> current field
    ref: dict[str, str] = {}  # desired name -> name inside the update
    claimed: set[int] = set()  # current fields a refused rename still refers to (not also "dropped")
    for column in desired.columns:
        old = column.renamed_from
        if column.name in current:
            matched[column.name] = current[column.name]
        elif old and old in current and old not in desired_names:
            if not evolution.allow_renames:
                planner.refuse(column.name, f"renaming {old} to {column.name} needs schemaEvolution.allowRenames")
                claimed.add(current[old].field_id)
                continue
            planner.changes.append(RenameColumn((old,), column.name))
            matched[column.name] = current[old]
        elif column.required:
            planner.refuse(column.name, "a new column cannot be required: rows already written have no value for it")
            continue
        else:
            planner.changes.append(AddColumn((column.name,), types[column.name], column.doc))
            ref[column.name] = column.name
            continue
        ref[column.name] = matched[column.name].name
        planner.compare(
            (matched[column.name].name,), column.name, matched[column.name],
            types[column.name], column.required, column.doc,
        )
    kept_ids = {f.field_id for f in matched.values()} | claimed
    for f in planner.schema.fields:
        if f.field_id not in kept_ids:
            planner.drop((f.name,), f)

    if planner.refusals:
        return Plan(refusals=tuple(planner.refusals))

    id_to_name = {f.field_id: name for name, f in matched.items()}
    current_order = [id_to_name[f.field_id] for f in planner.schema.fields if f.field_id in id_to_name]
    current_order += [c.name for c in desired.columns if c.name not in matched]
    planner.changes.extend(_moves(current_order, [c.name for c in desired.columns], ref))

    spec_changes, spec_refusals = _plan_spec(desired, metadata, id_to_name, types)
    if spec_refusals:
        return Plan(refusals=tuple(spec_refusals))
    return Plan(
        TableChanges(
            schema=tuple(planner.changes),
            spec=tuple(spec_changes),
            sort_order=_plan_sort_order(desired, metadata, id_to_name),
            properties={k: v for k, v in desired.properties.items() if metadata.properties.get(k) != v},
        )
    )


def partition_refusals(desired: Table, types: Mapping[str, IcebergType]) -> list[Refusal]:
    """Transforms that cannot apply to their column's type (year of a string, bucket of a map)."""
    refusals = []
    for p in desired.partition_by:
        type_ = types.get(p.column)
        if type_ is not None and not parse_transform(p.transform).can_transform(type_):
            refusals.append(Refusal(p.column, f"transform {p.transform} cannot partition {format_type(type_)} values"))
    return refusals


def _plan_spec(
    desired: Table, metadata: TableMetadata, id_to_name: Mapping[int, str], types: Mapping[str, IcebergType]
) -> tuple[list[SpecChange], list[Refusal]]:
    refusals = partition_refusals(desired, types)
    if refusals:
        return [], refusals
    current = {
        (id_to_name.get(f.source_id), str(f.transform)): f
        for f in metadata.spec().fields
        if not isinstance(f.transform, VoidTransform)
    }
    changes: list[SpecChange] = []
    for p in desired.partition_by:
        existing = current.pop((p.column, p.transform), None)
        if existing is None:
            changes.append(AddPartitionField(p.column, p.transform, p.name))
        elif p.name is not None and p.name != existing.name:
            changes.append(RenamePartitionField(existing.name, p.name))
    removals: list[SpecChange] = [RemovePartitionField(f.name) for f in current.values()]
    return removals + changes, []


def _sort_keys(desired: Table) -> tuple[SortKey, ...]:
    return tuple(
        SortKey(s.column, s.transform, s.direction == "desc", s.null_order == "nulls-first") for s in desired.sort_by
    )


def _plan_sort_order(
    desired: Table, metadata: TableMetadata, id_to_name: Mapping[int, str]
) -> tuple[SortKey, ...] | None:
    want = _sort_keys(desired)
    have = tuple(
        SortKey(
            id_to_name.get(f.source_id, f"#{f.source_id}"),
            str(f.transform),
            f.direction == SortDirection.DESC,
            f.null_order == NullOrder.NULLS_FIRST,
        )
        for f in _sort_fields(metadata)
    )
    return None if want == have else want


TIME_TRANSFORMS = frozenset({"year", "month", "day", "hour"})


def partition_name(column: str, transform: str) -> str:
    """The name pyiceberg's `update_spec` gives a partition field declared without one: the column for
    identity, else the column and the transform (`ts_day`, `id_bucket_16`, `s_trunc_4`, `x_null`)."""
    kind, _, argument = transform.partition("[")
    if kind == "identity":
        return column
    suffix = {"truncate": "trunc", "void": "null"}.get(kind, kind)
    return f"{column}_{suffix}_{argument.rstrip(']')}" if argument else f"{column}_{suffix}"


def _creation_spec_refusals(desired: Table) -> list[Refusal]:
    """What `update_spec` refuses when a new table's fields are added: a column partitioned twice by one
    transform or by two time transforms, and two fields of one name."""
    refusals = []
    added: set[tuple[str, str]] = set()
    timed: dict[str, str] = {}
    names: set[str] = set()
    for p in desired.partition_by:
        name = p.name or partition_name(p.column, p.transform)
        if (p.column, p.transform) in added:
            refusals.append(Refusal(p.column, f"is partitioned by {p.transform} twice"))
        elif p.transform in TIME_TRANSFORMS and p.column in timed:
            refusals.append(Refusal(p.column, f"has two time partitions ({timed[p.column]} and {p.transform}); "
                                              "keep one"))
        elif name in names:
            refusals.append(Refusal(p.column, f"partition field name {name} is used twice"))
        added.add((p.column, p.transform))
        names.add(name)
        if p.transform in TIME_TRANSFORMS:
            timed.setdefault(p.column, p.transform)
    return refusals


def plan_creation(desired: Table) -> Plan:
    """Partition spec, sort order and properties of a table about to be created (the schema itself
    comes from `iceberg_tables.schema_for`), or refusals when the declaration cannot be built. Every
    partition field is named, since the table is created with its whole layout in one call."""
    types, refusals = _parse_columns(desired.columns)
    refusals += partition_refusals(desired, types) + _creation_spec_refusals(desired)
    if refusals:
        return Plan(refusals=tuple(refusals))
    return Plan(
        TableChanges(
            spec=tuple(AddPartitionField(p.column, p.transform, p.name or partition_name(p.column, p.transform))
                       for p in desired.partition_by),
            sort_order=_sort_keys(desired) or None,
            properties=dict(desired.properties),
        )
    )
