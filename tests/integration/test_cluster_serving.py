"""The cluster serving backend against the real kube-apiserver with the minimal Seldon Core 2 and KServe
CRDs of tests/crds/: a stable revision, a canary with a split and a mirror, then a promotion leave
exactly the objects of the layout (the retired ones deleted); readiness is read from the status
conditions the tests write as Seldon's and KServe's controllers would; a target whose CRDs are not
installed is reported missing, naming the fix. The children belong to a real Loom InferenceService."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from loom.api.inferenceservice import Revision, Target
from loom.builders import serving as builder
from loom.builders.canary_queries import MetricSource
from loom.builders.labels import MANAGER
from loom.domain.rollout import Split
from loom.domain.serving import Serving
from loom.domain.workloads import OwnerRef
from loom.drivers.kube_http import ApiError, KubeHttp
from loom.services.inferenceservice.backend import Served
from loom.services.inferenceservice.cluster_serving import (
    EXPERIMENT,
    KSERVE_SERVICE,
    LAYOUTS,
    MODEL,
    SERVER,
    SERVING_RUNTIME,
    ClusterServing,
)
from tests.conftest import ROOT, eventually
from tests.integration.conftest import Kubectl, sample
from tests.integration.test_serving_manifests import serving_crds  # noqa: F401  (the module's CRDs)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("serving_crds")]

NAME = "recommender"
IMAGE = "registry.example.com/loom/serve:0.1.0"
V3 = Revision(name="recommender-v3", model_name="recommender", model_version="3", model_uri="s3://mlflow/m-3/artifacts")
V4 = Revision(name="recommender-v4", model_name="recommender", model_version="4", model_uri="s3://mlflow/m-4/artifacts")
SELECTOR = f"loom.dev/inferenceservice={NAME}"


@pytest.fixture
def owner(kube_api: KubeHttp, namespace: str) -> OwnerRef:
    """The Loom InferenceService the children belong to (so the garbage collector keeps them)."""
    obj = sample("inferenceservice")
    obj["metadata"] = {"name": NAME, "namespace": namespace}
    created = kube_api.apply(f"/apis/loom.dev/v1alpha1/namespaces/{namespace}/inferenceservices/{NAME}", obj, "test")
    return OwnerRef("loom.dev/v1alpha1", "InferenceService", NAME, created["metadata"]["uid"])


@pytest.fixture
def backend(kube_api: KubeHttp) -> ClusterServing:
    return ClusterServing(kube_api, MANAGER)


def layout(namespace: str, owner: OwnerRef, stable: Revision, canary: Revision | None = None,
           weight: int = 0, mirror: int = 0) -> Serving:
    split = Split(stable.name, None if canary is None else canary.name, weight, mirror)
    return Serving(name=NAME, namespace=namespace, image=IMAGE, stable=stable, split=split, canary=canary,
                   owner=owner, replicas=2, model_memory="600Mi", extra={"k": 20})


def children(api: KubeHttp, namespace: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Every child of the InferenceService, by kind and name."""
    return {kind.kind: {obj["metadata"]["name"]: obj for obj in api.list(kind.path(namespace), SELECTOR)}
            for kind in (SERVER, MODEL, EXPERIMENT, SERVING_RUNTIME, KSERVE_SERVICE)}


def assert_exactly(api: KubeHttp, serving: Serving, target: Target) -> dict[str, dict[str, dict[str, Any]]]:
    """The children are exactly the builder's manifests, each with the spec it was given."""
    found = children(api, serving.namespace)
    wanted = LAYOUTS[target].build(serving).manifests
    expected: dict[str, set[str]] = {kind: set() for kind in found}
    for manifest in wanted:
        expected[manifest["kind"]].add(manifest["metadata"]["name"])
        assert found[manifest["kind"]][manifest["metadata"]["name"]]["spec"] == manifest["spec"]
    assert {kind: set(objs) for kind, objs in found.items()} == expected
    return found


def write_status(api: KubeHttp, kind_path: str, name: str, conditions: dict[str, str], **fields: Any) -> None:
    """Play the controller: its conditions and fields on the status subresource, for the object's
    current generation unless `observedGeneration` is given."""
    obj = api.get(f"{kind_path}/{name}")
    status = {"observedGeneration": obj["metadata"]["generation"], **fields,
              "conditions": [{"type": t, "status": s, "lastTransitionTime": "2025-01-01T00:00:00Z"}
                             for t, s in conditions.items()]}
    api.merge_patch(f"{kind_path}/{name}/status", {"status": status})


def test_seldon_children_follow_the_layout_from_stable_to_canary_to_promotion(
    kube_api: KubeHttp, backend: ClusterServing, namespace: str, owner: OwnerRef
) -> None:
    stable = layout(namespace, owner, V3)
    applied = backend.apply(stable, Target.SELDON)
    assert applied.url == f"http://seldon-mesh.{namespace}" and applied.warnings == ()
    found = assert_exactly(kube_api, stable, Target.SELDON)
    assert set(found["Model"]) == {V3.name} and set(found["Server"]) == {NAME}
    assert found["Experiment"][NAME]["spec"] == {"candidates": [{"name": V3.name, "weight": 100}]}
    assert found["Model"][V3.name]["metadata"]["ownerReferences"][0]["uid"] == owner.uid

    canary = layout(namespace, owner, V3, V4, weight=20)
    assert backend.apply(canary, Target.SELDON).warnings == ()
    found = assert_exactly(kube_api, canary, Target.SELDON)
    assert found["Experiment"][NAME]["spec"] == {
        "candidates": [{"name": V3.name, "weight": 80}, {"name": V4.name, "weight": 20}]}

    shadow = layout(namespace, owner, V3, V4, weight=0, mirror=50)
    backend.apply(shadow, Target.SELDON)
    experiment = assert_exactly(kube_api, shadow, Target.SELDON)["Experiment"][NAME]
    assert experiment["spec"]["candidates"] == [{"name": V3.name, "weight": 100}]
    assert experiment["spec"]["mirror"] == {"name": V4.name, "percent": 50}

    # a mirror to a candidate is refused by Seldon: the warning says so, and the mirror applied before goes
    stepped = layout(namespace, owner, V3, V4, weight=30, mirror=50)
    assert len(backend.apply(stepped, Target.SELDON).warnings) == 1
    assert "mirror" not in assert_exactly(kube_api, stepped, Target.SELDON)["Experiment"][NAME]["spec"]

    promoted = layout(namespace, owner, V4)
    backend.apply(promoted, Target.SELDON)
    found = assert_exactly(kube_api, promoted, Target.SELDON)
    assert set(found["Model"]) == {V4.name} and set(found["Server"]) == {NAME}
    assert found["Experiment"][NAME]["spec"] == {"candidates": [{"name": V4.name, "weight": 100}]}, "the same endpoint"


def test_kserve_children_follow_the_layout_from_stable_to_canary_to_promotion(
    kube_api: KubeHttp, backend: ClusterServing, namespace: str, owner: OwnerRef
) -> None:
    stable = layout(namespace, owner, V3)
    applied = backend.apply(stable, Target.KSERVE)
    assert applied.url is None and applied.warnings == ()
    found = assert_exactly(kube_api, stable, Target.KSERVE)
    assert set(found["ServingRuntime"]) == {f"{NAME}-mlserver"}
    assert found["InferenceService"][NAME]["spec"]["predictor"]["name"] == V3.name
    assert "canary" not in found["InferenceService"][NAME]["spec"]

    canary = layout(namespace, owner, V3, V4, weight=20, mirror=10)
    warnings = backend.apply(canary, Target.KSERVE).warnings
    assert len(warnings) == 1 and "mirror" in warnings[0]
    spec = assert_exactly(kube_api, canary, Target.KSERVE)["InferenceService"][NAME]["spec"]
    assert spec["predictor"]["name"] == V3.name
    assert [(c["trafficPercent"], c["predictor"]["name"]) for c in spec["canary"]] == [(20, V4.name)]

    promoted = layout(namespace, owner, V4)
    backend.apply(promoted, Target.KSERVE)
    spec = assert_exactly(kube_api, promoted, Target.KSERVE)["InferenceService"][NAME]["spec"]
    assert spec["predictor"]["name"] == V4.name and "canary" not in spec


def test_switching_the_target_removes_the_other_targets_children(
    kube_api: KubeHttp, backend: ClusterServing, namespace: str, owner: OwnerRef
) -> None:
    on_seldon = layout(namespace, owner, V3, V4, weight=20)
    backend.apply(on_seldon, Target.SELDON)
    assert_exactly(kube_api, on_seldon, Target.SELDON)
    backend.apply(on_seldon, Target.KSERVE)
    found = assert_exactly(kube_api, on_seldon, Target.KSERVE)
    assert not found["Model"] and not found["Server"] and not found["Experiment"]
    backend.apply(on_seldon, Target.SELDON)
    found = assert_exactly(kube_api, on_seldon, Target.SELDON)
    assert not found["InferenceService"] and not found["ServingRuntime"]


def test_seldon_readiness_is_the_experiments_then_the_models(
    kube_api: KubeHttp, backend: ClusterServing, namespace: str, owner: OwnerRef
) -> None:
    assert backend.metric_source(Target.SELDON) == MetricSource.SELDON
    backend.apply(layout(namespace, owner, V3, V4, weight=20), Target.SELDON)
    models, experiments = MODEL.path(namespace), EXPERIMENT.path(namespace)

    def ready(*revisions: Revision) -> frozenset[str]:
        served = backend.observe(namespace, NAME, Target.SELDON, revisions)
        assert served.url == f"http://seldon-mesh.{namespace}" and served.missing is None
        return served.ready

    assert ready(V3, V4) == frozenset()
    write_status(kube_api, models, V3.name, {"ModelReady": "True", "Ready": "True"})
    write_status(kube_api, models, V4.name, {"ModelReady": "True", "Ready": "True"})
    assert ready(V3, V4) == frozenset(), "clients call the Experiment: nothing serves before it is ready"
    assert ready(V3) == frozenset()

    write_status(kube_api, experiments, NAME, {"ExperimentReady": "True", "CandidatesReady": "False"})
    assert ready(V3, V4) == {V3.name}
    assert ready(V3) == {V3.name}
    write_status(kube_api, experiments, NAME, {"ExperimentReady": "True", "CandidatesReady": "True"})
    assert ready(V3, V4) == {V3.name, V4.name}

    # the next step changes the Experiment: its status speaks of the old split until Seldon catches up
    backend.apply(layout(namespace, owner, V3, V4, weight=40), Target.SELDON)
    assert ready(V3, V4) == {V3.name}
    write_status(kube_api, experiments, NAME, {"ExperimentReady": "True", "CandidatesReady": "True"})
    assert ready(V3, V4) == {V3.name, V4.name}

    write_status(kube_api, models, V4.name, {"ModelReady": "False", "Ready": "False"})
    assert ready(V3, V4) == {V3.name}
    write_status(kube_api, experiments, NAME, {"ExperimentReady": "False"})
    assert ready(V3, V4) == frozenset()


def test_kserve_readiness_is_the_predictor_and_canary_conditions_of_the_spec_names(
    kube_api: KubeHttp, backend: ClusterServing, namespace: str, owner: OwnerRef
) -> None:
    services = KSERVE_SERVICE.path(namespace)
    url = f"http://{NAME}-{namespace}.example.com"
    assert backend.observe(namespace, NAME, Target.KSERVE, [V3]) == Served(), "nothing applied yet"
    backend.apply(layout(namespace, owner, V3, V4, weight=20), Target.KSERVE)
    served = backend.observe(namespace, NAME, Target.KSERVE, [V3, V4])
    assert served.ready == frozenset() and served.url is None and served.missing is None

    write_status(kube_api, services, NAME, {"PredictorReady": "True", "CanaryReady": "False"}, url=url)
    served = backend.observe(namespace, NAME, Target.KSERVE, [V3, V4])
    assert served.ready == {V3.name} and served.url == url
    write_status(kube_api, services, NAME, {"PredictorReady": "True", "CanaryReady": "True"}, url=url)
    assert backend.observe(namespace, NAME, Target.KSERVE, [V3, V4]).ready == {V3.name, V4.name}

    # promoted: the new spec is not observed yet, then its predictor (now v4) is ready; v3 is gone
    applied = backend.apply(layout(namespace, owner, V4), Target.KSERVE)
    assert applied.url == url
    assert backend.observe(namespace, NAME, Target.KSERVE, [V3, V4]).ready == frozenset()
    write_status(kube_api, services, NAME, {"PredictorReady": "True"}, url=url)
    assert backend.observe(namespace, NAME, Target.KSERVE, [V3, V4]).ready == {V4.name}


def _plurals(kubectl: Kubectl, group_version: str) -> set[str]:
    found = kubectl.run("get", "--raw", f"/apis/{group_version}", check=False)
    return {r["name"] for r in json.loads(found.stdout)["resources"]} if found.returncode == 0 else set()


@pytest.fixture
def uninstalled(request: pytest.FixtureRequest, kubectl: Kubectl) -> Iterator[None]:
    """The CRD files named by the test's parameter removed for the test, installed again after it."""
    files = [ROOT / "tests" / "crds" / name for name in request.param]
    crds = [tuple(f.stem.split("_", 1)) for f in files]  # (group, plural), as the files are named

    def listed(group: str, plural: str) -> bool:
        return any(plural in _plurals(kubectl, f"{group}/{v}") for v in ("v1alpha1", "v1beta1"))

    for f in files:
        kubectl.run("delete", "--wait=true", "--timeout=60s", "-f", str(f))
    eventually(lambda: not any(listed(*crd) for crd in crds), what="discovery to drop the CRDs")
    yield
    for f in files:
        kubectl.run("apply", "--server-side", "--force-conflicts", "-f", str(f))
        kubectl.run("wait", "--for=condition=Established", "--timeout=60s", "-f", str(f))
    eventually(lambda: all(listed(*crd) for crd in crds), what="discovery to list the CRDs again")


@pytest.mark.parametrize(("uninstalled", "target", "kinds"), [
    (["seldon/mlops.seldon.io_experiments.yaml"], Target.SELDON, ["Experiment (mlops.seldon.io/v1alpha1)"]),
    (["kserve/serving.kserve.io_inferenceservices.yaml", "kserve/serving.kserve.io_servingruntimes.yaml"],
     Target.KSERVE, ["InferenceService (serving.kserve.io/v1beta1)", "ServingRuntime (serving.kserve.io/v1alpha1)"]),
], indirect=["uninstalled"], ids=["seldon-kind", "kserve-groups"])
def test_a_target_whose_crds_are_not_installed_is_missing_naming_the_fix(
    backend: ClusterServing, namespace: str, uninstalled: None, target: Target, kinds: list[str]
) -> None:
    served = backend.observe(namespace, NAME, target, [V3])
    assert served.missing is not None and served.ready == frozenset()
    for kind in kinds:
        assert kind in served.missing
    other = Target.KSERVE if target == Target.SELDON else Target.SELDON
    assert f"install {LAYOUTS[target].system}" in served.missing and f"spec.target: {other.value}" in served.missing
    assert backend.observe(namespace, NAME, other, [V3]).missing is None


def test_errors_of_the_api_server_propagate(backend: ClusterServing, owner: OwnerRef) -> None:
    gone = f"t-gone-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ApiError) as raised:
        backend.apply(layout(gone, owner, V3), Target.SELDON)
    assert raised.value.status == 404


def test_the_layouts_name_every_kind_the_builders_emit() -> None:
    emitted = {(m["apiVersion"], m["kind"]) for build in (builder.seldon, builder.kserve)
               for m in build(layout("ns", OwnerRef("v1", "X", "x", "u"), V3, V4, weight=10)).manifests}
    assert emitted == {(k.api_version, k.kind) for lay in LAYOUTS.values() for k in lay.kinds}
