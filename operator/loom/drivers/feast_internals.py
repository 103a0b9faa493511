"""The Feast internals Loom relies on, in one place: the Redis client Feast builds from an online
store config, the provider call that tears down a view's online data, and Feast's Redis online store
layout, which Loom reads directly (one pipelined HMGET per entity for model servers, a key scan to
count a view's rows).

The layout, as Feast's RedisOnlineStore writes it for entity_key_serialization_version 3:

    key      serialize_entity_key(EntityKey(join_keys, values)) + project    (a Redis hash)
    field    mmh3("<view>:<feature>") as 4 bytes    -> a serialized feast Value proto
    field    "_ts:<view>"                           -> a serialized protobuf Timestamp

No other Loom module imports a private Feast name or knows this layout;
tests/integration/features/test_feast_internals.py pins it against what Feast itself writes and
reads, so a Feast upgrade that changes it fails there, by name.

`import feast` costs seconds, so it happens inside the functions, never at module import."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView
    from feast.repo_config import RepoConfig
    from feast.value_type import ValueType

# EntityKey values by Feast ValueType name: the Value proto field that holds them.
_VALUE_FIELDS = {"INT64": "int64_val", "INT32": "int32_val", "STRING": "string_val", "BYTES": "bytes_val"}


def teardown_online(store: FeatureStore, view: FeatureView) -> None:
    """Delete a view's online data while the registry still names it. `FeatureStore.apply` with
    `objects_to_delete` removes the view from a SQL registry first and tears down its data after, so
    a teardown that failed there would leave data no later attempt could find."""
    store._get_provider().update_infra(project=store.project, tables_to_delete=[view], tables_to_keep=[],
                                       entities_to_delete=[], entities_to_keep=[], partial=False)


def redis_client(config: RepoConfig) -> Any:
    """A redis-py client built by Feast's own factory (`RedisOnlineStore._get_client`), so connection
    strings (password, ssl, db, cluster, sentinel) mean exactly what they mean to Feast and Loom reads
    the database Feast writes."""
    from feast.infra.online_stores.redis import RedisOnlineStore

    return RedisOnlineStore()._get_client(config.online_store)


def redis_key_pattern(config: RepoConfig, join_keys: Sequence[str]) -> bytes:
    """SCAN MATCH pattern of every key of the project whose entity has these join keys: the
    serialized key starts with the join keys (`helpers._redis_key_prefix`) and ends with the project;
    Feast's own teardown of a view scans the same pattern."""
    from feast.infra.online_stores.helpers import _redis_key_prefix

    return _redis_key_prefix(list(join_keys)) + b"*" + config.project.encode()


def feature_field(view: str, feature: str) -> bytes:
    """The hash field holding one feature of a view: Feast's `helpers._mmh3` of "<view>:<feature>"."""
    from feast.infra.online_stores.helpers import _mmh3

    field: bytes = _mmh3(f"{view}:{feature}")
    return field


def timestamp_field(view: str) -> bytes:
    """The hash field holding the event time of a view's row (present once the view wrote the key)."""
    return f"_ts:{view}".encode()


class EntityKeys:
    """Redis keys of entity rows for one project and one list of join keys, built by Feast's own
    `helpers._redis_key` from an EntityKey proto (Feast sorts composite keys when it serializes)."""

    def __init__(self, config: RepoConfig, join_keys: Sequence[str], value_types: Sequence[ValueType]) -> None:
        from feast.infra.online_stores.helpers import _redis_key
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        self.join_keys = list(join_keys)
        self._fields = [_VALUE_FIELDS[t.name] for t in value_types]
        self._project = config.project
        self._version = config.entity_key_serialization_version
        self._redis_key, self._entity_key, self._value = _redis_key, EntityKey, Value

    def key(self, values: Sequence[Any]) -> bytes:
        """The key of the entity whose join keys have these values (in join_keys order)."""
        protos = [self._value(**{field: value}) for field, value in zip(self._fields, values)]
        entity = self._entity_key(join_keys=self.join_keys, entity_values=protos)
        key: bytes = self._redis_key(self._project, entity, entity_key_serialization_version=self._version)
        return key


def feature_decoder() -> Callable[[bytes | None, ValueType], Any]:
    """Decodes a stored feature field (None when the hash lacks it) to the Python value that
    `get_online_features(...).to_dict()` gives for it."""
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    parse = Value.FromString

    def decode(stored: bytes | None, value_type: ValueType) -> Any:
        return None if stored is None else feast_value_type_to_python_type(parse(stored), value_type)

    return decode
