"""The serving builders: Seldon Core 2 (Server, Models, Experiment) and KServe (ServingRuntime,
InferenceService with canary[]) for a stable revision alone, a canary at a step, a canary with a
mirror, and a GPU profile, against golden YAML (LOOM_UPDATE_GOLDEN=1 rewrites the files after an
intended change; review the diff). tests/integration/test_serving_manifests.py applies every file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from loom.api.inferenceservice import Revision
from loom.builders import serving as builder
from loom.builders.training import node_shape
from loom.domain.materialization import ONLINE_CONNECTION_ENV
from loom.domain.rollout import Split
from loom.domain.serving import Serving, ServingManifests
from loom.domain.workloads import OwnerRef, SecretEnv
from loom.gpuprofiles import load_profiles

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden" / "serving"
PROFILES = load_profiles(ROOT / "gpu-profiles")
OWNER = OwnerRef("loom.dev/v1alpha1", "InferenceService", "recommender", "6f1c2a3e-0000-4000-8000-000000000004")
IMAGE = "registry.example.com/loom/serve:0.1.0"
STABLE = Revision(name="recommender-v3", model_name="recommender", model_version="3",
                  model_uri="s3://mlflow/artifacts/1/models/m-3a9f/artifacts")
CANARY = Revision(name="recommender-v4", model_name="recommender", model_version="4",
                  model_uri="s3://mlflow/artifacts/1/models/m-7c1e/artifacts")
ONLINE = {"connection": "redis.ml:6379", "project": "movielens", "view": "user_features",
          "joinKeys": {"userId": "INT64"}}
TARGETS: dict[str, Callable[[Serving], ServingManifests]] = {"seldon": builder.seldon, "kserve": builder.kserve}


def service(split: Split, **kw: Any) -> Serving:
    """The sample InferenceService as the service would lay it out: 2 replicas scaling 1..4."""
    settings: dict[str, Any] = {
        "name": "recommender", "namespace": "ml", "image": IMAGE, "stable": STABLE, "split": split,
        "owner": OWNER, "replicas": 2, "min_replicas": 1, "max_replicas": 4,
        "node": node_shape(None, "1", "2Gi"), "model_memory": "600Mi", "extra": {"k": 20, "onlineFeatures": ONLINE},
    }
    settings.update(kw)
    return Serving(**settings)


CASES: dict[str, Serving] = {
    "stable": service(Split(STABLE.name)),
    "canary": service(Split(STABLE.name, CANARY.name, canary_weight=20), canary=CANARY),
    # a shadow phase: the canary answers mirrored requests only
    "mirror": service(Split(STABLE.name, CANARY.name, canary_weight=0, mirror=50), canary=CANARY),
    "gpu-profile": service(Split(STABLE.name, CANARY.name, canary_weight=30), canary=CANARY,
                           node=node_shape(PROFILES["nvidia-l4"], None, None), min_replicas=None,
                           max_replicas=None, model_memory=None),
    # the FeatureSet's online connection held in a Secret: a secretKeyRef on the server, never the value
    "online-secret": service(Split(STABLE.name), secret_env=(SecretEnv(ONLINE_CONNECTION_ENV, "redis", "url"),),
                             extra={"k": 20, "onlineFeatures": {**{k: v for k, v in ONLINE.items() if k != "connection"},
                                                                "connectionEnv": ONLINE_CONNECTION_ENV}}),
}


def golden_name(target: str, case: str) -> str:
    return f"{target}-{case}.yaml"


def _golden(name: str, manifests: ServingManifests) -> None:
    path = GOLDEN / name
    text = yaml.safe_dump_all(manifests.manifests, sort_keys=False)
    if os.environ.get("LOOM_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from the builder's output (LOOM_UPDATE_GOLDEN=1 to accept)"


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_golden(target: str, case: str) -> None:
    _golden(golden_name(target, case), TARGETS[target](CASES[case]))


def test_golden_files_cover_exactly_the_cases() -> None:
    assert {p.name for p in GOLDEN.glob("*.yaml")} == {golden_name(t, c) for t in TARGETS for c in CASES}


def _kinds(manifests: ServingManifests) -> list[tuple[str, str]]:
    return [(m["kind"], m["metadata"]["name"]) for m in manifests.manifests]


def test_seldon_has_an_experiment_named_after_the_service_with_or_without_a_canary() -> None:
    """The Experiment is the endpoint clients call (`recommender.experiment`), across promotions."""
    assert _kinds(builder.seldon(CASES["stable"])) == [
        ("Server", "recommender"), ("Model", "recommender-v3"), ("Experiment", "recommender")]
    assert builder.seldon(CASES["stable"]).manifests[-1]["spec"] == {
        "candidates": [{"name": "recommender-v3", "weight": 100}]}
    assert _kinds(builder.seldon(CASES["canary"])) == [
        ("Server", "recommender"), ("Model", "recommender-v3"), ("Model", "recommender-v4"),
        ("Experiment", "recommender")]


def _experiment(split: Split) -> dict[str, Any]:
    *_, experiment = builder.seldon(service(split, canary=CANARY)).manifests
    spec: dict[str, Any] = experiment["spec"]
    return spec


def test_seldon_candidates_carry_the_split() -> None:
    assert _experiment(Split(STABLE.name, CANARY.name, canary_weight=20)) == {
        "candidates": [{"name": "recommender-v3", "weight": 80}, {"name": "recommender-v4", "weight": 20}],
    }
    # the stable stays a candidate, as Seldon requires one, even with no traffic left
    assert _experiment(Split(STABLE.name, CANARY.name, canary_weight=100))["candidates"] == [
        {"name": "recommender-v3", "weight": 0}, {"name": "recommender-v4", "weight": 100}]


def test_seldon_mirrors_only_to_a_canary_that_is_no_candidate() -> None:
    assert _experiment(Split(STABLE.name, CANARY.name, canary_weight=0, mirror=50)) == {
        "candidates": [{"name": "recommender-v3", "weight": 100}],
        "mirror": {"name": "recommender-v4", "percent": 50},
    }
    both = service(Split(STABLE.name, CANARY.name, canary_weight=10, mirror=50), canary=CANARY)
    manifests = builder.seldon(both)
    assert "mirror" not in manifests.manifests[-1]["spec"]
    (warning,) = manifests.warnings
    assert "50%" in warning and "recommender-v4" in warning
    assert builder.seldon(CASES["mirror"]).warnings == ()


def test_seldon_model_parameters_are_strings_for_the_agent() -> None:
    model = builder.seldon(CASES["stable"]).manifests[1]
    assert model["spec"]["parameters"] == [
        {"name": "k", "value": "20"},
        {"name": "onlineFeatures", "value": '{"connection": "redis.ml:6379", "joinKeys": {"userId": "INT64"}, '
                                            '"project": "movielens", "view": "user_features"}'},
    ]
    assert "parameters" not in builder.seldon(service(Split(STABLE.name), extra={})).manifests[1]["spec"]


def test_kserve_reports_the_mirror_it_cannot_do() -> None:
    assert builder.kserve(CASES["canary"]).warnings == ()
    (warning,) = builder.kserve(CASES["mirror"]).warnings
    assert "50%" in warning and "recommender-v4" in warning


def test_kserve_canary_keeps_fixed_replicas_within_the_stable_minimum() -> None:
    isvc = builder.kserve(CASES["canary"]).manifests[1]
    (canary,) = isvc["spec"]["canary"]
    assert canary["trafficPercent"] == 20
    assert (canary["predictor"]["name"], canary["predictor"]["minReplicas"]) == ("recommender-v4", 1)
    assert "maxReplicas" not in canary["predictor"]
    assert (isvc["spec"]["predictor"]["minReplicas"], isvc["spec"]["predictor"]["maxReplicas"]) == (1, 4)
    assert isvc["metadata"]["annotations"] == {"serving.kserve.io/deploymentMode": "Standard"}
    # One URL path, split between the revisions: both serve under the InferenceService's name.
    names = {e["value"] for p in (isvc["spec"]["predictor"], canary["predictor"]) for e in p["model"]["env"]
             if e["name"] == "MLSERVER_MODEL_NAME"}
    assert names == {"recommender"}


def test_the_split_must_name_the_revisions() -> None:
    with pytest.raises(ValueError, match="split names stable"):
        service(Split("recommender-v2"))
    with pytest.raises(ValueError, match="split names canary"):
        service(Split(STABLE.name, "recommender-v5", canary_weight=10), canary=CANARY)
    with pytest.raises(ValueError, match="split names canary"):
        service(Split(STABLE.name, CANARY.name, canary_weight=10))
    with pytest.raises(ValueError, match="both"):
        service(Split(STABLE.name, STABLE.name), canary=CANARY.model_copy(update={"name": STABLE.name}))


def test_a_gpu_profile_shapes_every_replica() -> None:
    profile = PROFILES["nvidia-l4"]
    node = node_shape(profile, None, None)
    server, *_ = builder.seldon(CASES["gpu-profile"]).manifests
    pod = server["spec"]["podSpec"]
    assert pod["containers"][0]["resources"] == {"requests": dict(node.requests), "limits": dict(node.limits)}
    assert pod["nodeSelector"] == dict(profile.node_selector)
    assert pod["tolerations"] == [t.to_wire() for t in node.tolerations]
    predictor = builder.kserve(CASES["gpu-profile"]).manifests[1]["spec"]["predictor"]
    assert predictor["model"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert predictor["nodeSelector"] == dict(profile.node_selector)


def test_a_seldon_server_limits_memory_to_its_request() -> None:
    """Seldon merges the container into its stock one, whose own memory limit would stay below the request."""
    server, *_ = builder.seldon(CASES["stable"]).manifests
    (container,) = server["spec"]["podSpec"]["containers"]
    assert container["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "2Gi"}}
    assert container["command"] == ["mlserver", "start", "$(MLSERVER_MODELS_DIR)"]
