"""Loom's writer of Feast's Redis online store: the rows a materialization chose, written in exactly
the layout Feast 0.67's `RedisOnlineStore.online_write_batch` writes for Loom's settings
(entity_key_serialization_version 3, view versioning off, `skip_dedup`, no `key_ttl_seconds`, so no
key expiry), which `feast_online` and the model servers read:

    key      u32 count, per join key sorted by name (u32 STRING=2, u32 len, name), then per value
             (u32 value type, u32 len, bytes), then the project             (a Redis hash)
    field    "_ts:<view>"                        -> protobuf Timestamp (seconds, nanos) of the row
    field    mmh3_32("<view>:<feature>") as 4 LE bytes -> serialized feast Value

Why not Feast's own path: `import feast` alone takes ~5 s and ~800 MiB, and its conversion builds a
proto object per value; this module encodes the Value wire format directly (what Feast's
`python_values_to_proto_values` produces for each type a FeatureSet declares, nulls and NaN included)
and sends HSETs as raw RESP on one connection, a few thousand per round trip (a non-transactional
pipeline). One deliberate difference: Feast passes an integer column that has nulls through float64
(pandas), which rounds values beyond 2**53; this writer keeps them exact. The view's shape comes from Feast's SQL registry row, read with SQLAlchemy and decoded
here, so Feast's registry stays the source of what is written.

tests/integration/features/test_materialize_layout.py holds every key and field of it byte for byte
equal to what `FeatureStore.materialize` writes; a Feast upgrade that changes the layout fails there."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loom.domain.feature_views import TAG_OWNER, TAG_VERSION

if TYPE_CHECKING:
    import pyarrow as pa

    from loom.drivers.feast_store import StoreSettings

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


def registered_layout(settings: StoreSettings, view: str) -> RegisteredLayout | None:
    """The view as Feast's SQL registry holds it (None when absent): its Loom tags and its layout."""
    import sqlalchemy as sa

    engine = sa.create_engine(settings.sqlalchemy_uri)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.text("SELECT feature_view_proto FROM feature_views WHERE feature_view_name = :n AND project_id = :p"),
                {"n": view, "p": settings.project},
            ).first()
    except sa.exc.OperationalError:  # a registry no view was ever applied to has no tables yet
        return None
    finally:
        engine.dispose()
    if row is None:
        return None
    spec = _message(_message(bytes(row[0])).get(1, [b""])[0])  # FeatureView.spec
    tags = dict(_pair(entry) for entry in spec.get(5, []))
    features = tuple(_feature(f) for f in spec.get(4, []))
    join_keys = tuple(_feature(f) for f in spec.get(12, []))
    layout = ViewLayout(settings.project, view, join_keys, features)
    return RegisteredLayout(tags.get(TAG_OWNER), tags.get(TAG_VERSION), bool(spec.get(8, [0])[-1]), layout)


def open_client(connection: str) -> Any:
    """A redis-py client for a Feast connection string ("host:port[,db=0,ssl=true,password=...]"),
    parsed as `RedisOnlineStore._parse_connection_string` parses it for a plain Redis."""
    import redis

    nodes = [c.split(":") for c in connection.split(",") if "=" not in c]
    params: dict[str, Any] = {}
    for item in (c for c in connection.split(",") if "=" in c):
        name, value = item.split("=", 1)
        try:
            params[name] = json.loads(value)
        except json.JSONDecodeError:
            params[name] = value
    return redis.Redis(host=nodes[0][0], port=int(nodes[0][1]), **params)


class RedisWriter:
    """Writes entity rows (join keys, features, event time) of one view, a pipeline per batch."""

    def __init__(self, client: Any, layout: ViewLayout, timestamp_field: str) -> None:
        unknown = [name for name, code in layout.join_keys if code not in _KEY_PACKERS]
        if unknown:
            raise ValueError(f"join keys {unknown} are not of an entity value type ({', '.join(ENTITY_TYPES)})")
        missing = [name for name, code in layout.features if code not in _ENCODERS]
        if missing:
            raise NotImplementedError(f"features {missing} have a Feast type Loom does not write")
        self._client, self._layout, self._timestamp = client, layout, timestamp_field
        order = sorted(layout.join_keys)
        self._key_prefix = struct.pack("<I", len(order)) + b"".join(
            _STRING + struct.pack("<I", len(n.encode())) + n.encode() for n, _ in order)
        self._key_order = order
        self._suffix = layout.project.encode()
        ts_field = f"_ts:{layout.view}".encode()
        fields = [ts_field] + [_mmh3(f"{layout.view}:{name}") for name, _ in layout.features]
        self._headers = [b"$%d\r\n%s\r\n" % (len(f), f) for f in fields]
        self._command = b"*%d\r\n$4\r\nHSET\r\n" % (2 + 2 * len(fields))

    def write(self, batches: Iterable[pa.RecordBatch], batch_rows: int = 4000) -> int:
        """Write every row of the batches (one row per entity: the caller chose them); the rows written."""
        written = 0
        pool = self._client.connection_pool
        conn = pool.get_connection()
        try:
            for batch in batches:
                for offset in range(0, batch.num_rows, batch_rows):
                    chunk = batch.slice(offset, batch_rows)
                    conn.send_packed_command([self._commands(chunk)], check_health=False)
                    for _ in range(chunk.num_rows):
                        reply = conn.read_response()
                        if isinstance(reply, Exception):
                            raise reply
                    written += chunk.num_rows
        except BaseException:
            conn.disconnect()  # replies may be left unread: never hand this connection out again
            raise
        finally:
            pool.release(conn)
        return written

    def _commands(self, batch: pa.RecordBatch) -> bytes:
        keys = self._keys(batch)
        columns = [_timestamps(batch.column(self._timestamp))]
        columns += [_ENCODERS[code](batch.column(name)) for name, code in self._layout.features]
        parts: list[bytes] = []
        append = parts.append
        headers, command = self._headers, self._command
        for i, key in enumerate(keys):
            append(command)
            append(b"$%d\r\n%s\r\n" % (len(key), key))
            for header, column in zip(headers, columns):
                value = column[i]
                append(header)
                append(b"$%d\r\n%s\r\n" % (len(value), value))
        return b"".join(parts)

    def _keys(self, batch: pa.RecordBatch) -> list[bytes]:
        packed = []
        for name, code in self._key_order:
            pack = _KEY_PACKERS[code]
            values = batch.column(name).to_pylist()
            if None in values:
                raise ValueError(f"join key {name} is null in the rows to materialize")
            packed.append([struct.pack("<II", code, len(p)) + p for p in map(pack, values)])
        prefix, suffix = self._key_prefix, self._suffix
        return [prefix + b"".join(parts) + suffix for parts in zip(*packed)]


def online_row_count(client: Any, layout: ViewLayout) -> int:
    """Entity rows of the view in Redis: keys of the project with its join keys that carry its
    `_ts:<view>` field (what `feast_store.online_row_count` counts, without Feast)."""
    names = sorted(name for name, _ in layout.join_keys)
    prefix = struct.pack("<I", len(names)) + b"".join(
        _STRING + struct.pack("<I", len(n.encode())) + n.encode() for n in names)
    ts_field = f"_ts:{layout.view}".encode()
    count = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=prefix + b"*" + layout.project.encode(), count=10_000):
        batch.append(key)
        if len(batch) == 10_000:
            count += _with_field(client, batch, ts_field)
            batch = []
    return count + _with_field(client, batch, ts_field)


def _with_field(client: Any, keys: list[bytes], field: bytes) -> int:
    if not keys:
        return 0
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hexists(key, field)
        return sum(1 for present in pipe.execute() if present)


def _mmh3(text: str) -> bytes:
    import mmh3

    return struct.pack("<Q", mmh3.hash(text, signed=False))[:4]


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

