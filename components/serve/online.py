"""A FeatureSet's online features, read straight from the Redis that Feast materializes into, without
Feast: one HMGET per entity, all written at once and answered in one round trip. The model server names
the same view and features on every request, so the read builds nothing it can build once: the keys'
fixed parts and the commands' hash fields are packed bytes, the request is written as Redis protocol
bytes on one held connection, and its replies are parsed by hiredis (redis-py's parser when installed,
requirements/serve.txt) and decoded by the stored value's tag.

`read` returns what Feast's `get_online_features(...).to_dict()` returns for the same entity rows
(tests/integration/serving/test_online_reader.py compares them on real materialized data)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from .feast_layout import EntityKeys, decode_value, feature_field


@dataclass(frozen=True)
class OnlineSource:
    """Where a FeatureSet's view lives online, as the serving runtime is told (model settings):
    Feast's Redis `connection_string` (or `connectionEnv`, the variable that holds it when it comes
    from a Secret), the Feast project, the view, its join keys with their feast value types (e.g.
    {"userId": "INT64"}) and the features to read."""

    connection: str
    project: str
    view: str
    join_keys: dict[str, str]
    features: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OnlineSource:
        if "connection" in data:
            connection = data["connection"]
        elif (connection := os.environ.get(data["connectionEnv"])) is None:
            raise ValueError(f"onlineFeatures.connectionEnv: the variable {data['connectionEnv']} is not set")
        return cls(connection, data["project"], data["view"], dict(data["joinKeys"]),
                   list(data.get("features", [])))


def connect(connection: str) -> redis.Redis:
    """A client for Feast's connection string `host:port[,key=value...]` (values JSON when they parse:
    `db=1,ssl=true,password=...`), as Feast's RedisOnlineStore reads it for a plain Redis."""
    nodes = [c for c in connection.split(",") if "=" not in c]
    if len(nodes) != 1:
        raise ValueError(f"{connection!r}: expected one host:port (Redis Cluster and Sentinel are not read here)")
    host, _, port = nodes[0].partition(":")
    params: dict[str, Any] = {}
    for item in connection.split(","):
        if "=" in item:
            key, value = item.split("=", 1)
            try:
                params[key] = json.loads(value)
            except json.JSONDecodeError:
                params[key] = value
    return redis.Redis(host=host, port=int(port or 6379), **params)


class OnlineReader:
    """Reads one view's features for entity rows; one read at a time holds the connection."""

    def __init__(self, source: OnlineSource, client: redis.Redis | None = None) -> None:
        if not source.features:
            raise ValueError(f"no features to read from view {source.view!r}")
        self.source = source
        self.join_keys = list(source.join_keys)
        self.features = list(source.features)
        self._row_key = EntityKeys(source.project, source.join_keys).row_key()
        fields = [feature_field(source.view, name) for name in self.features]
        self._head = b"*%d\r\n$5\r\nHMGET\r\n" % (2 + len(fields))
        self._tail = b"\r\n" + b"".join(b"$%d\r\n%s\r\n" % (len(f), f) for f in fields)
        self._client = client or connect(source.connection)
        self._connection = self._client.connection_pool.get_connection()
        self._lock = threading.Lock()

    def read(self, entity_rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
        """Join keys and feature values per row, shaped as Feast's `to_dict()`; None where absent."""
        head, tail, row_key = self._head, self._tail, self._row_key
        command = b"".join([head + b"$%d\r\n" % len(key) + key + tail for key in map(row_key, entity_rows)])
        with self._lock:
            connection = self._connection
            stored = connection.retry.call_with_retry(lambda: self._round_trip(command, len(entity_rows)),
                                                      lambda _: connection.disconnect())
        result: dict[str, list[Any]] = {key: [row[key] for row in entity_rows] for key in self.join_keys}
        for i, name in enumerate(self.features):
            result[name] = [decode_value(values[i]) for values in stored]
        return result

    def _round_trip(self, command: bytes, replies: int) -> list[list[bytes | None]]:
        """Writes the commands and reads their replies; a failure part way leaves replies unread, so
        the connection is dropped (the next read connects again)."""
        connection = self._connection
        try:
            connection.send_packed_command([command])
            return [connection.read_response() for _ in range(replies)]
        except BaseException:
            connection.disconnect()
            raise

    def close(self) -> None:
        self._client.connection_pool.release(self._connection)
        self._client.close()
