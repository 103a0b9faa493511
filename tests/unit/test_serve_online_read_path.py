"""The serve environment's read path builds nothing per request it can build once: a row's key from
prepacked parts, a stored value decoded straight from its tag, the request written as Redis protocol
bytes on one held connection. Each shortcut gives what the general path (and Feast) gives, and a read
that fails part way leaves a connection the next read can use."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from feast.infra.online_stores.helpers import _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import feast_value_type_to_python_type

from loom.devcluster.served import free_port
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "components"))
from serve.feast_layout import EntityKeys, decode_value, feature_field  # noqa: E402
from serve.online import OnlineReader, OnlineSource  # noqa: E402

KEY_FIELDS = {"INT64": "int64_val", "INT32": "int32_val", "STRING": "string_val", "BYTES": "bytes_val"}


@pytest.mark.parametrize("join_keys, row", [
    ({"userId": "INT64"}, {"userId": 42}),
    ({"userId": "INT64"}, {"userId": -(2**63)}),
    ({"userId": "INT32"}, {"userId": -7}),
    ({"name": "STRING"}, {"name": "Zoë"}),
    ({"userId": "INT64", "country": "STRING"}, {"country": "fr", "userId": 5}),
])
def test_a_rows_key_is_feasts(join_keys: dict[str, str], row: dict[str, Any]) -> None:
    protos = [Value(**{KEY_FIELDS[t]: row[k]}) for k, t in join_keys.items()]
    feast = _redis_key("proj", EntityKey(join_keys=list(join_keys), entity_values=protos), 3)
    assert EntityKeys("proj", join_keys).row_key()(row) == feast


# Shapes the tag shortcuts must leave to the general decoder: several fields (the last one wins),
# multi-byte varints and lengths, negative varints.
SHAPES = [
    Value(int64_val=1).SerializeToString() + Value(double_val=2.5).SerializeToString(),
    Value(double_val=2.5).SerializeToString() + Value(int64_val=3).SerializeToString(),
    Value(string_val="a").SerializeToString() + Value(string_val="b").SerializeToString(),
    Value(float_val=1.5).SerializeToString() + Value(bool_val=True).SerializeToString(),
    Value(string_val="x" * 300).SerializeToString(), Value(string_val="é" * 64).SerializeToString(),
    Value(int64_val=127).SerializeToString(), Value(int64_val=128).SerializeToString(),
    Value(int64_val=-1).SerializeToString(), Value(int64_val=2**63 - 1).SerializeToString(),
    Value(int32_val=-(2**31)).SerializeToString(), Value(int32_val=300).SerializeToString(),
    Value(bool_val=True).SerializeToString(), Value(float_val=-0.0).SerializeToString(),
]


@pytest.mark.parametrize("stored", SHAPES, ids=range(len(SHAPES)))
def test_every_shape_decodes_as_feast_decodes_it(stored: bytes) -> None:
    expected = feast_value_type_to_python_type(Value.FromString(stored))
    got = decode_value(stored)
    assert got == expected and type(got) is type(expected)


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen([shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port),
                             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(timeout=20)


def test_reads_go_on_after_a_dropped_connection_and_an_error_reply(redis_port: int) -> None:
    client = redis.Redis(port=redis_port)
    keys = EntityKeys("proj", {"userId": "INT64"})
    client.hset(keys.key([1]), mapping={feature_field("v", "n"): Value(int64_val=7).SerializeToString()})
    client.set(keys.key([2]), b"not a hash")
    reader = OnlineReader(OnlineSource(f"127.0.0.1:{redis_port}", "proj", "v", {"userId": "INT64"}, ["n"]))
    one, three = {"userId": 1}, {"userId": 3}
    assert reader.read([one, three]) == {"userId": [1, 3], "n": [7, None]}

    client.client_kill_filter(_type="normal", skipme=True)  # the reader's held connection is gone
    assert reader.read([one]) == {"userId": [1], "n": [7]}

    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        reader.read([{"userId": 2}, one, three])  # replies after the error were never read
    assert reader.read([three, one]) == {"userId": [3, 1], "n": [None, 7]}
    assert reader.read([]) == {"userId": [], "n": []}
    reader.close()
