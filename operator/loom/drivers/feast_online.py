"""Online feature reads for Loom's model servers: one pipelined HMGET per entity against Feast's
Redis layout, keys and values encoded and decoded by Feast's own helpers (`feast_internals`).

`FeatureStore.get_online_features` resolves the registry, builds response protos and converts them
again on every call; a model server asks for the same view and features each time, so the reader
resolves them once. It returns what Feast's `to_dict()` returns for the same request (a test holds
it to that)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loom.drivers.feast_internals import EntityKeys, feature_decoder, feature_field, redis_client
from loom.drivers.feast_store import OnlineKind, StoreSettings, open_store


class OnlineFeatureReader:
    def __init__(self, settings: StoreSettings, view: str, features: Sequence[str] | None = None) -> None:
        if settings.online_kind is not OnlineKind.REDIS:
            raise ValueError("OnlineFeatureReader reads Feast's Redis layout; use FeatureStore for sqlite")
        store = open_store(settings)
        feature_view = store.get_feature_view(view)
        entities = [store.get_entity(name) for name in feature_view.entities]
        self.join_keys = [e.join_key for e in entities]
        self._keys = EntityKeys(store.config, self.join_keys, [e.value_type for e in entities])
        dtypes = {f.name: f.dtype for f in feature_view.features}
        self.features = list(features or dtypes)
        self._types = [dtypes[name].to_value_type() for name in self.features]
        self._fields = [feature_field(feature_view.name, name) for name in self.features]
        self._client = redis_client(store.config)
        self._decode = feature_decoder()

    def read(self, entity_rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
        """Feature values for each row, as `get_online_features(...).to_dict()` shapes them."""
        with self._client.pipeline(transaction=False) as pipe:
            for row in entity_rows:
                pipe.hmget(self._keys.key([row[key] for key in self.join_keys]), self._fields)
            stored = pipe.execute()
        result: dict[str, list[Any]] = {key: [row[key] for row in entity_rows] for key in self.join_keys}
        for i, (name, value_type) in enumerate(zip(self.features, self._types)):
            result[name] = [self._decode(values[i], value_type) for values in stored]
        return result
