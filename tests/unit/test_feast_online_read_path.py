"""OnlineFeatureReader's shortcuts give what Feast's own helpers give: a single integer join key's
key is Feast's key with the value swapped in, and a scalar feature read from its Value's field is
what Feast's conversion returns, also when the stored field is not the one its type names."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from feast.infra.online_stores.helpers import _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Int64List, Value
from feast.type_map import feast_value_type_to_python_type
from feast.value_type import ValueType

from loom.drivers.feast_internals import EntityKeys, feature_decoder
from loom.drivers.feast_online import _decoder, _row_key

KEY_FIELDS = {"INT64": "int64_val", "INT32": "int32_val", "STRING": "string_val"}


@pytest.mark.parametrize("join_keys, row", [
    ({"userId": "INT64"}, {"userId": 42}),
    ({"userId": "INT64"}, {"userId": -(2**63)}),
    ({"userId": "INT64"}, {"userId": 0x1234567}),
    ({"userId": "INT32"}, {"userId": -7}),
    ({"name": "STRING"}, {"name": "Zoë"}),
    ({"userId": "INT64", "country": "STRING"}, {"country": "fr", "userId": 5}),
])
def test_a_rows_key_is_feasts(join_keys: dict[str, str], row: dict[str, Any]) -> None:
    config = SimpleNamespace(project="loom_ns_proj", entity_key_serialization_version=3)
    keys = EntityKeys(config, list(join_keys), [ValueType[t] for t in join_keys.values()])  # type: ignore[arg-type]
    protos = [Value(**{KEY_FIELDS[t]: row[k]}) for k, t in join_keys.items()]
    feast = _redis_key("loom_ns_proj", EntityKey(join_keys=list(join_keys), entity_values=protos), 3)
    assert _row_key(keys, list(join_keys.values()))(row) == feast


@pytest.mark.parametrize("value_type, stored", [
    (ValueType.INT64, Value(int64_val=-5)), (ValueType.INT64, Value()), (ValueType.INT64, Value(double_val=1.5)),
    (ValueType.INT32, Value(int32_val=7)), (ValueType.DOUBLE, Value(double_val=0.1)),
    (ValueType.FLOAT, Value(float_val=0.1)), (ValueType.STRING, Value(string_val="Drama")),
    (ValueType.BOOL, Value(bool_val=False)), (ValueType.BYTES, Value(bytes_val=b"\x00")),
    (ValueType.INT64_LIST, Value(int64_list_val=Int64List(val=[1, 2]))),
    (ValueType.UNIX_TIMESTAMP, Value(unix_timestamp_val=86400)),
])
def test_a_feature_decodes_as_feast_converts_it(value_type: ValueType, stored: Value) -> None:
    decode = _decoder(feature_decoder(), value_type)
    expected = feast_value_type_to_python_type(stored, value_type)
    got = decode(stored.SerializeToString())
    assert got == expected and type(got) is type(expected)
    assert decode(None) is None
