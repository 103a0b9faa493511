"""A FeatureSet against its lake table's schema: what fits, and what is refused with the field path,
the column and both types (the cases users hit are the first rows of the refusal table)."""

from __future__ import annotations

from typing import Any

import pytest

from loom.api.featureset import FeatureSetSpec
from loom.features.schema_check import FEATURE_TYPES, check

COLUMNS = {"userId": "long", "ratingCount": "long", "meanRating": "double", "favoriteGenre": "string",
           "eventTimestamp": "timestamptz", "createdAt": "timestamp", "epochSeconds": "long",
           "tags": "list<string>", "scores": "list<float>", "ids": "list<int>", "digest": "fixed[16]",
           "raw": "binary", "active": "boolean", "small": "int", "ratio": "float", "price": "decimal(10, 2)",
           "day": "date", "userName": "string"}


def spec(**changes: Any) -> FeatureSetSpec:
    doc: dict[str, Any] = {
        "source": {"dataLakeRef": {"name": "movielens", "table": "user_features"}, "timestampField": "eventTimestamp"},
        "entities": [{"name": "user", "joinKeys": ["userId"], "valueType": "INT64"}],
        "features": [{"name": "ratingCount", "dtype": "Int64"}, {"name": "meanRating", "dtype": "Float64"},
                     {"name": "favoriteGenre", "dtype": "String"}],
    }
    for key, value in changes.items():
        if key in ("timestampField", "createdTimestampField"):
            doc["source"][key] = value
        else:
            doc[key] = value
    return FeatureSetSpec.model_validate(doc)


def feature(name: str, dtype: str) -> dict[str, Any]:
    return {"features": [{"name": name, "dtype": dtype}]}


@pytest.mark.parametrize("changes", [
    {},
    {"createdTimestampField": "createdAt"},
    {"entities": [{"name": "user", "joinKeys": ["userId"]}]},  # the default value type, INT64
    {"entities": [{"name": "user", "joinKeys": ["small"], "valueType": "INT32"}]},
    {"entities": [{"name": "user", "joinKeys": ["userName"], "valueType": "STRING"}]},
    {"entities": [{"name": "user", "joinKeys": ["digest"], "valueType": "BYTES"}]},
    feature("small", "Int32"), feature("small", "Int64"), feature("ratio", "Float32"), feature("ratio", "Float64"),
    feature("active", "Bool"), feature("raw", "Bytes"), feature("digest", "Bytes"),
    feature("createdAt", "UnixTimestamp"), feature("epochSeconds", "UnixTimestamp"),
    feature("ids", "Array(Int64)"), feature("scores", "Array(Float32)"), feature("tags", "Array(String)"),
], ids=repr)
def test_what_fits(changes: dict[str, Any]) -> None:
    assert check(spec(**changes), COLUMNS) == ()


@pytest.mark.parametrize(("changes", "message"), [
    # a String feature over a long column was accepted, and the online store served strings
    (feature("ratingCount", "String"), "spec.features[0].dtype declares String but column ratingCount is long"),
    # a long event time failed in the run with pyarrow.lib.ArrowInvalid
    ({"timestampField": "epochSeconds"},
     "spec.source.timestampField declares a timestamp (timestamp or timestamptz) but column epochSeconds is long"),
    # missing columns were written to the registry, then failed in the run (Could not find column)
    (feature("lastRating", "Float64"), "spec.features[0].name names column lastRating, which does not exist"),
    ({"createdTimestampField": "createdTs"},
     "spec.source.createdTimestampField names column createdTs, which does not exist"),
    ({"createdTimestampField": "day"},
     "spec.source.createdTimestampField declares a timestamp (timestamp or timestamptz) but column day is date"),
    ({"timestampField": "eventTime"}, "spec.source.timestampField names column eventTime, which does not exist"),
    ({"entities": [{"name": "user", "joinKeys": ["userName"]}]},
     "spec.entities[0].valueType declares INT64 but column userName is string"),
    ({"entities": [{"name": "user", "joinKeys": ["user_id"]}]},
     "spec.entities[0].joinKeys[0] names column user_id, which does not exist"),
    ({"entities": [{"name": "user", "joinKeys": ["userId"], "valueType": "INT32"}]},
     "spec.entities[0].valueType declares INT32 but column userId is long"),
    (feature("ratingCount", "Int32"), "spec.features[0].dtype declares Int32 but column ratingCount is long"),
    (feature("meanRating", "Float32"), "spec.features[0].dtype declares Float32 but column meanRating is double"),
    (feature("price", "Float64"), "spec.features[0].dtype declares Float64 but column price is decimal(10, 2)"),
    (feature("tags", "String"), "spec.features[0].dtype declares String but column tags is list<string>"),
    (feature("scores", "Array(Int64)"), "spec.features[0].dtype declares Array(Int64) but column scores is list<float>"),
    (feature("favoriteGenre", "Bytes"), "spec.features[0].dtype declares Bytes but column favoriteGenre is string"),
    (feature("active", "Int64"), "spec.features[0].dtype declares Int64 but column active is boolean"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_what_is_refused(changes: dict[str, Any], message: str) -> None:
    assert [str(m) for m in check(spec(**changes), COLUMNS)] == [message]


def test_every_mismatch_is_reported_in_spec_order() -> None:
    bad = spec(entities=[{"name": "user", "joinKeys": ["uid"]}], timestampField="epochSeconds",
               features=[{"name": "ratingCount", "dtype": "String"}, {"name": "gone", "dtype": "Int64"}])
    assert [m.path for m in check(bad, COLUMNS)] == [
        "spec.entities[0].joinKeys[0]", "spec.features[0].dtype", "spec.features[1].name", "spec.source.timestampField"]


def test_every_feast_dtype_has_a_rule() -> None:
    from loom.api.featureset import Dtype

    assert set(FEATURE_TYPES) == {d.value for d in Dtype}
