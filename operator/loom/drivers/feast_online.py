"""Online feature reads from Feast's Redis layout: one HMGET per entity, all written at once on one
held connection and answered in one round trip; keys built and values decoded by Feast's own helpers
(`feast_internals`) and protos.

`FeatureStore.get_online_features` resolves the registry, builds response protos and converts them
again on every call; a reader asks for the same view and features each time, so it resolves them
once: the commands' hash fields are packed Redis protocol bytes, the key of a single integer join key
is Feast's own key with the value swapped in (checked against Feast when the reader is made), and a
scalar feature is read from its Value proto's field, Feast's conversion left for anything else. It
returns what Feast's `to_dict()` returns for the same request (a test holds it to that). The model
servers' own copy, without Feast, is components/serve/online.py."""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import redis

from loom.drivers.feast_internals import EntityKeys, feature_decoder, feature_field, redis_client
from loom.drivers.feast_store import OnlineKind, StoreSettings, open_store


class OnlineFeatureReader:
    """Reads one view's features for entity rows; one read at a time holds the connection."""

    def __init__(self, settings: StoreSettings, view: str, features: Sequence[str] | None = None) -> None:
        if settings.online_kind is not OnlineKind.REDIS:
            raise ValueError("OnlineFeatureReader reads Feast's Redis layout; use FeatureStore for sqlite")
        store = open_store(settings)
        feature_view = store.get_feature_view(view)
        entities = [store.get_entity(name) for name in feature_view.entities]
        self.join_keys = [e.join_key for e in entities]
        self._row_key = _row_key(EntityKeys(store.config, self.join_keys, [e.value_type for e in entities]),
                                 [e.value_type.name for e in entities])
        dtypes = {f.name: f.dtype for f in feature_view.features}
        self.features = list(features or dtypes)
        self._fields = fields = [feature_field(feature_view.name, name) for name in self.features]
        self._head = b"*%d\r\n$5\r\nHMGET\r\n" % (2 + len(fields))
        self._tail = b"\r\n" + b"".join(b"$%d\r\n%s\r\n" % (len(f), f) for f in fields)
        decode = feature_decoder()
        self._decoders = [_decoder(decode, dtypes[name].to_value_type()) for name in self.features]
        self._client = redis_client(store.config)
        self._lock = threading.Lock()
        # A Redis Cluster's keys live on several nodes: its client routes a pipeline's commands instead.
        self._connection = (self._client.connection_pool.get_connection()
                            if isinstance(self._client, redis.Redis) else None)

    def read(self, entity_rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
        """Feature values for each row, as `get_online_features(...).to_dict()` shapes them."""
        head, tail, join_keys = self._head, self._tail, self.join_keys
        keys = list(map(self._row_key, entity_rows))
        if (connection := self._connection) is None:
            with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hmget(key, self._fields)
                stored = pipe.execute()
        else:
            command = b"".join([head + b"$%d\r\n" % len(key) + key + tail for key in keys])
            with self._lock:
                stored = connection.retry.call_with_retry(lambda: self._round_trip(connection, command, len(keys)),
                                                          lambda _: connection.disconnect())
        result: dict[str, list[Any]] = {key: [row[key] for row in entity_rows] for key in join_keys}
        for i, (name, decode) in enumerate(zip(self.features, self._decoders)):
            result[name] = [decode(values[i]) for values in stored]
        return result

    @staticmethod
    def _round_trip(connection: Any, command: bytes, replies: int) -> list[list[bytes | None]]:
        """Writes the commands and reads their replies; a failure part way leaves replies unread, so
        the connection is dropped (the next read connects again)."""
        try:
            connection.send_packed_command([command])
            return [connection.read_response() for _ in range(replies)]
        except BaseException:
            connection.disconnect()
            raise

    def close(self) -> None:
        if self._connection is not None:
            self._client.connection_pool.release(self._connection)
        self._client.close()


# Value proto fields whose value Feast's conversion returns as it is, by the feature's value type.
_AS_STORED = {"INT32": "int32_val", "INT64": "int64_val", "FLOAT": "float_val", "DOUBLE": "double_val",
              "STRING": "string_val", "BOOL": "bool_val", "BYTES": "bytes_val"}
_FIXED_KEYS = {"INT32": "<i", "INT64": "<q"}


def _row_key(keys: EntityKeys, value_types: Sequence[str]) -> Callable[[Mapping[str, Any]], bytes]:
    """The key of an entity row. For one integer join key, Feast's key of a probe value with the
    value swapped, when that gives Feast's key of a second probe; otherwise Feast's key of each row."""
    join_keys = keys.join_keys
    if len(join_keys) == 1 and value_types[0] in _FIXED_KEYS:
        name, pack = join_keys[0], struct.Struct(_FIXED_KEYS[value_types[0]]).pack
        probe, check = 0x1234567, -0x7654321
        key = keys.key([probe])
        at = key.rfind(pack(probe))
        head, tail = key[:at], key[at + len(pack(probe)):]
        if at >= 0 and head + pack(check) + tail == keys.key([check]):
            return lambda row: head + pack(int(row[name])) + tail
    return lambda row: keys.key([row[k] for k in join_keys])


def _decoder(decode: Callable[[bytes | None, Any], Any], value_type: Any) -> Callable[[bytes | None], Any]:
    """One feature's decoder: the Value proto's field for a scalar stored as its type says, Feast's
    conversion for everything else."""
    field = _AS_STORED.get(value_type.name)
    if field is None:
        return lambda stored: decode(stored, value_type)
    from feast.protos.feast.types.Value_pb2 import Value

    parse = Value.FromString

    def scalar(stored: bytes | None) -> Any:
        if stored is None:
            return None
        value = parse(stored)
        return getattr(value, field) if value.WhichOneof("val") == field else decode(stored, value_type)

    return scalar
