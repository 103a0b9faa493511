"""What the feature benchmarks share: a throwaway redis-server, and synthetic user features shaped like
the sample's `user_features` with the FeatureSet spec that reads them (synthetic because the
comparisons need more entities than MovieLens has users)."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import redis
from pyiceberg.table import Table

from loom.api.datalake import DataLakeSpec
from loom.devcluster.served import free_port
from loom.drivers.iceberg_catalog import open_catalog

GENRES = ["Drama", "Comedy", "Action", "Thriller", "Romance", "Sci-Fi", "Adventure", "Crime"]
SPEC: dict[str, Any] = {
    "source": {"dataLakeRef": {"name": "bench", "table": "user_features"}, "timestampField": "eventTimestamp"},
    "entities": [{"name": "user", "joinKeys": ["userId"]}],
    "features": [{"name": "ratingCount", "dtype": "Int64"}, {"name": "meanRating", "dtype": "Float64"},
                 {"name": "favoriteGenre", "dtype": "String"}],
    "ttl": "0s",
}


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A redis-server without persistence on a free port, and its address once it answers."""
    port = free_port()
    proc = subprocess.Popen([shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port),
                             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            return proc, f"127.0.0.1:{port}"
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def user_features(rows: int, entities: int, seed: int) -> pa.Table:
    """`rows` rows over users 1..entities (each once when they are equal), recent event times:
    `feast materialize-incremental` starts a first run one year back (ttl 0)."""
    rng = np.random.default_rng(seed)
    start = datetime.now(timezone.utc) - timedelta(days=300)
    users = np.arange(1, rows + 1) if rows == entities else rng.integers(1, entities + 1, rows)
    minutes = rng.integers(0, 400_000, rows).astype("timedelta64[m]")
    return pa.table({
        "userId": pa.array(users, pa.int64()),
        "ratingCount": pa.array(rng.integers(1, 2000, rows), pa.int64()),
        "meanRating": pa.array(np.round(rng.uniform(0.5, 5.0, rows), 3), pa.float64()),
        "favoriteGenre": pa.array(np.array(GENRES)[rng.integers(0, len(GENRES), rows)], pa.string()),
        "eventTimestamp": pa.array(np.datetime64(start.replace(tzinfo=None), "us") + minutes,
                                   pa.timestamp("us", tz="UTC")),
    })


@dataclass(frozen=True)
class Lake:
    """The `user_features` table in a fresh SQLite catalog, and the DataLake spec that declares it."""

    properties: dict[str, str]
    table: Table
    spec: DataLakeSpec


def user_features_lake(base: Path) -> Lake:
    properties = {"type": "sql", "uri": f"sqlite:///{base / 'lake.db'}", "warehouse": f"file://{base / 'wh'}"}
    catalog = open_catalog("default", properties)
    catalog.create_namespace("bench")
    table = catalog.create_table(("bench", "user_features"), schema=user_features(1, 1, 0).schema)
    spec = DataLakeSpec.model_validate({
        "catalog": {"type": "sql", "uri": properties["uri"], "warehouse": properties["warehouse"]},
        "namespace": "bench",
        "tables": [{"name": "user_features", "columns": [{"name": "userId", "type": "long"}]}],
    })
    return Lake(properties, table, spec)
