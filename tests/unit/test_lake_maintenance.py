"""Maintenance workloads follow the spec: one scheduled run per action over every declared table, the
catalog reached through env vars, and a new workload (name) whenever what it runs changes."""

from __future__ import annotations

from pathlib import Path

import yaml

from loom.api.datalake import DataLakeSpec
from loom.domain.workloads import OwnerRef
from loom.services.lake_maintenance import workloads

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "datalake.yaml"
OWNER = OwnerRef("loom.dev/v1alpha1", "DataLake", "movielens", "uid-1")


def spec(**maintenance: object) -> DataLakeSpec:
    raw = yaml.safe_load(SAMPLE.read_text())["spec"]
    raw["maintenance"].update(maintenance)
    return DataLakeSpec.model_validate(raw)


def test_one_workload_per_action_over_all_tables() -> None:
    work = workloads(spec(), "ml", "movielens", OWNER, ())
    assert set(work) == {"expire", "compact"}
    expire, compact = work["expire"], work["compact"]
    assert expire.component == compact.component == "maintain"
    assert expire.args[-5:] == ("expire", "--older-than", "72h", "--retain-last", "10")
    assert compact.args[-5:] == ("compact", "--engine", "pyiceberg", "--target-file-size-bytes", "134217728")
    tables = [expire.args[i + 1] for i, a in enumerate(expire.args) if a == "--table"]
    assert tables == ["movielens.ratings", "movielens.movies", "movielens.user_features"]
    assert expire.schedule == "@daily" and expire.owner == OWNER
    assert '"uri": "sqlite:////var/tmp/loom/movielens/catalog.db"' in expire.env["LOOM_CATALOG_PROPERTIES"]


def test_changed_settings_make_a_new_workload() -> None:
    before = workloads(spec(), "ml", "movielens", OWNER, ())["expire"].name
    after = workloads(spec(expireSnapshots={"retainLast": 3}), "ml", "movielens", OWNER, ())["expire"].name
    assert before != after and before.startswith("movielens-expire-")


def test_credentials_come_from_the_secret_by_env_var_only() -> None:
    raw = yaml.safe_load(SAMPLE.read_text())["spec"]
    raw["catalog"]["secretRef"] = {"name": "lake-credentials"}
    work = workloads(DataLakeSpec.model_validate(raw), "ml", "movielens", OWNER, ("password",))["compact"]
    assert [(s.secret, s.key) for s in work.secret_env] == [("lake-credentials", "password")]
    assert "--secret-property" in work.args
    assert "password=" + work.secret_env[0].name in work.args


def test_no_maintenance_no_workloads() -> None:
    raw = yaml.safe_load(SAMPLE.read_text())["spec"]
    raw.pop("maintenance")
    assert workloads(DataLakeSpec.model_validate(raw), "ml", "movielens", OWNER, ()) == {}
