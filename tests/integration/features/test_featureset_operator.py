"""FeatureSets through the real kube-apiserver and the operator: a DataLake (the real DataLake
service creates the Iceberg table) whose table receives MovieLens user features, a FeatureSet over
it that reaches Materialized with values readable online, follows a new lake snapshot, is stopped
by its quality gate, holds still while suspended, and on deletion leaves Feast while the lake table
stays as it was. A FeatureSet that does not fit its table is refused before anything reaches Feast.

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
from tests.integration.conftest import Kubectl, Operator, condition, eventually, start_operator
from tests.integration.features.conftest import (
    append,
    conditions,
    datalake,
    featureset,
    lake_properties,
    wait_lake_ready,
)

FEATURES = ["ratingCount", "meanRating", "favoriteGenre"]


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
    props = lake_properties(lake)
    kc.apply(lake)
    wait_lake_ready(kc)
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
    props = lake_properties(lake)
    kc.apply(lake)
    wait_lake_ready(kc)
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


MISFITS = {
    # a String feature over a long column: Feast accepted it and the online store served strings
    "string-over-long": ({"features": [{"name": "ratingCount", "dtype": "String"}]},
                         "spec.features[0].dtype declares String but column ratingCount is long"),
    # a long event-time column: the run failed with pyarrow.lib.ArrowInvalid
    "long-event-time": ({"source": {"dataLakeRef": {"name": "movielens", "table": "user_features"},
                                    "timestampField": "ratingCount"}},
                        "spec.source.timestampField declares a timestamp (timestamp or timestamptz) but column "
                        "ratingCount is long"),
    # a missing created-timestamp column: written to the registry, then the run failed (Could not find column)
    "missing-created": ({"source": {"dataLakeRef": {"name": "movielens", "table": "user_features"},
                                    "timestampField": "eventTimestamp", "createdTimestampField": "createdAt"}},
                        "spec.source.createdTimestampField names column createdAt, which does not exist"),
}


def test_a_featureset_that_does_not_fit_its_table_is_refused_before_feast(
    feast_env: str, kc: Kubectl, namespace: str, operator: Operator, movielens: list[pa.Table],
    redis_server: str, tmp_path: Path,
) -> None:
    lake = datalake(tmp_path)
    kc.apply(lake)
    wait_lake_ready(kc)
    append(kc, lake_properties(lake), movielens[0], "1")
    for name, (spec, _) in MISFITS.items():
        kc.apply(featureset(name, **spec))

    def refused(name: str) -> dict[str, Any]:
        obj = kc.get("featureset", name)
        assert conditions(obj).get("RegistryReady") == ("False", "SchemaMismatch"), obj.get("status")
        return obj

    for name, (_, message) in MISFITS.items():
        obj = eventually(lambda: refused(name), timeout=60, what=f"{name} to be refused")
        ready = condition(obj, "Ready")
        assert ready["reason"] == "SchemaMismatch" and message in ready["message"], ready
        assert "(table movielens.user_features, schema 0); nothing was written to Feast" in ready["message"]

    # Reported once: another reconcile of the same spec posts no second Warning.
    kc.run("annotate", "--overwrite", "featureset", "string-over-long", "test.loom.dev/nudge=again")
    eventually(lambda: "again" in kc.get("featureset", "string-over-long")["metadata"]["annotations"]
               .get("loom.dev/last-handled-configuration", ""), timeout=30, what="the nudge to be handled")
    events = json.loads(kc.run("get", "events", "--field-selector", "involvedObject.name=string-over-long",
                               "-o", "json").stdout)["items"]
    assert sum(e.get("count", 1) for e in events if e["reason"] == "SchemaMismatch") == 1, events

    # Nothing reached Feast or Redis, and no run was started.
    settings = StoreSettings(feast_project(namespace), feast_env, OnlineKind.REDIS, redis_server)
    assert feast_store.open_store(settings).list_feature_views() == []
    client = feast_store.redis_client(settings)
    assert not [k for k in client.scan_iter(count=1000) if k.endswith(settings.project.encode())]
    assert not (operator.config.state_dir / "runs" / namespace).exists()

    # The user fixes the type: the next generation is applied and materialized.
    fixed = {"spec": {"features": [{"name": "ratingCount", "dtype": "Int64"}]}}
    kc.run("patch", "featureset", "string-over-long", "--type=merge", "-p", json.dumps(fixed))
    eventually(lambda: conditions(kc.get("featureset", "string-over-long")).get("Ready") == ("True", "Ready"),
               timeout=180, what="the fixed FeatureSet to be materialized")


@pytest.fixture
def patient_operator(feast_env: str, namespace: str) -> Iterator[Operator]:
    """The operator with a backoff long enough that a test sees the failure between two attempts."""
    op = start_operator(namespace, dependency_retry_seconds=20)
    with op.runner:
        yield op
    assert op.runner.exception is None, op.runner.output


def test_an_unreachable_online_store_is_retried_with_backoff_until_it_heals(
    feast_env: str, kc: Kubectl, namespace: str, patient_operator: Operator, movielens: list[pa.Table],
    redis_server: str, tmp_path: Path,
) -> None:
    """A run that fails on an unreachable Redis is recorded with its input and retried after a backoff
    (the operator's scheduler brings the FeatureSet back, no error is raised); once Redis is reachable
    the retry materializes."""
    kc.run("create", "secret", "generic", "feature-store", "--from-literal=connection=127.0.0.1:1")
    lake = datalake(tmp_path)
    kc.apply(lake)
    wait_lake_ready(kc)
    s1 = append(kc, lake_properties(lake), movielens[0], "1")
    kc.apply(featureset(online={"store": "redis", "connectionSecretRef": {"name": "feature-store"}}))

    def failed_transiently() -> dict[str, Any]:
        obj = kc.get("featureset", "user-features")
        failure = obj.get("status", {}).get("lastFailure")
        assert failure and failure["transient"] and failure["snapshotId"] == s1, obj.get("status")
        assert conditions(obj)["Materialized"] == ("False", "MaterializationFailed")
        return obj

    obj = eventually(failed_transiently, timeout=180, what="the failed run to be recorded")
    message = condition(obj, "Materialized")["message"]
    assert "ConnectionError" in message and "retrying at" in message, message
    assert obj["status"]["lastFailure"]["generation"] == obj["metadata"]["generation"]

    kc.run("patch", "secret", "feature-store", "-p", json.dumps({"stringData": {"connection": redis_server}}))

    def materialized() -> dict[str, Any]:
        obj = kc.get("featureset", "user-features")
        assert conditions(obj).get("Ready") == ("True", "Ready"), obj.get("status")
        return obj

    healed = eventually(materialized, timeout=240, what="a retry to materialize")
    assert healed["status"]["sourceSnapshotId"] == s1 and healed["status"]["lastFailure"]["attempts"] >= 1
    settings = StoreSettings(feast_project(namespace), feast_env, OnlineKind.REDIS, redis_server)
    assert feast_store.online_row_count(settings, _definition_stub(settings)) == movielens[0].num_rows
