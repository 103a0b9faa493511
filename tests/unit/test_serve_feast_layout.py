"""The serve environment's copy of Feast's Redis layout (components/serve/feast_layout.py) builds the
keys and hash fields Feast's own helpers build and decodes every value type a FeatureSet declares as
Feast decodes it; the integration test compares whole reads against a real materialized store."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from typing import Any

import pytest
from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import BoolList, DoubleList, FloatList, Int32List, Int64List, StringList, Value
from feast.type_map import feast_value_type_to_python_type

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "components"))
from serve.feast_layout import EntityKeys, decode_value, feature_field  # noqa: E402

KEY_FIELDS = {"INT64": "int64_val", "INT32": "int32_val", "STRING": "string_val", "BYTES": "bytes_val"}


@pytest.mark.parametrize("join_keys, values", [
    ({"userId": "INT64"}, [42]),
    ({"userId": "INT64"}, [-(2**63)]),
    ({"userId": "INT32"}, [-7]),
    ({"name": "STRING"}, ["Zoë"]),
    ({"blob": "BYTES"}, [b"\x00\xff"]),
    ({"userId": "INT64", "country": "STRING", "age": "INT32"}, [5, "fr", 30]),  # Feast sorts by key name
])
def test_keys_are_feasts(join_keys: dict[str, str], values: list[Any]) -> None:
    protos = [Value(**{KEY_FIELDS[t]: v}) for t, v in zip(join_keys.values(), values)]
    feast = _redis_key("loom_ns_proj", EntityKey(join_keys=list(join_keys), entity_values=protos), 3)
    assert EntityKeys("loom_ns_proj", join_keys).key(values) == feast


def test_hash_fields_are_feasts() -> None:
    for view, feature in [("user-features", "meanRating"), ("v", "é"), ("a" * 300, "b")]:
        assert feature_field(view, feature) == _mmh3(f"{view}:{feature}")


def test_unknown_entity_types_are_refused() -> None:
    with pytest.raises(ValueError, match="FLOAT"):
        EntityKeys("p", {"x": "FLOAT"})


VALUES = [
    Value(), Value(int64_val=0), Value(int64_val=-1), Value(int64_val=2**62), Value(int32_val=-2**31),
    Value(int32_val=123), Value(double_val=3.25), Value(double_val=-0.1), Value(float_val=0.1),
    Value(float_val=-1e30), Value(bool_val=True), Value(bool_val=False), Value(string_val=""),
    Value(string_val="Drama|Comedy ✓"), Value(bytes_val=b"\x01\x02"),
    Value(unix_timestamp_val=1_700_000_000), Value(unix_timestamp_val=-(2**63)),
    Value(int64_list_val=Int64List(val=[1, -2, 2**40])), Value(int32_list_val=Int32List(val=[-5, 6])),
    Value(float_list_val=FloatList(val=[0.5, -0.1])), Value(double_list_val=DoubleList(val=[1e-300, 2.0])),
    Value(string_list_val=StringList(val=["a", "", "ü"])), Value(bool_list_val=BoolList(val=[True, False])),
    Value(int64_list_val=Int64List(val=[])),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: v.WhichOneof("val") or "empty")
def test_values_decode_as_feast_decodes_them(value: Value) -> None:
    expected = feast_value_type_to_python_type(value)
    got = decode_value(value.SerializeToString())
    assert got == expected and type(got) is type(expected)


def test_a_missing_field_is_none() -> None:
    assert decode_value(None) is None
    assert decode_value(Value(unix_timestamp_val=86400).SerializeToString()) == datetime(1970, 1, 2, tzinfo=timezone.utc)
