"""FeatureSets through the real kube-apiserver and the operator: a DataLake (the real DataLake
service creates the Iceberg table) whose table receives MovieLens user features, a FeatureSet over
it that reaches Materialized with values readable online, follows a new lake snapshot, is stopped
by its quality gate, holds still while suspended, and on deletion leaves Feast while the lake table
stays as it was.

Rows are appended to the lake table with pyiceberg (standing in for an ingest); an annotation nudges
the DataLake to report the new snapshot at once instead of at its next periodic resync."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from loom.domain.feature_views import feast_project
from loom.drivers import feast_store
from loom.drivers.feast_store import OnlineKind, StoreSettings
from loom.drivers.iceberg_catalog import open_catalog
from tests.integration.conftest import Kubectl, Operator, condition, eventually
from tests.integration.features.conftest import USER_FEATURE_SPEC

FEATURES = ["ratingCount", "meanRating", "favoriteGenre"]


@pytest.fixture
def feast_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_server: str) -> Iterator[str]:
    """The operator's Feast defaults, set before the operator starts (which runs workloads locally)."""
    registry = f"sqlite:///{tmp_path / 'feast' / 'registry.db'}"
    monkeypatch.setenv("LOOM_FEAST_REGISTRY", registry)
    monkeypatch.setenv("LOOM_FEAST_REDIS", redis_server)
    yield registry


def datalake(tmp_path: Path) -> dict[str, Any]:
    columns = [{"name": "userId", "type": "long", "required": True}, {"name": "ratingCount", "type": "long"},
               {"name": "meanRating", "type": "double"}, {"name": "favoriteGenre", "type": "string"},
               {"name": "eventTimestamp", "type": "timestamptz", "required": True}]
    return {"apiVersion": "loom.dev/v1alpha1", "kind": "DataLake", "metadata": {"name": "movielens"},
            "spec": {"catalog": {"type": "sql", "uri": f"sqlite:///{tmp_path / 'lake' / 'catalog.db'}",
                                 "warehouse": f"file://{tmp_path / 'lake' / 'warehouse'}"},
                     "namespace": "movielens", "tables": [{"name": "user_features", "columns": columns}]}}


def featureset(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "loom.dev/v1alpha1", "kind": "FeatureSet", "metadata": {"name": "user-features"},
            "spec": {**USER_FEATURE_SPEC, "online": {"store": "redis"}, **spec}}


def lake_snapshot(kc: Kubectl) -> int | None:
    tables = kc.get("datalake", "movielens").get("status", {}).get("tables", [])
    return next((t.get("currentSnapshotId") for t in tables if t["name"] == "user_features"), None)


def append(kc: Kubectl, props: dict[str, str], data: pa.Table, nudge: str) -> int:
    table = open_catalog("default", props).load_table(("movielens", "user_features"))
    table.append(data)
    snapshot = table.current_snapshot().snapshot_id
    kc.run("annotate", "--overwrite", "datalake", "movielens", f"test.loom.dev/nudge={nudge}")
    eventually(lambda: lake_snapshot(kc) == snapshot, timeout=60, what="the DataLake to report the snapshot")
    return snapshot


def conditions(obj: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in obj.get("status", {}).get("conditions", [])}


def online(settings: StoreSettings, users: list[int]) -> dict[str, list]:
    return feast_store.open_store(settings).get_online_features(
        features=[f"user_features:{f}" for f in FEATURES], entity_rows=[{"userId": u} for u in users]
    ).to_dict()


def expected(batch: pa.Table, users: list[int]) -> dict[str, list]:
    rows = {r["userId"]: r for r in batch.to_pylist()}
    return {"userId": users, **{f: [rows[u][f] for u in users] for f in FEATURES}}


def test_featureset_materializes_follows_the_lake_and_leaves_feast_on_delete(
    feast_env: str, kc: Kubectl, namespace: str, operator: Operator, movielens: list[pa.Table],
    redis_server: str, tmp_path: Path,
) -> None:
    lake = datalake(tmp_path)
    props = {"type": "sql", **{k: lake["spec"]["catalog"][k] for k in ("uri", "warehouse")}}
    kc.apply(lake)
    eventually(lambda: conditions(kc.get("datalake", "movielens")).get("Ready", ("",))[0] == "True", timeout=60,
               what="DataLake Ready")
    kc.apply(featureset(quality={"minRows": 100, "features": [{"name": "meanRating", "maxNullFraction": 0.01}]}))
    waiting = eventually(lambda: conditions(kc.get("featureset", "user-features")).get("Ready", ("", ""))[1]
                         == "NoSnapshot" and kc.get("featureset", "user-features"), timeout=60)
    assert "holds no data yet" in condition(waiting, "Ready")["message"]

    first, second = movielens
    s1 = append(kc, props, first, "1")

    def materialized(snapshot: int) -> dict[str, Any]:
        obj = kc.get("featureset", "user-features")
        assert obj.get("status", {}).get("sourceSnapshotId") == snapshot, obj.get("status")
        assert conditions(obj)["Materialized"] == ("True", "Materialized"), obj["status"]
        return obj

    obj = eventually(lambda: materialized(s1), timeout=180, what="the first materialization")
    status = obj["status"]
    assert conditions(obj) == {"SourceReady": ("True", "SnapshotAvailable"), "RegistryReady": ("True", "Applied"),
                               "DataQuality": ("True", "Passed"), "Materialized": ("True", "Materialized"),
                               "Ready": ("True", "Ready")}
    assert status["lastMaterialized"]["rows"] == status["onlineRowCount"] == first.num_rows
    assert status["lastMaterialized"]["snapshotId"] == s1
    assert status["lastMaterialized"]["featureViewVersion"] == status["featureViewVersion"]
    settings = StoreSettings(feast_project(namespace), feast_env, OnlineKind.REDIS, redis_server)
    users = sorted(first["userId"].to_pylist())[:5]
    assert online(settings, users) == expected(first, users)
    printed = kc.run("get", "featureset", "user-features").stdout
    assert "ONLINE ROWS" in printed and f" {first.num_rows} " in printed

    # A new snapshot is noticed and materialized incrementally.
    s2 = append(kc, props, second, "2")
    eventually(lambda: materialized(s2), timeout=180, what="the new snapshot to be materialized")
    assert online(settings, users) == expected(second, users)

    # A snapshot the quality gate refuses: DataQuality=False with the numbers, a Warning, nothing online.
    broken = second.set_column(3, second.schema.field("favoriteGenre"), second["favoriteGenre"])
    broken = broken.set_column(2, broken.schema.field("meanRating"), pa.nulls(broken.num_rows, pa.float64()))
    s3 = append(kc, props, broken, "3")

    def refused() -> dict[str, Any]:
        obj = kc.get("featureset", "user-features")
        assert conditions(obj).get("DataQuality") == ("False", "QualityCheckFailed"), obj.get("status")
        return obj

    obj = eventually(refused, timeout=180, what="the quality gate to refuse the snapshot")
    message = condition(obj, "DataQuality")["message"]
    assert f"snapshot {s3}" in message and "maxNullFraction meanRating" in message and "(expected <= 0.01)" in message
    assert obj["status"]["sourceSnapshotId"] == s2 and condition(obj, "Ready")["status"] == "False"
    assert online(settings, users) == expected(second, users)
    events = json.loads(kc.run("get", "events", "--field-selector", "involvedObject.name=user-features",
                               "-o", "json").stdout)["items"]
    assert any(e["type"] == "Warning" and e["reason"] == "QualityCheckFailed" for e in events)

    # Suspended: a new snapshot is left alone; the online store keeps serving what it had.
    suspend = {"spec": {"materialization": {"suspend": True}}}
    kc.run("patch", "featureset", "user-features", "--type=merge", "-p", json.dumps(suspend))
    s4 = append(kc, props, second, "4")
    kc.run("annotate", "--overwrite", "featureset", "user-features", "test.loom.dev/nudge=4")

    def suspended() -> dict[str, Any]:
        obj = kc.get("featureset", "user-features")
        assert conditions(obj).get("Materialized") == ("True", "Suspended"), obj.get("status")
        return obj

    obj = eventually(suspended, timeout=60, what="the FeatureSet to report the suspension")
    message = condition(obj, "Materialized")["message"]
    assert f"the lake is at snapshot {s4}, the online store serves snapshot {s2}" in message
    assert obj["status"]["sourceSnapshotId"] == s2

    # Deletion: the feature view and its online keys go, the lake table stays exactly as it was.
    table = open_catalog("default", props).load_table(("movielens", "user_features"))
    kc.run("delete", "featureset", "user-features", "--wait=true", "--timeout=120s")
    assert feast_store.online_row_count(settings, _definition_stub(settings)) == 0
    store = feast_store.open_store(settings)
    assert feast_store.get_view(store, "user_features") is None
    after = open_catalog("default", props).load_table(("movielens", "user_features"))
    assert after.metadata_location == table.metadata_location and after.current_snapshot().snapshot_id == s4
    assert after.scan().count() == first.num_rows + 2 * second.num_rows + broken.num_rows


def _definition_stub(settings: StoreSettings) -> Any:
    """What online_row_count reads of a definition: the view name and its join keys."""
    from types import SimpleNamespace

    return SimpleNamespace(name="user_features", join_keys=["userId"])


def test_online_connection_from_a_secret(
    feast_env: str, kc: Kubectl, namespace: str, operator: Operator, movielens: list[pa.Table],
    redis_server: str, tmp_path: Path,
) -> None:
    """The Redis connection lives in a Secret: the workload gets it as an environment variable (never
    in its arguments), the finalizer reads it to remove the online keys."""
    kc.run("create", "secret", "generic", "feature-store", f"--from-literal=connection={redis_server}")
    lake = datalake(tmp_path)
    props = {"type": "sql", **{k: lake["spec"]["catalog"][k] for k in ("uri", "warehouse")}}
    kc.apply(lake)
    eventually(lambda: conditions(kc.get("datalake", "movielens")).get("Ready", ("",))[0] == "True", timeout=60,
               what="DataLake Ready")
    s1 = append(kc, props, movielens[0], "1")
    kc.apply(featureset(online={"store": "redis", "connectionSecretRef": {"name": "feature-store"}}))

    def materialized() -> dict[str, Any]:
        obj = kc.get("featureset", "user-features")
        assert conditions(obj).get("Ready") == ("True", "Ready"), obj.get("status")
        return obj

    assert eventually(materialized, timeout=180, what="Ready")["status"]["sourceSnapshotId"] == s1
    settings = StoreSettings(feast_project(namespace), feast_env, OnlineKind.REDIS, redis_server)
    assert feast_store.online_row_count(settings, _definition_stub(settings)) == movielens[0].num_rows
    runs = list((operator.config.state_dir / "runs" / namespace).iterdir())
    assert runs and all(redis_server not in (run / "run.json").read_text() for run in runs)

    kc.run("delete", "featureset", "user-features", "--wait=true", "--timeout=120s")
    assert feast_store.online_row_count(settings, _definition_stub(settings)) == 0
