"""Does a FeatureSet fit its lake table? Checked before anything is written to Feast, because Feast
itself checks nothing at apply time: a feature declared String over a `long` column is served as
strings, a missing column or a `long` event-time column only fails a materialization run later, with
an error that names neither the FeatureSet field nor the column.

Pure: the table's schema comes in as top-level column name -> Iceberg type string (as pyiceberg
prints it: `long`, `timestamptz`, `list<double>`, `decimal(10, 2)`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from loom.api.featureset import FeatureSetSpec

TIMESTAMPS = frozenset({"timestamp", "timestamptz", "timestamp_ns", "timestamptz_ns"})

# Iceberg types whose values Feast turns into each declared type without loss: the same type, or a
# narrower one of its kind (an `int` column for an Int64 feature), never a narrowing or a reinterpretation.
FEATURE_TYPES: Mapping[str, frozenset[str]] = {
    "Int32": frozenset({"int"}),
    "Int64": frozenset({"int", "long"}),
    "Float32": frozenset({"float"}),
    "Float64": frozenset({"float", "double"}),
    "String": frozenset({"string"}),
    "Bool": frozenset({"boolean"}),
    "Bytes": frozenset({"binary"}),
    "UnixTimestamp": TIMESTAMPS | {"long"},  # a long is taken as epoch seconds
    "Array(Int64)": frozenset({"list<int>", "list<long>"}),
    "Array(Float32)": frozenset({"list<float>"}),
    "Array(String)": frozenset({"list<string>"}),
}
JOIN_KEY_TYPES: Mapping[str, frozenset[str]] = {
    "STRING": frozenset({"string"}),
    "INT32": frozenset({"int"}),
    "INT64": frozenset({"int", "long"}),
    "BYTES": frozenset({"binary"}),
}


@dataclass(frozen=True)
class Mismatch:
    """One declaration the table cannot satisfy. `path` is the field as users write it: the one that
    names the column when it is missing, the one that declares the type when that does not fit."""

    path: str
    column: str
    declared: str  # the declared type, or the kind of column needed
    actual: str | None  # the column's Iceberg type; None when there is no such column

    def __str__(self) -> str:
        if self.actual is None:
            return f"{self.path} names column {self.column}, which does not exist"
        return f"{self.path} declares {self.declared} but column {self.column} is {self.actual}"


def _fits(iceberg_type: str, accepted: frozenset[str]) -> bool:
    return iceberg_type in accepted or (iceberg_type.startswith("fixed[") and "binary" in accepted)


def _name(value: object) -> str:
    """An enum field's wire value (defaults stay enum members, parsed values are plain strings)."""
    return str(getattr(value, "value", value))


def check(spec: FeatureSetSpec, columns: Mapping[str, str]) -> tuple[Mismatch, ...]:
    """Every join key, feature and timestamp field against the table's columns, in spec order."""
    found: list[Mismatch] = []

    def need(name_path: str, type_path: str, column: str, declared: str, accepted: frozenset[str]) -> None:
        actual = columns.get(column)
        if actual is None:
            found.append(Mismatch(name_path, column, declared, None))
        elif not _fits(actual, accepted):
            found.append(Mismatch(type_path, column, declared, actual))

    for i, entity in enumerate(spec.entities):
        value_type = _name(entity.value_type)
        for j, key in enumerate(entity.join_keys):
            need(f"spec.entities[{i}].joinKeys[{j}]", f"spec.entities[{i}].valueType", key,
                 value_type, JOIN_KEY_TYPES[value_type])
    for i, feature in enumerate(spec.features):
        dtype = _name(feature.dtype)
        need(f"spec.features[{i}].name", f"spec.features[{i}].dtype", feature.name, dtype,
             FEATURE_TYPES[dtype])
    timestamp = "a timestamp (timestamp or timestamptz)"
    source = spec.source
    need("spec.source.timestampField", "spec.source.timestampField", source.timestamp_field, timestamp, TIMESTAMPS)
    if source.created_timestamp_field is not None:
        need("spec.source.createdTimestampField", "spec.source.createdTimestampField",
             source.created_timestamp_field, timestamp, TIMESTAMPS)
    return tuple(found)
