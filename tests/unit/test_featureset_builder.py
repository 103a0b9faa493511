"""The materialization workload of a FeatureSet, against golden YAML (LOOM_UPDATE_GOLDEN=1 rewrites the
files after an intended change; review the diff)."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from loom.api.datalake import DataLakeSpec
from loom.api.featureset import FeatureSetSpec
from loom.builders import job
from loom.builders.materialize import LakeAccess, Target, featureset_label, run_name, workload
from loom.domain.materialization import MaterializeRequest
from loom.domain.workloads import MAX_NAME, OwnerRef, Workload
from loom.features import materialize
from loom.services.featureset import feature_view_definition

GOLDEN = Path(__file__).parent / "golden"
IMAGE = "registry.example.com/loom/main:0.1.0"
OWNER = OwnerRef("loom.dev/v1alpha1", "FeatureSet", "user-features", "6f1c2a3e-0000-4000-8000-000000000002")
REGISTRY = "postgresql://feast@postgres.ml:5432/registry"
SPEC = FeatureSetSpec.model_validate({
    "source": {"dataLakeRef": {"name": "movielens", "table": "user_features"}, "timestampField": "eventTimestamp"},
    "entities": [{"name": "user", "joinKeys": ["userId"]}],
    "features": [{"name": "ratingCount", "dtype": "Int64"}, {"name": "meanRating", "dtype": "Float64"}],
    "online": {"store": "redis", "connectionSecretRef": {"name": "feature-store"}},
    "quality": {"minRows": 100},
})
LAKE = DataLakeSpec.model_validate({
    "catalog": {"type": "sql", "uri": "postgresql+psycopg2://loom@postgres.lake:5432/catalog",
                "warehouse": "s3://lake/warehouse", "properties": {"s3.endpoint": "http://minio.lake:9000"},
                "secretRef": {"name": "lake-credentials"}},
    "namespace": "movielens",
    "tables": [{"name": "user_features", "columns": [{"name": "userId", "type": "long"}]}],
})
DEFINITION = feature_view_definition(SPEC, LAKE, "ml", "user-features", REGISTRY)
STORE = {"project": "loom_ml", "registry_uri": REGISTRY, "online_kind": "redis", "online_connection": ""}
ACCESS = LakeAccess("default", {"type": "sql", "uri": "postgresql+psycopg2://loom@postgres.lake:5432/catalog",
                                "warehouse": "s3://lake/warehouse", "s3.endpoint": "http://minio.lake:9000"},
                    "lake-credentials", ("s3.secret-access-key", "s3.access-key-id"))


def _workload(target: Target) -> Workload:
    return workload(SPEC, OWNER, "ml", DEFINITION, STORE, ACCESS, target)


def _golden(name: str, manifest: dict[str, Any]) -> None:
    path = GOLDEN / name
    text = yaml.safe_dump(manifest, sort_keys=False)
    if os.environ.get("LOOM_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from the builder's output (LOOM_UPDATE_GOLDEN=1 to accept)"


def test_an_incremental_run_is_a_job() -> None:
    _golden("materialize-job.yaml", job.job(_workload(Target(DEFINITION.version, 12, previous=11)), IMAGE))


def test_the_request_is_a_config_map() -> None:
    _golden("materialize-configmap.yaml", job.config_map(_workload(Target(DEFINITION.version, 12, previous=11))))


def test_labels_follow_the_one_scheme() -> None:
    labels = job.labels(_workload(Target(DEFINITION.version, 12)))
    assert labels["app.kubernetes.io/managed-by"] == "loom-operator"
    assert labels["app.kubernetes.io/component"] == "materialize"
    assert labels["loom.dev/featureset"] == "user-features"
    long = "f" * 200
    assert len(featureset_label(long)["loom.dev/featureset"]) <= 63
    assert featureset_label(long) != featureset_label("f" * 199)


def test_the_request_is_what_the_run_reads() -> None:
    w = _workload(Target(DEFINITION.version, 12, previous=11))
    assert w.args == ("--request", "@request.json")
    request = MaterializeRequest.model_validate_json(w.files["request.json"])
    assert request.feature_view() == DEFINITION
    assert (request.snapshot_id, request.previous_snapshot_id, request.lake_table) == (12, 11, "movielens.user_features")
    assert request.lake_secret_keys == ["s3.access-key-id", "s3.secret-access-key"]
    assert materialize.MaterializeRequest is MaterializeRequest  # the component parses the same model


def test_secret_values_are_references_only() -> None:
    w = _workload(Target(DEFINITION.version, 12))
    assert {(s.name, s.secret, s.key) for s in w.secret_env} == {
        ("PYICEBERG_CATALOG__LOOM_PINS__S3__ACCESS_KEY_ID", "lake-credentials", "s3.access-key-id"),
        ("PYICEBERG_CATALOG__LOOM_PINS__S3__SECRET_ACCESS_KEY", "lake-credentials", "s3.secret-access-key"),
        ("LOOM_FEAST_ONLINE_CONNECTION", "feature-store", "connection"),
    }
    assert not w.env


def test_the_name_changes_exactly_with_what_the_run_materializes() -> None:
    base = Target(DEFINITION.version, 12, previous=11)
    tick = datetime(2025, 1, 1, 12, tzinfo=timezone.utc)
    names = {run_name("user-features", t) for t in (
        base, Target(DEFINITION.version, 13, previous=11), Target(DEFINITION.version, 12),
        Target("0" * 16, 12, previous=11), Target(DEFINITION.version, 12, tick=tick),
        Target(DEFINITION.version, 12, previous=11, attempt=1), Target(DEFINITION.version, 12, previous=11, attempt=2),
    )}
    assert len(names) == 7
    assert run_name("user-features", base) == _workload(base).name
    assert _workload(base).name.startswith("user-features-materialize-")
    assert len(run_name("x" * 250, base)) <= MAX_NAME
