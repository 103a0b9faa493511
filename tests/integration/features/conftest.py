"""Real systems for the FeatureSet tests: a Redis server per session (Debian's redis-server on a free
loopback port, no persistence), a pyiceberg SQL catalog per test, a Feast registry in SQLite or
PostgreSQL, and real MovieLens user features (the repo's own replay component) as the lake data.
For the tests through the operator: the manifests of a DataLake and its FeatureSets, and appends to a
lake table that the DataLake is nudged to report at once (standing in for an ingest)."""

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
from loom.domain.materialization import MaterializeRequest
from loom.drivers.feast_store import OnlineKind, StoreSettings
from loom.drivers.iceberg_catalog import open_catalog
from loom.services.featureset import feature_view_definition
from tests.conftest import ROOT
from tests.integration.conftest import Kubectl, eventually, free_port
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


# --- through the operator --------------------------------------------------------------------------

USER_FEATURE_COLUMNS: list[dict[str, Any]] = [
    {"name": "userId", "type": "long", "required": True}, {"name": "ratingCount", "type": "long"},
    {"name": "meanRating", "type": "double"}, {"name": "favoriteGenre", "type": "string"},
    {"name": "eventTimestamp", "type": "timestamptz", "required": True}]


@pytest.fixture
def feast_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_server: str) -> Iterator[str]:
    """The operator's Feast defaults, set before the operator starts (which runs workloads locally)."""
    registry = f"sqlite:///{tmp_path / 'feast' / 'registry.db'}"
    monkeypatch.setenv("LOOM_FEAST_REGISTRY", registry)
    monkeypatch.setenv("LOOM_FEAST_REDIS", redis_server)
    yield registry


def datalake(tmp_path: Path, tables: tuple[str, ...] = (USER_FEATURES,)) -> dict[str, Any]:
    """A DataLake manifest whose tables all have the columns of MovieLens user features."""
    return {"apiVersion": "loom.dev/v1alpha1", "kind": "DataLake", "metadata": {"name": "movielens"},
            "spec": {"catalog": {"type": "sql", "uri": f"sqlite:///{tmp_path / 'lake' / 'catalog.db'}",
                                 "warehouse": f"file://{tmp_path / 'lake' / 'warehouse'}"},
                     "namespace": LAKE_NAMESPACE,
                     "tables": [{"name": t, "columns": USER_FEATURE_COLUMNS} for t in tables]}}


def lake_properties(lake: dict[str, Any]) -> dict[str, str]:
    return {"type": "sql", **{k: lake["spec"]["catalog"][k] for k in ("uri", "warehouse")}}


def featureset(name: str = "user-features", table: str = USER_FEATURES, **spec: Any) -> dict[str, Any]:
    source = {**USER_FEATURE_SPEC["source"], "dataLakeRef": {"name": "movielens", "table": table}}
    return {"apiVersion": "loom.dev/v1alpha1", "kind": "FeatureSet", "metadata": {"name": name},
            "spec": {**USER_FEATURE_SPEC, "source": source, "online": {"store": "redis"}, **spec}}


def conditions(obj: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in obj.get("status", {}).get("conditions", [])}


def lake_snapshot(kc: Kubectl, table: str = USER_FEATURES) -> int | None:
    tables = kc.get("datalake", "movielens").get("status", {}).get("tables", [])
    return next((t.get("currentSnapshotId") for t in tables if t["name"] == table), None)


def append(kc: Kubectl, props: dict[str, str], data: pa.Table, nudge: str, table: str = USER_FEATURES) -> int:
    """Append `data` to the lake table and wait until the DataLake reports the new snapshot."""
    lake_table = open_catalog("default", props).load_table((LAKE_NAMESPACE, table))
    lake_table.append(data)
    snapshot = lake_table.current_snapshot().snapshot_id
    kc.run("annotate", "--overwrite", "datalake", "movielens", f"test.loom.dev/nudge={nudge}")
    eventually(lambda: lake_snapshot(kc, table) == snapshot, timeout=60, what="the DataLake to report the snapshot")
    return snapshot


def wait_lake_ready(kc: Kubectl) -> None:
    eventually(lambda: conditions(kc.get("datalake", "movielens")).get("Ready", ("",))[0] == "True", timeout=60,
               what="DataLake Ready")
