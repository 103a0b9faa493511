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

Materialization writes the same layout without importing Feast at all (`import feast` alone takes
~5 s and ~800 MiB, and its conversion builds a proto object per value): `registered_layout` reads a
view's shape from Feast's SQL registry table and decodes its protobuf by field number, and
`OnlineRowEncoder` encodes entity keys, hash fields and the Value wire format as Feast 0.67's
`RedisOnlineStore.online_write_batch` writes them for Loom's settings (view versioning off,
`skip_dedup`, no `key_ttl_seconds`). `drivers/feast_redis_writer.py` only sends what it encodes;
tests/integration/features/test_materialize_layout.py holds every key and field byte for byte equal
to what `FeatureStore.materialize` writes.

`import feast` costs seconds, so it happens inside the functions, never at module import."""

from __future__ import annotations

import contextlib
import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loom.domain.feature_views import TAG_OWNER, TAG_VERSION

if TYPE_CHECKING:
    import pyarrow as pa
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
    """The hash field holding one feature of a view: what Feast's `helpers._mmh3` makes of
    "<view>:<feature>" (the unsigned 32-bit murmur3 as the first 4 bytes of a little-endian u64)."""
    import mmh3

    return struct.pack("<Q", mmh3.hash(f"{view}:{feature}", signed=False))[:4]


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


# --- Feast's SQL registry and Redis layout, without Feast ------------------------------------------

ENTITY_TYPES = {"BYTES": 1, "STRING": 2, "INT32": 3, "INT64": 4}
NULL_TIMESTAMP = -(2**63)  # what Feast writes for a null UnixTimestamp (numpy's NaT as int64)
_MASK64 = (1 << 64) - 1
_STRING = struct.pack("<I", 2)


@dataclass(frozen=True)
class ViewLayout:
    """What shapes a view's online rows: join keys and features, each with its feast ValueType number."""

    project: str
    view: str
    join_keys: tuple[tuple[str, int], ...]
    features: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class RegisteredLayout:
    owner: str | None
    version: str | None
    online: bool
    layout: ViewLayout


def registered_layout(registry_uri: str, project: str, view: str) -> RegisteredLayout | None:
    """The view as Feast's SQL registry holds it (None when absent): its Loom tags and its layout.
    A SQLite registry is read with the standard library, anything else with SQLAlchemy."""
    query = "SELECT feature_view_proto FROM feature_views WHERE feature_view_name = ? AND project_id = ?"
    if registry_uri.startswith("sqlite:///"):
        import sqlite3

        path = Path(registry_uri[len("sqlite:///"):].split("?", 1)[0])
        if not path.is_file():  # a registry no view was ever applied to
            return None
        try:
            with contextlib.closing(sqlite3.connect(path)) as conn:
                row = conn.execute(query, (view, project)).fetchone()
        except sqlite3.OperationalError:  # ... or one that has no tables yet
            return None
    else:
        row = _registry_row(registry_uri, query.replace("?", ":n", 1).replace("?", ":p", 1), view, project)
    if row is None:
        return None
    spec = _message(_message(bytes(row[0])).get(1, [b""])[0])  # FeatureView.spec
    tags = dict(_pair(entry) for entry in spec.get(5, []))
    features = tuple(_feature(f) for f in spec.get(4, []))
    join_keys = tuple(_feature(f) for f in spec.get(12, []))
    layout = ViewLayout(project, view, join_keys, features)
    return RegisteredLayout(tags.get(TAG_OWNER), tags.get(TAG_VERSION), bool(spec.get(8, [0])[-1]), layout)


def _registry_row(uri: str, query: str, view: str, project: str) -> Any:
    import sqlalchemy as sa

    engine = sa.create_engine(uri)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(query), {"n": view, "p": project}).first()
    except sa.exc.OperationalError:  # a registry no view was ever applied to has no tables yet
        return None
    finally:
        engine.dispose()


def redis_connection(connection: str) -> dict[str, Any]:
    """redis-py's keyword arguments for a Feast connection string ("host:port[,db=0,ssl=true,...]"),
    as `RedisOnlineStore._parse_connection_string` parses it for a plain Redis."""
    nodes = [c.split(":") for c in connection.split(",") if "=" not in c]
    params: dict[str, Any] = {"host": nodes[0][0], "port": int(nodes[0][1])}
    for item in (c for c in connection.split(",") if "=" in c):
        name, value = item.split("=", 1)
        try:
            params[name] = json.loads(value)
        except json.JSONDecodeError:
            params[name] = value
    return params


def key_pattern(layout: ViewLayout) -> bytes:
    """SCAN MATCH pattern of the view's keys: its join keys' prefix, anything, its project."""
    return _key_prefix(sorted(name for name, _ in layout.join_keys)) + b"*" + layout.project.encode()


def _key_prefix(names: Sequence[str]) -> bytes:
    """The serialized EntityKey's start (version 3): the count, then each join key's name as a string."""
    return struct.pack("<I", len(names)) + b"".join(
        _STRING + struct.pack("<I", len(n.encode())) + n.encode() for n in names)


class OnlineRowEncoder:
    """A view's rows (join keys, features, event time) as Feast's Redis keys, hash fields and values."""

    def __init__(self, layout: ViewLayout, timestamp_column: str) -> None:
        unknown = [name for name, code in layout.join_keys if code not in _KEY_PACKERS]
        if unknown:
            raise ValueError(f"join keys {unknown} are not of an entity value type ({', '.join(ENTITY_TYPES)})")
        missing = [name for name, code in layout.features if code not in _ENCODERS]
        if missing:
            raise NotImplementedError(f"features {missing} have a Feast type Loom does not write")
        self._layout, self._timestamp = layout, timestamp_column
        self._key_order = sorted(layout.join_keys)  # Feast sorts a composite key's parts by name
        self._prefix = _key_prefix([name for name, _ in self._key_order])
        self._suffix = layout.project.encode()
        self.fields = [timestamp_field(layout.view)] + [feature_field(layout.view, n) for n, _ in layout.features]

    def keys(self, batch: pa.RecordBatch) -> list[bytes]:
        """Each row's Redis key: the serialized EntityKey (version 3) and the project."""
        packed = []
        for name, code in self._key_order:
            pack = _KEY_PACKERS[code]
            values = batch.column(name).to_pylist()
            if None in values:
                raise ValueError(f"join key {name} is null in the rows to materialize")
            packed.append([struct.pack("<II", code, len(p)) + p for p in map(pack, values)])
        prefix, suffix = self._prefix, self._suffix
        return [prefix + b"".join(parts) + suffix for parts in zip(*packed)]

    def values(self, batch: pa.RecordBatch) -> list[list[bytes]]:
        """One column per field of `fields`: each row's event time, then each feature's Value."""
        columns = [_timestamps(batch.column(self._timestamp))]
        return columns + [_ENCODERS[code](batch.column(name)) for name, code in self._layout.features]


# --- protobuf wire format -------------------------------------------------------------------------

def _varint(value: int) -> bytes:
    value &= _MASK64  # negative numbers: two's complement over 64 bits (10 bytes), as protobuf does
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL = [bytes((i,)) for i in range(0x80)]
Encoder = Callable[["pa.Array"], list[bytes]]


def _length(n: int) -> bytes:
    return _SMALL[n] if n < 0x80 else _varint(n)


def _timestamps(column: pa.Array) -> list[bytes]:
    """The `_ts` field: google.protobuf.Timestamp of each event time, microseconds kept (Feast goes
    through a Python datetime), fields at their default left out as proto3 does."""
    out = []
    for us in _micros(column):
        if us is None:
            raise ValueError("an event time is null in the rows to materialize")
        seconds, rest = divmod(us, 1_000_000)
        out.append((b"\x08" + _varint(seconds) if seconds else b"") + (b"\x10" + _varint(rest * 1000) if rest else b""))
    return out


def _scalars(tag: bytes, encode: Callable[[Any], bytes], nan_is_null: bool = False) -> Encoder:
    """A column of one Value scalar field. Value is a oneof, so a default value (0, "", False) is
    still written; null (and NaN, which Feast's `pd.isnull` counts as null) is an empty Value."""

    def column(values: pa.Array) -> list[bytes]:
        return [b"" if v is None or (nan_is_null and v != v) else tag + encode(v) for v in values.to_pylist()]

    return column


def _string(value: str) -> bytes:
    data = value.encode("utf-8")
    return _length(len(data)) + data


def _bytes(value: bytes) -> bytes:
    return _length(len(value)) + value


def _unix_timestamps(values: pa.Array) -> list[bytes]:
    """Whole seconds (numpy's datetime64[s] cast floors); null is NaT, -2**63, as Feast writes it."""
    return [b"\x40" + _varint(NULL_TIMESTAMP if us is None else us // 1_000_000) for us in _micros(values)]


def _micros(values: pa.Array) -> list[int | None]:
    """Microseconds since the epoch (UTC: a naive time is UTC to Feast) of a timestamp column."""
    import pyarrow as pa

    return values.cast(pa.timestamp("us", tz=getattr(values.type, "tz", None))).cast(pa.int64()).to_pylist()


def _lists(tag: bytes, element: Callable[[list[Any]], bytes], default: Any) -> Encoder:
    """A column of one Value list field (a message whose field 1 repeats); a null list is an empty
    Value, a null element the type's default (Feast's `_LIST_NONE_DEFAULTS`)."""

    def column(values: pa.Array) -> list[bytes]:
        out = []
        for items in values.to_pylist():
            if items is None:
                out.append(b"")
                continue
            body = element([default if v is None else v for v in items]) if items else b""
            out.append(tag + _length(len(body)) + body)
        return out

    return column


def _packed_varints(items: list[int]) -> bytes:
    data = b"".join(_varint(v) for v in items)
    return b"\x0a" + _length(len(data)) + data


def _packed_floats(items: list[float]) -> bytes:
    data = struct.pack(f"<{len(items)}f", *items)
    return b"\x0a" + _length(len(data)) + data


def _repeated_strings(items: list[str]) -> bytes:
    return b"".join(b"\x0a" + _string(v) for v in items)


# Value fields by feast ValueType number (the numbers coincide): how a column of each is encoded.
_ENCODERS: dict[int, Encoder] = {
    1: _scalars(b"\x0a", _bytes),
    2: _scalars(b"\x12", _string),
    3: _scalars(b"\x18", _varint),
    4: _scalars(b"\x20", _varint),
    5: _scalars(b"\x29", lambda v: struct.pack("<d", v), nan_is_null=True),
    6: _scalars(b"\x35", lambda v: struct.pack("<f", v), nan_is_null=True),
    7: _scalars(b"\x38", lambda v: b"\x01" if v else b"\x00"),
    8: _unix_timestamps,
    12: _lists(b"\x62", _repeated_strings, ""),
    14: _lists(b"\x72", _packed_varints, 0),
    16: _lists(b"\x82\x01", _packed_floats, 0.0),
}

# Entity key values (key_encoding_utils._serialize_val, version 3) by feast ValueType number.
_KEY_PACKERS: dict[int, Callable[[Any], bytes]] = {
    1: bytes,
    2: lambda v: str(v).encode("utf-8"),
    3: lambda v: struct.pack("<i", v),
    4: lambda v: struct.pack("<q", v),
}


def _message(data: bytes) -> dict[int, list[Any]]:
    """A protobuf message's fields by number: ints for varints, bytes for length-delimited."""
    fields: dict[int, list[Any]] = {}
    pos = 0
    while pos < len(data):
        tag, pos = _read_varint(data, pos)
        number, wire = tag >> 3, tag & 7
        value: Any
        if wire == 0:
            value, pos = _read_varint(data, pos)
        elif wire == 2:
            size, pos = _read_varint(data, pos)
            value, pos = data[pos:pos + size], pos + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = data[pos:pos + size], pos + size
        else:
            raise ValueError(f"unexpected protobuf wire type {wire} in a Feast registry entry")
        fields.setdefault(number, []).append(value)
    return fields


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _feature(data: bytes) -> tuple[str, int]:
    """FeatureSpecV2: (name, value type)."""
    spec = _message(data)
    return spec.get(1, [b""])[0].decode(), int(spec.get(2, [0])[0])


def _pair(data: bytes) -> tuple[str, str]:
    entry = _message(data)
    return entry.get(1, [b""])[0].decode(), entry.get(2, [b""])[0].decode()
