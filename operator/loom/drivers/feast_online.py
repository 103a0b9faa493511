"""Online feature reads for Loom's model servers: one pipelined HMGET per entity against Feast's
Redis layout, keys and values encoded and decoded by Feast's own helpers.

`FeatureStore.get_online_features` resolves the registry, builds response protos and converts them
again on every call; a model server asks for the same view and features each time, so the reader
resolves them once. It returns what Feast's `to_dict()` returns for the same request (a test holds
it to that)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loom.drivers.feast_store import OnlineKind, StoreSettings, open_store, redis_client

# EntityKey values by Feast ValueType name: the proto field that holds them.
_VALUE_FIELDS = {"INT64": "int64_val", "INT32": "int32_val", "STRING": "string_val", "BYTES": "bytes_val"}


class OnlineFeatureReader:
    def __init__(self, settings: StoreSettings, view: str, features: Sequence[str] | None = None) -> None:
        from feast.infra.key_encoding_utils import serialize_entity_key
        from feast.infra.online_stores.helpers import _mmh3
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value
        from feast.type_map import feast_value_type_to_python_type

        if settings.online_kind is not OnlineKind.REDIS:
            raise ValueError("OnlineFeatureReader reads Feast's Redis layout; use FeatureStore for sqlite")
        store = open_store(settings)
        feature_view = store.get_feature_view(view)
        entities = [store.get_entity(name) for name in feature_view.entities]
        self.join_keys = [e.join_key for e in entities]
        self._value_fields = [_VALUE_FIELDS[e.value_type.name] for e in entities]
        dtypes = {f.name: f.dtype for f in feature_view.features}
        self.features = list(features or dtypes)
        self._types = [dtypes[name].to_value_type() for name in self.features]
        self._fields = [_mmh3(f"{feature_view.name}:{name}") for name in self.features]
        self._project = settings.project.encode()
        self._client = redis_client(settings)
        self._serialize = serialize_entity_key
        self._entity_key, self._value = EntityKey, Value
        self._to_python = feast_value_type_to_python_type

    def _key(self, row: Mapping[str, Any]) -> bytes:
        values = [self._value(**{field: row[key]}) for key, field in zip(self.join_keys, self._value_fields)]
        proto = self._entity_key(join_keys=self.join_keys, entity_values=values)
        return self._serialize(proto, entity_key_serialization_version=3) + self._project

    def read(self, entity_rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
        """Feature values for each row, as `get_online_features(...).to_dict()` shapes them."""
        with self._client.pipeline(transaction=False) as pipe:
            for row in entity_rows:
                pipe.hmget(self._key(row), self._fields)
            stored = pipe.execute()
        result: dict[str, list[Any]] = {key: [row[key] for row in entity_rows] for key in self.join_keys}
        parse = self._value.FromString
        for i, (name, value_type) in enumerate(zip(self.features, self._types)):
            result[name] = [
                None if values[i] is None else self._to_python(parse(values[i]), value_type) for values in stored
            ]
        return result
