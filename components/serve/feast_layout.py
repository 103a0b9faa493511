"""Feast 0.67's Redis online store layout, written out so the serve environment reads it without Feast
(MLServer and Feast cannot share an environment). What Feast's RedisOnlineStore writes, with
entity_key_serialization_version 3 and feature view versioning off (Loom's settings):

    key      serialize_entity_key(join keys sorted by name, their values) + project   (a Redis hash)
             = u32 count, then per key (u32 STRING=2, u32 len, utf-8 name),
               then per value (u32 value type, u32 len, bytes); all little-endian
    field    mmh3_32("<view>:<feature>", unsigned) as 4 little-endian bytes -> a serialized feast Value
    field    "_ts:<view>"                                                 -> a protobuf Timestamp

A Value is decoded here from protobuf's wire format into what Feast's
`feast_value_type_to_python_type` returns for it, for the types a FeatureSet can declare (scalars and
their lists). tests/integration/serving/test_online_reader.py holds all of it equal to Feast's answers."""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import mmh3

# Entity value types (feast ValueType) and how a join key value is packed in a key.
_KEY_VALUES: dict[str, tuple[int, Callable[[Any], bytes]]] = {
    "BYTES": (1, bytes),
    "STRING": (2, lambda v: str(v).encode("utf-8")),
    "INT32": (3, lambda v: struct.pack("<i", int(v))),
    "INT64": (4, lambda v: struct.pack("<q", int(v))),
}
_FIXED_KEYS = {"INT32": (3, 4, "<i"), "INT64": (4, 8, "<q")}
_STRING = struct.pack("<I", 2)
NULL_TIMESTAMP = -(2**63)  # numpy's NaT as int64, which Feast turns into None


def entity_key_prefix(join_keys: Sequence[str]) -> bytes:
    """The serialized join-key names (everything before the values), sorted as Feast sorts them."""
    names = sorted(join_keys)
    return struct.pack("<I", len(names)) + b"".join(
        _STRING + struct.pack("<I", len(n.encode("utf-8"))) + n.encode("utf-8") for n in names)


class EntityKeys:
    """Redis keys of one project's entities with these join keys (each with its feast value type name)."""

    def __init__(self, project: str, join_keys: dict[str, str]) -> None:
        unknown = sorted(t for t in join_keys.values() if t not in _KEY_VALUES)
        if unknown:
            raise ValueError(f"join key value types {unknown} are not entity types ({', '.join(_KEY_VALUES)})")
        self.join_keys = list(join_keys)
        self._order = sorted(range(len(self.join_keys)), key=lambda i: self.join_keys[i])
        self._packers = [_KEY_VALUES[join_keys[self.join_keys[i]]] for i in self._order]
        self._prefix = entity_key_prefix(self.join_keys)
        self._suffix = project.encode("utf-8")
        self._value_types = join_keys

    def key(self, values: Sequence[Any]) -> bytes:
        """The key of the entity whose join keys have these values (in join_keys order)."""
        parts = [self._prefix]
        for (code, pack), i in zip(self._packers, self._order):
            packed = pack(values[i])
            parts.append(struct.pack("<II", code, len(packed)) + packed)
        parts.append(self._suffix)
        return b"".join(parts)

    def row_key(self) -> Callable[[Mapping[str, Any]], bytes]:
        """The key of an entity row (a mapping holding the join keys). With one integer join key, the
        common case, everything but the value is packed once, here."""
        if len(self.join_keys) == 1 and self._value_types[self.join_keys[0]] in _FIXED_KEYS:
            name = self.join_keys[0]
            code, size, fmt = _FIXED_KEYS[self._value_types[name]]
            head, suffix, pack = self._prefix + struct.pack("<II", code, size), self._suffix, struct.Struct(fmt).pack
            return lambda row: head + pack(int(row[name])) + suffix
        join_keys, key = self.join_keys, self.key
        return lambda row: key([row[k] for k in join_keys])


def feature_field(view: str, feature: str) -> bytes:
    """The hash field of one feature: Feast's `helpers._mmh3`."""
    return struct.pack("<Q", mmh3.hash(f"{view}:{feature}", signed=False))[:4]


def timestamp_field(view: str) -> bytes:
    return f"_ts:{view}".encode()


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _timestamp(seconds: int) -> datetime | None:
    return None if seconds == NULL_TIMESTAMP else datetime.fromtimestamp(seconds, tz=timezone.utc)


# Value's scalar fields by number: (wire type, conversion of the raw varint / fixed / bytes).
_SCALARS: dict[int, tuple[int, Callable[[Any], Any]]] = {
    1: (2, bytes),  # bytes_val
    2: (2, lambda b: b.decode("utf-8")),  # string_val
    3: (0, lambda v: _signed(v, 32)),  # int32_val
    4: (0, lambda v: _signed(v, 64)),  # int64_val
    5: (1, lambda b: struct.unpack("<d", b)[0]),  # double_val
    6: (5, lambda b: struct.unpack("<f", b)[0]),  # float_val
    7: (0, bool),  # bool_val
    8: (0, lambda v: _timestamp(_signed(v, 64))),  # unix_timestamp_val
}
# Value's list fields (a message whose field 1 repeats) by number: the element's scalar field.
_LISTS = {11: 1, 12: 2, 13: 3, 14: 4, 15: 5, 16: 6, 17: 7, 18: 8}
_FIXED = {1: 8, 5: 4}


def _field(data: bytes, pos: int) -> tuple[int, int, Any, int]:
    """(field number, wire type, raw value: int for varints, bytes otherwise, next position)."""
    tag, pos = _varint(data, pos)
    number, wire = tag >> 3, tag & 7
    if wire == 0:
        value, pos = _varint(data, pos)
        return number, wire, value, pos
    if wire == 2:
        length, pos = _varint(data, pos)
        return number, wire, data[pos:pos + length], pos + length
    if wire in _FIXED:
        return number, wire, data[pos:pos + _FIXED[wire]], pos + _FIXED[wire]
    raise ValueError(f"unsupported protobuf wire type {wire} in a feast Value")


def _repeated(data: bytes, element: int) -> list[Any]:
    """The elements of a feast *List message (field 1, packed or not)."""
    wire, convert = _SCALARS[element]
    out: list[Any] = []
    pos = 0
    while pos < len(data):
        _, got, raw, pos = _field(data, pos)
        if got == 2 and wire != 2:  # packed: the elements one after another
            inner = 0
            while inner < len(raw):
                if wire == 0:
                    item, inner = _varint(raw, inner)
                else:
                    item, inner = raw[inner:inner + _FIXED[wire]], inner + _FIXED[wire]
                out.append(convert(item))
        else:
            out.append(convert(raw))
    return out


def _decode(stored: bytes) -> Any:
    value: Any = None
    pos = 0
    while pos < len(stored):  # a oneof: the last field seen wins, as in protobuf
        number, _, raw, pos = _field(stored, pos)
        if number in _SCALARS:
            value = _SCALARS[number][1](raw)
        elif number in _LISTS:
            value = _repeated(raw, _LISTS[number])
        else:
            raise ValueError(f"feast Value field {number} is not a type a FeatureSet declares")
    return value


# What Feast writes for a scalar is its one field: tag byte, then the value. These decode that shape
# straight from the tag (the first byte) and hand anything else to the general decoder above.
_DOUBLE, _FLOAT = struct.Struct("<d").unpack_from, struct.Struct("<f").unpack_from


def _varint_field(bits: int, convert: Callable[[int], Any]) -> Callable[[bytes], Any]:
    def decode(stored: bytes) -> Any:
        if len(stored) == 2 and stored[1] < 0x80:
            return convert(stored[1])
        value, pos = _varint(stored, 1)
        return convert(_signed(value, bits)) if pos == len(stored) else _decode(stored)
    return decode


def _double(stored: bytes) -> Any:
    return _DOUBLE(stored, 1)[0] if len(stored) == 9 else _decode(stored)


def _float(stored: bytes) -> Any:
    return _FLOAT(stored, 1)[0] if len(stored) == 5 else _decode(stored)


def _string(stored: bytes) -> Any:
    return stored[2:].decode("utf-8") if stored[1] < 0x80 and len(stored) == 2 + stored[1] else _decode(stored)


_BY_TAG: dict[int, Callable[[bytes], Any]] = {
    0x12: _string,  # 2 string_val, length-delimited
    0x18: _varint_field(32, int),  # 3 int32_val
    0x20: _varint_field(64, int),  # 4 int64_val
    0x29: _double,  # 5 double_val, fixed64
    0x35: _float,  # 6 float_val, fixed32
    0x38: _varint_field(64, bool),  # 7 bool_val
}


def decode_value(stored: bytes | None) -> Any:
    """A stored feature value (None when the hash lacks the field) as Feast's online response gives it."""
    if not stored:
        return None
    return _BY_TAG.get(stored[0], _decode)(stored)
