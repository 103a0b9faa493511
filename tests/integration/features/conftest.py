"""Real systems for the FeatureSet tests: a Redis server per session (Debian's redis-server on a free
loopback port, no persistence), a pyiceberg SQL catalog per test, a Feast registry in SQLite or
PostgreSQL, and real MovieLens user features (the repo's own replay component) as the lake data."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis
from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from loom.api.datalake import DataLakeSpec
from loom.api.featureset import FeatureSetSpec
from loom.domain.feature_views import FeatureViewDefinition, feast_project
from loom.drivers.feast_store import OnlineKind, StoreSettings
from loom.drivers.iceberg_catalog import open_catalog
from loom.features.materialize import MaterializeRequest
from loom.services.featureset import feature_view_definition
from tests.conftest import ROOT
from tests.integration.conftest import free_port
from tests.integration.datalake.conftest import Postgres, postgres  # noqa: F401  (the session fixture)

LAKE_NAMESPACE = "movielens"
USER_FEATURES = "user_features"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`host:port` of a throwaway redis-server, stopped at the end of the session."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    workdir = tmp_path_factory.mktemp("redis")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=(workdir / "redis.log").open("wb"), stderr=subprocess.STDOUT,
    )
    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: {(workdir / 'redis.log').read_text()}")
            time.sleep(0.05)
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="session")
def movielens(tmp_path_factory: pytest.TempPathFactory) -> list[pa.Table]:
    """Real MovieLens user features: the initial load (80% of ratings) and the next batch, each
    user's aggregates as of the batch's last rating (components/movielens)."""
    out = tmp_path_factory.mktemp("movielens")
    component = ROOT / "components" / "movielens"
    for step in ("initial", "next"):
        subprocess.run([sys.executable, str(component), "--out", str(out), "--batches", "4", step],
                       check=True, capture_output=True, timeout=300)
    return [pq.read_table(p) for p in sorted((out / "user_features").glob("*.parquet"))]


@dataclass
class Lake:
    """An Iceberg SQL catalog with the lake namespace, and the DataLake spec that describes it."""

    properties: dict[str, str]
    catalog: Catalog

    def spec(self) -> DataLakeSpec:
        return DataLakeSpec.model_validate({
            "catalog": {"type": "sql", "uri": self.properties["uri"], "warehouse": self.properties["warehouse"]},
            "namespace": LAKE_NAMESPACE,
            "tables": [{"name": USER_FEATURES, "columns": [{"name": "userId", "type": "long"}]}],
        })

    def table(self, data: pa.Table, name: str = USER_FEATURES) -> Table:
        """A table with the schema of `data`, holding `data` as its first snapshot."""
        table = self.catalog.create_table((LAKE_NAMESPACE, name), schema=data.schema)
        table.append(data)
        return table


@pytest.fixture
def lake(tmp_path: Path) -> Iterator[Lake]:
    props = {"type": "sql", "uri": f"sqlite:///{tmp_path / 'lake' / 'catalog.db'}",
             "warehouse": f"file://{tmp_path / 'lake' / 'warehouse'}"}
    catalog = open_catalog("default", props)
    catalog.create_namespace(LAKE_NAMESPACE)
    yield Lake(props, catalog)
    catalog.close()


def make_settings(kind: OnlineKind, tmp_path: Path, redis_address: str, pg: Postgres | None = None) -> StoreSettings:
    """A fresh project (Redis is shared by the whole session) with its registry in SQLite or PostgreSQL."""
    project = feast_project(f"t-{uuid.uuid4().hex[:10]}")
    uri = pg.url(pg.create_database()) if pg else f"sqlite:///{tmp_path / 'feast' / 'registry.db'}"
    connection = redis_address if kind is OnlineKind.REDIS else str(tmp_path / "feast" / "online.db")
    return StoreSettings(project, uri, kind, connection)


@pytest.fixture(params=["redis", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path, redis_server: str) -> StoreSettings:
    """Feast with a SQLite registry and each online store Loom supports."""
    return make_settings(OnlineKind(request.param), tmp_path, redis_server)


@pytest.fixture
def redis_store(tmp_path: Path, redis_server: str) -> StoreSettings:
    return make_settings(OnlineKind.REDIS, tmp_path, redis_server)


@pytest.fixture
def postgres_store(tmp_path: Path, redis_server: str, postgres: Postgres) -> StoreSettings:  # noqa: F811
    return make_settings(OnlineKind.REDIS, tmp_path, redis_server, postgres)


USER_FEATURE_SPEC: dict[str, Any] = {
    "source": {"dataLakeRef": {"name": "movielens", "table": USER_FEATURES}, "timestampField": "eventTimestamp"},
    "entities": [{"name": "user", "joinKeys": ["userId"], "valueType": "INT64"}],
    "features": [{"name": "ratingCount", "dtype": "Int64"}, {"name": "meanRating", "dtype": "Float64"},
                 {"name": "favoriteGenre", "dtype": "String"}],
    "ttl": "3650d",
}


def definition_for(settings: StoreSettings, lake: Lake, spec: dict[str, Any] | None = None,
                   name: str = "user-features") -> FeatureViewDefinition:
    namespace = "t-" + settings.project.removeprefix("loom_t_")
    parsed = FeatureSetSpec.model_validate(spec or USER_FEATURE_SPEC)
    return feature_view_definition(parsed, lake.spec(), namespace, name, settings.registry_uri)


def request_for(definition: FeatureViewDefinition, settings: StoreSettings, lake: Lake, snapshot: int,
                previous: int | None = None, quality: dict[str, Any] | None = None) -> MaterializeRequest:
    return MaterializeRequest(
        definition=definition.to_json(), store=settings.to_json(), lake_catalog_name="default",
        lake_catalog=lake.properties, lake_table=definition.source.lake_table, snapshot_id=snapshot,
        previous_snapshot_id=previous, quality=quality or {},
    )
