"""What a FeatureSet asks of Feast, computed without Feast: names, the version hash and the pinned
source. When to materialize is the decision's business (test_featureset_decide.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import yaml

from loom.api.datalake import DataLakeSpec
from loom.api.featureset import FeatureSetSpec
from loom.domain.feature_views import FeatureViewDefinition, feast_name, feast_project, pin_env_name
from loom.services.featureset import feature_view_definition

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
REGISTRY = "sqlite:////var/tmp/loom/feast/registry.db"


def sample(name: str) -> dict:
    return yaml.safe_load((SAMPLES / f"{name}.yaml").read_text())


def definition(**spec_changes: object) -> FeatureViewDefinition:
    doc = sample("featureset")["spec"]
    doc.update(spec_changes)
    lake = DataLakeSpec.model_validate(sample("datalake")["spec"])
    return feature_view_definition(FeatureSetSpec.model_validate(doc), lake, "ml-team", "user-features", REGISTRY)


def test_names_are_valid_for_every_online_store_and_cannot_collide() -> None:
    assert feast_project("ml-team") == "loom_ml_team"
    assert feast_name("user-features") == "user_features"
    assert pin_env_name("s3.access-key-id") == "PYICEBERG_CATALOG__LOOM_PINS__S3__ACCESS_KEY_ID"


def test_the_sample_translates_to_a_pinned_view() -> None:
    d = definition()
    assert (d.project, d.name, d.owner) == ("loom_ml_team", "user_features", "ml-team/user-features")
    assert [(e.name, e.join_key, e.value_type) for e in d.entities] == [("user", "userId", "INT64")]
    assert [(f.name, f.dtype) for f in d.features] == [
        ("ratingCount", "Int64"), ("meanRating", "Float64"), ("favoriteGenre", "String")]
    assert d.ttl_seconds == 3650 * 86400
    assert d.source.pin.identifier == ("loom_ml_team", "user_features")
    assert d.source.pin.catalog_uri == REGISTRY
    assert d.source.lake_table == "movielens.user_features"
    assert d.source.warehouse == "file:///var/tmp/loom/movielens/warehouse"
    assert d.source.timestamp_field == "eventTimestamp"
    assert d.tags() == {"loom.dev/featureset": "ml-team/user-features", "loom.dev/version": d.version,
                        "loom.dev/lake-table": "movielens.user_features"}


def test_version_is_stable_and_follows_only_the_definition() -> None:
    base = definition()
    assert definition().version == base.version and len(base.version) == 16
    assert FeatureViewDefinition.from_json(base.to_json()) == base
    more = sample("featureset")["spec"]["features"] + [{"name": "lastRating", "dtype": "Float32"}]
    assert definition(features=more).version != base.version
    assert definition(ttl="30d").version != base.version
    # the schedule, suspension and the quality gate decide when to materialize, not what the view is
    assert definition(materialization={"schedule": "@daily", "suspend": True}).version == base.version
    assert definition(quality={"minRows": 1}).version == base.version
    assert replace(base, online=False).version != base.version
