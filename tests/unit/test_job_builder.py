"""The DataLake's workload builders (ingest, maintenance) and the Job and CronJob manifests of their
workloads, against golden YAML (LOOM_UPDATE_GOLDEN=1 rewrites the files after an intended change;
review the diff)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from loom.api.datalake import DataLakeSpec
from loom.builders import ingest, maintenance
from loom.builders import job as builder
from loom.builders.lake_access import LakeRef
from loom.domain.workloads import MAX_SCHEDULED_NAME, OwnerRef, Workload, dns_name
from loom.drivers.iceberg_catalog import catalog_properties

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
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "datalake.yaml"


def lake(spec: DataLakeSpec, secret_keys: tuple[str, ...] = SECRET_KEYS) -> LakeRef:
    return LakeRef("ml", OWNER, catalog_properties(spec.catalog, {}), secret_keys)


def _workload(name: str) -> Workload:
    entry = next(i for i in SPEC.ingest if i.name == name)
    return ingest.workload(SPEC, entry, lake(SPEC))


def sample(**maintenance: object) -> DataLakeSpec:
    raw = yaml.safe_load(SAMPLE.read_text())["spec"]
    raw["maintenance"].update(maintenance)
    return DataLakeSpec.model_validate(raw)


def _golden(name: str, manifest: dict[str, Any]) -> None:
    path = GOLDEN / name
    text = yaml.safe_dump(manifest, sort_keys=False)
    if os.environ.get("LOOM_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from the builder's output (LOOM_UPDATE_GOLDEN=1 to accept)"


def test_once_ingest_is_a_job() -> None:
    _golden("ingest-job.yaml", builder.job(_workload("movies"), IMAGE))


def test_the_catalog_properties_are_a_config_map_mounted_into_the_pod() -> None:
    work = _workload("movies")
    _golden("ingest-configmap.yaml", builder.config_map(work))
    pod = builder.job(work, IMAGE)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["volumes"] == [{"name": "workload-files", "configMap": {"name": work.name}}]
    assert container["volumeMounts"] == [{"name": "workload-files", "mountPath": builder.FILES_DIR, "readOnly": True}]
    assert {"name": "LOOM_WORKLOAD_FILES", "value": builder.FILES_DIR} in container["env"]
    assert container["args"][:2] == ["--catalog-properties-file", "catalog.json"]


def test_a_workload_without_files_mounts_nothing() -> None:
    pod = builder.job(Workload("plain", "ns", "ingest", args=("--x",)), IMAGE)["spec"]["template"]["spec"]
    assert "volumes" not in pod and "volumeMounts" not in pod["containers"][0] and "env" not in pod["containers"][0]


def test_workload_files_have_plain_names() -> None:
    Workload("w", "ns", "ingest", files={"catalog.json": "{}", "a_b-C.1": ""})
    for name in ("a/b", "..", ".", "..hidden", "", "x\n", "x" * 254):
        with pytest.raises(ValueError, match="plain file name"):
            Workload("w", "ns", "ingest", files={name: ""})


def test_large_properties_stay_out_of_argv_and_env() -> None:
    spec = SPEC.model_copy(update={"catalog": SPEC.catalog.model_copy(update={
        "properties": {f"p{i}": "v" * 4096 for i in range(32)}})})
    work = ingest.workload(spec, spec.ingest[0], lake(spec))
    assert len(work.files["catalog.json"]) > 128 * 1024
    manifest = builder.job(work, IMAGE)
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert max(len(v) for v in [*container["args"], *(e.get("value", "") for e in container["env"])]) < 1024
    assert builder.config_map(work)["data"] == work.files


def test_scheduled_ingest_is_a_cronjob() -> None:
    _golden("ingest-cronjob.yaml", builder.cronjob(_workload("ratings-batches"), IMAGE))


def test_maintenance_is_a_cronjob_per_action() -> None:
    work = maintenance.workloads(SPEC.model_copy(update={"maintenance": sample().maintenance}), lake(SPEC))
    _golden("maintain-expire-cronjob.yaml", builder.cronjob(work["expire"], IMAGE))
    _golden("maintain-compact-cronjob.yaml", builder.cronjob(work["compact"], IMAGE))


def test_workloads_carry_the_owner_label() -> None:
    for work in (_workload("movies"), *maintenance.workloads(sample(), lake(sample())).values()):
        assert work.labels == {"loom.dev/datalake": "movielens"} and work.owner == OWNER


def test_secret_values_are_references_only() -> None:
    manifest = builder.cronjob(_workload("ratings-batches"), IMAGE)
    env = manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]
    by_name = {e["name"]: e for e in env}
    refs = {e["valueFrom"]["secretKeyRef"]["key"] for e in env if "valueFrom" in e}
    assert refs == set(SECRET_KEYS)
    assert all("value" not in e for e in env if "valueFrom" in e)
    assert set(by_name) == {"LOOM_WORKLOAD_FILES", "LOOM_CATALOG_SECRET_0", "LOOM_CATALOG_SECRET_1"}
    # the plain catalog properties carry no credential key at all
    assert "secret-access-key" not in _workload("ratings-batches").files["catalog.json"]


def test_workload_name_changes_with_what_it_runs() -> None:
    first = _workload("movies")
    changed = SPEC.model_copy(update={"ingest": [SPEC.ingest[0].model_copy(update={"mode": "append"}), SPEC.ingest[1]]})
    second = ingest.workload(changed, changed.ingest[0], lake(changed))
    assert first.name != second.name
    assert first.name == _workload("movies").name  # deterministic
    other_catalog = SPEC.model_copy(update={"catalog": SPEC.catalog.model_copy(update={"properties": {"s3.region": "x"}})})
    assert ingest.workload(other_catalog, other_catalog.ingest[0], lake(other_catalog)).name != first.name
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


def test_one_maintenance_workload_per_action_over_all_tables() -> None:
    work = maintenance.workloads(sample(), lake(sample(), ()))
    assert set(work) == {"expire", "compact"}
    expire, compact = work["expire"], work["compact"]
    assert expire.component == compact.component == "maintain"
    assert expire.args[-5:] == ("expire", "--older-than", "72h", "--retain-last", "10")
    assert compact.args[-5:] == ("compact", "--engine", "pyiceberg", "--target-file-size-bytes", "134217728")
    tables = [expire.args[i + 1] for i, a in enumerate(expire.args) if a == "--table"]
    assert tables == ["movielens.ratings", "movielens.movies", "movielens.user_features"]
    assert expire.schedule == "@daily" and expire.owner == OWNER
    assert '"uri": "sqlite:////var/tmp/loom/movielens/catalog.db"' in expire.files["catalog.json"]
    assert not expire.env


def test_changed_maintenance_settings_make_a_new_workload() -> None:
    before = maintenance.workloads(sample(), lake(sample(), ()))["expire"].name
    changed = sample(expireSnapshots={"retainLast": 3})
    after = maintenance.workloads(changed, lake(changed, ()))["expire"].name
    assert before != after and before.startswith("movielens-expire-")


def test_maintenance_credentials_come_from_the_secret_by_env_var_only() -> None:
    raw = yaml.safe_load(SAMPLE.read_text())["spec"]
    raw["catalog"]["secretRef"] = {"name": "lake-credentials"}
    spec = DataLakeSpec.model_validate(raw)
    work = maintenance.workloads(spec, lake(spec, ("password",)))["compact"]
    assert [(s.secret, s.key) for s in work.secret_env] == [("lake-credentials", "password")]
    assert "--secret-property" in work.args
    assert "password=" + work.secret_env[0].name in work.args


def test_no_maintenance_no_workloads() -> None:
    raw = yaml.safe_load(SAMPLE.read_text())["spec"]
    raw.pop("maintenance")
    spec = DataLakeSpec.model_validate(raw)
    assert maintenance.workloads(spec, lake(spec)) == {}
