"""Job and CronJob manifests of ingest workloads, against golden YAML (LOOM_UPDATE_GOLDEN=1 rewrites
the files after an intended change; review the diff)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from loom.api.datalake import DataLakeSpec
from loom.builders import job as builder
from loom.domain.workloads import MAX_SCHEDULED_NAME, OwnerRef, Workload, dns_name
from loom.services import lake_ingest

GOLDEN = Path(__file__).parent / "golden"
OWNER = OwnerRef("loom.dev/v1alpha1", "DataLake", "movielens", "6f1c2a3e-0000-4000-8000-000000000001")
IMAGE = "registry.example.com/loom/main:0.1.0"
SPEC = DataLakeSpec.model_validate({
    "catalog": {
        "type": "sql",
        "uri": "postgresql+psycopg2://loom@postgres.lake:5432/catalog",
        "warehouse": "s3://lake/warehouse",
        "properties": {"s3.endpoint": "http://minio.lake:9000"},
        "secretRef": {"name": "lake-credentials"},
    },
    "namespace": "movielens",
    "tables": [
        {"name": "ratings", "columns": [{"name": "userId", "type": "long", "required": True}]},
        {"name": "movies", "columns": [{"name": "movieId", "type": "long", "required": True}]},
    ],
    "ingest": [
        {"name": "movies", "table": "movies", "mode": "overwrite",
         "source": {"format": "parquet", "uri": "s3://lake/incoming/movies.parquet"}},
        {"name": "ratings-batches", "table": "ratings", "schedule": "*/5 * * * *",
         "source": {"format": "csv", "uri": "s3://lake/incoming/ratings/*.csv"}},
    ],
})
SECRET_KEYS = ("s3.secret-access-key", "s3.access-key-id")


def _workload(ingest: str) -> Workload:
    entry = next(i for i in SPEC.ingest if i.name == ingest)
    return lake_ingest.workload(SPEC, entry, "ml", "movielens", OWNER, SECRET_KEYS)


def _golden(name: str, manifest: dict[str, Any]) -> None:
    path = GOLDEN / name
    text = yaml.safe_dump(manifest, sort_keys=False)
    if os.environ.get("LOOM_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from the builder's output (LOOM_UPDATE_GOLDEN=1 to accept)"


def test_once_ingest_is_a_job() -> None:
    _golden("ingest-job.yaml", builder.job(_workload("movies"), IMAGE))


def test_scheduled_ingest_is_a_cronjob() -> None:
    _golden("ingest-cronjob.yaml", builder.cronjob(_workload("ratings-batches"), IMAGE))


def test_secret_values_are_references_only() -> None:
    manifest = builder.cronjob(_workload("ratings-batches"), IMAGE)
    env = manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]
    by_name = {e["name"]: e for e in env}
    refs = {e["valueFrom"]["secretKeyRef"]["key"] for e in env if "valueFrom" in e}
    assert refs == set(SECRET_KEYS)
    assert all("value" not in e for e in env if "valueFrom" in e)
    # the plain catalog properties carry no credential key at all
    assert "secret-access-key" not in by_name["LOOM_CATALOG_PROPERTIES"]["value"]


def test_workload_name_changes_with_what_it_runs() -> None:
    first = _workload("movies")
    changed = SPEC.model_copy(update={"ingest": [SPEC.ingest[0].model_copy(update={"mode": "append"}), SPEC.ingest[1]]})
    second = lake_ingest.workload(changed, changed.ingest[0], "ml", "movielens", OWNER, SECRET_KEYS)
    assert first.name != second.name
    assert first.name == _workload("movies").name  # deterministic
    assert first.name.startswith("movielens-ingest-movies-")


def test_kinds_are_not_mixed() -> None:
    with pytest.raises(ValueError, match="scheduled"):
        builder.job(_workload("ratings-batches"), IMAGE)
    with pytest.raises(ValueError, match="no schedule"):
        builder.cronjob(_workload("movies"), IMAGE)


def test_names_are_dns_labels_within_limits() -> None:
    long = dns_name("a-very-long-datalake-name-" * 4 + "-ingest-some-ingest", "0123abcd")
    assert len(long) <= MAX_SCHEDULED_NAME and long.endswith("-0123abcd")
    Workload(long, "ns", "ingest", schedule="@daily")
    with pytest.raises(ValueError, match="DNS label"):
        Workload("Not_A_Label", "ns", "ingest")
    with pytest.raises(ValueError, match="at most 52"):
        Workload("x" * 60, "ns", "ingest", schedule="@daily")
