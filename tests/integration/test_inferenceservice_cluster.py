"""The InferenceService controller end to end on the real kube-apiserver with the Kubernetes executor:
versions in a real MLflow registry (SQLite), the operator serving them as Seldon Core 2 objects with
the minimal CRDs of tests/crds/. No Seldon controller runs: the tests play it, writing ModelReady and
ExperimentReady for each object's current generation as it would after every spec change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loom.config import ExecutorKind
from loom.drivers.kube_children import ChildKind, holds
from loom.drivers.kube_http import ApiError, KubeHttp
from loom.services.inferenceservice.cluster_serving import EXPERIMENT, MODEL, SERVER
from tests.conftest import eventually
from tests.integration.conftest import Kubectl, Operator, condition, start_operator
from tests.integration.test_cluster_serving import uninstalled, write_status
from tests.integration.test_serving_manifests import serving_crds
from tests.support.registry import Registry

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("serving_crds")]
__all__ = ["serving_crds", "uninstalled"]  # fixtures used by name

IMAGE = "registry.example.com/loom/serve:0.1.0"
MODEL_NAME = "movielens-two-tower"
ISVC = "recommender"
V1, V2 = f"{ISVC}-v1", f"{ISVC}-v2"
# Fully qualified: KServe's InferenceService shares the plural.
LOOM_ISVC = "inferenceservices.loom.dev"
SELECTOR = f"loom.dev/inferenceservice={ISVC}"
MODEL_READY = ("ModelReady",)
EXPERIMENT_READY = ("ExperimentReady", "CandidatesReady")
KSERVE_CRDS = ["kserve/serving.kserve.io_inferenceservices.yaml", "kserve/serving.kserve.io_servingruntimes.yaml"]


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts", MODEL_NAME)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """What every version registers: one small file (no model server loads it here)."""
    files = tmp_path / "version"
    files.mkdir()
    (files / "model.json").write_text('{"kind": "two-tower"}')
    return files


def cluster_operator(namespace: str, registry: Registry, resync_seconds: float) -> Operator:
    return start_operator(namespace, executor=ExecutorKind.KUBERNETES, controllers=["InferenceService"],
                          mlflow_tracking_uri=registry.uri, image_serve=IMAGE, registry_poll_seconds=1,
                          dependency_retry_seconds=1, resync_seconds=resync_seconds)


@pytest.fixture
def op(namespace: str, registry: Registry) -> Iterator[Operator]:
    running = cluster_operator(namespace, registry, resync_seconds=2)
    with running.runner:
        yield running
    assert running.runner.exception is None, running.runner.output


def inferenceservice(uri: str = f"models:/{MODEL_NAME}@champion", target: str = "seldon",
                     **canary: Any) -> dict[str, Any]:
    return {"apiVersion": "loom.dev/v1alpha1", "kind": "InferenceService", "metadata": {"name": ISVC},
            "spec": {"model": {"uri": uri}, "target": target,
                     "rollout": {"canary": {"interval": "10s", **canary}}}}


def tracking_challenger() -> dict[str, Any]:
    return inferenceservice(fromAlias="challenger", skipAnalysis=True)


def isvc(kc: Kubectl) -> dict[str, Any]:
    return kc.get(LOOM_ISVC, ISVC)


def status(kc: Kubectl) -> dict[str, Any]:
    return isvc(kc).get("status", {})


def conditions(kc: Kubectl, *types: str) -> list[dict[str, Any]]:
    obj = isvc(kc)
    return [condition(obj, t) or {} for t in types]


def events(kc: Kubectl) -> list[str]:
    found = json.loads(kc.run("get", "events", "--field-selector", f"involvedObject.name={ISVC}", "-o",
                              "json").stdout)["items"]
    return [e["reason"] for e in found if e["involvedObject"]["apiVersion"].startswith("loom.dev/")]


def child(api: KubeHttp, kind: ChildKind, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return api.get(kind.path(namespace, name))
    except ApiError as error:
        if error.status == 404:
            return None
        raise


def appears(api: KubeHttp, kind: ChildKind, namespace: str, name: str, what: str,
            unlike: dict[str, Any] | None = None) -> dict[str, Any]:
    """The child once it exists (another object than `unlike`, when given)."""
    def found() -> dict[str, Any]:
        obj = child(api, kind, namespace, name) or {}
        replaced = unlike is None or (obj and obj["metadata"]["uid"] != unlike["metadata"]["uid"])
        return obj if replaced else {}
    return eventually(found, timeout=60, interval=0.5, what=what)


def condition_reaches(kc: Kubectl, type_: str, **wanted: str) -> dict[str, Any]:
    """The condition once its fields have the `wanted` values."""
    def reached() -> dict[str, Any]:
        (found,) = conditions(kc, type_)
        return found if all(found.get(k) == v for k, v in wanted.items()) else {}
    return eventually(reached, timeout=60, interval=0.5, what=f"{type_} {wanted}")


def phase_reaches(kc: Kubectl, phase: str) -> dict[str, Any]:
    def reached() -> dict[str, Any]:
        s = status(kc)
        return s if s.get("phase") == phase else {}
    return eventually(reached, timeout=60, interval=0.5, what=f"phase {phase}")


def names(api: KubeHttp, kind: ChildKind, namespace: str) -> set[str]:
    return {obj["metadata"]["name"] for obj in api.list(kind.path(namespace), SELECTOR)}


def seldon_reports_ready(api: KubeHttp, kind: ChildKind, namespace: str, name: str,
                         types: tuple[str, ...]) -> None:
    """Play Seldon's controller: `types` True for the object's current generation, written only when
    the status does not say so already (a spec change makes it stale)."""
    obj = child(api, kind, namespace, name)
    if obj is not None and not holds(obj, types):
        write_status(api, kind.path(namespace), name, dict.fromkeys(types, "True"))


def seldon_keeps_up(api: KubeHttp, namespace: str) -> None:
    """Every Model and the Experiment of the InferenceService ready for their current spec."""
    for name in names(api, MODEL, namespace):
        seldon_reports_ready(api, MODEL, namespace, name, MODEL_READY)
    seldon_reports_ready(api, EXPERIMENT, namespace, ISVC, EXPERIMENT_READY)


def owned_by_isvc(obj: dict[str, Any], uid: str) -> bool:
    return [(r["kind"], r["name"], r["uid"]) for r in obj["metadata"].get("ownerReferences", [])] == [
        ("InferenceService", ISVC, uid)]


def serving_stable(kc: Kubectl, phase: str, timeout: float = 60) -> dict[str, Any]:
    """The status once the stable revision serves in `phase`: Ready, with a url."""
    def ready() -> dict[str, Any]:
        s = status(kc)
        (ready_condition,) = conditions(kc, "Ready")
        return s if s.get("phase") == phase and ready_condition.get("status") == "True" and s.get("url") else {}
    return eventually(ready, timeout=timeout, interval=0.5, what=f"the InferenceService Ready in phase {phase}")


def test_seldon_serves_the_champion_and_promotes_the_challenger(
        kube_api: KubeHttp, kc: Kubectl, namespace: str, op: Operator, registry: Registry, files: Path) -> None:
    assert registry.register(files, "champion") == "1"
    kc.apply(tracking_challenger())
    model = appears(kube_api, MODEL, namespace, V1, "the Model of version 1")
    server = appears(kube_api, SERVER, namespace, ISVC, "the Server")
    uid = isvc(kc)["metadata"]["uid"]
    assert model["spec"]["storageUri"] == registry.download_uri("1") and model["spec"]["server"] == ISVC
    assert server["spec"]["podSpec"]["containers"][0]["image"] == IMAGE
    assert owned_by_isvc(model, uid) and owned_by_isvc(server, uid)

    # The Experiment clients call, named after the InferenceService: the same endpoint for every version.
    experiment = appears(kube_api, EXPERIMENT, namespace, ISVC, "the Experiment")
    assert experiment["spec"] == {"candidates": [{"name": V1, "weight": 100}]} and owned_by_isvc(experiment, uid)

    # Not ready until Seldon says the Model is loaded and the Experiment routes to it.
    condition_reaches(kc, "PredictorReady", status="False", reason="RevisionNotReady")
    assert conditions(kc, "Ready")[0]["status"] == "False" and status(kc)["phase"] == "Initializing"
    seldon_reports_ready(kube_api, MODEL, namespace, V1, MODEL_READY)
    condition_reaches(kc, "PredictorReady", status="False", reason="RevisionNotReady")
    seldon_reports_ready(kube_api, EXPERIMENT, namespace, ISVC, EXPERIMENT_READY)
    first = serving_stable(kc, "Initialized")
    assert first["url"] == f"http://seldon-mesh.{namespace}" and first["stable"]["modelVersion"] == "1"
    assert conditions(kc, "PredictorReady")[0]["reason"] == "RevisionReady"

    # The challenger: its Model, while the Experiment keeps all traffic on the stable as it loads.
    assert registry.register(files, "challenger") == "2"
    canary = appears(kube_api, MODEL, namespace, V2, "the Model of version 2")
    assert canary["spec"]["storageUri"] == registry.download_uri("2") and owned_by_isvc(canary, uid)
    assert child(kube_api, EXPERIMENT, namespace, ISVC)["spec"] == {"candidates": [{"name": V1, "weight": 100}]}
    progressing = phase_reaches(kc, "Progressing")
    assert progressing["canary"]["modelVersion"] == "2" and progressing["canaryWeight"] == 0, progressing
    assert conditions(kc, "CanaryReady")[0]["reason"] == "CanaryNotReady"

    phases: list[str] = []
    finalising_splits: list[dict[str, int]] = []

    def promoted() -> dict[str, Any]:
        seldon_keeps_up(kube_api, namespace)
        s = status(kc)
        if not phases or phases[-1] != s.get("phase"):
            phases.append(s.get("phase", ""))
        if s.get("phase") == "Finalising" and (found := child(kube_api, EXPERIMENT, namespace, ISVC)):
            finalising_splits.append({c["name"]: c["weight"] for c in found["spec"]["candidates"]})
        return s if s.get("phase") == "Succeeded" else {}

    done = eventually(promoted, timeout=120, interval=0.5, what="the challenger promoted")
    after_canary = phases[phases.index("Promoting"):] if "Promoting" in phases else phases
    assert after_canary == ["Promoting", "Finalising", "Succeeded"], phases
    # Finalising holds the old version at weight 0 while it drains. A read of the phase and then of the
    # Experiment can straddle the step that ends Finalising, so the final split may show up too.
    assert {V1: 0, V2: 100} in finalising_splits, finalising_splits
    assert all(s in ({V1: 0, V2: 100}, {V2: 100}) for s in finalising_splits), finalising_splits
    assert done["stable"]["modelVersion"] == "2" and done.get("canary") is None
    assert registry.alias("champion") == "2"
    eventually(lambda: names(kube_api, MODEL, namespace) == {V2}, what="the Model of version 1 deleted")
    eventually(lambda: child(kube_api, EXPERIMENT, namespace, ISVC)["spec"] == {
        "candidates": [{"name": V2, "weight": 100}]}, what="the Experiment routing all to version 2")
    assert names(kube_api, SERVER, namespace) == {ISVC}
    serving_stable(kc, "Succeeded")
    reasons = events(kc)
    for reason in ("Initialized", "CanaryStarted", "Promoting", "Finalising", "Succeeded"):
        assert reason in reasons, reasons


@pytest.mark.parametrize("uninstalled", [KSERVE_CRDS], indirect=True, ids=["kserve"])
def test_a_kserve_target_without_kserve_names_the_fix_and_applies_nothing(
        kube_api: KubeHttp, kc: Kubectl, namespace: str, uninstalled: None, op: Operator,
        registry: Registry, files: Path) -> None:
    registry.register(files, "champion")
    kc.apply(inferenceservice(target="kserve"))
    predictor = condition_reaches(kc, "PredictorReady", status="False", reason="BackendNotInstalled")
    assert "install KServe" in predictor["message"] and "spec.target: seldon" in predictor["message"], predictor
    assert "InferenceService (serving.kserve.io/v1beta1)" in predictor["message"], predictor
    model_ready, ready = conditions(kc, "ModelReady", "Ready")
    assert model_ready["status"] == "True" and ready["status"] == "False", (model_ready, ready)
    s = status(kc)
    assert "stable" not in s and "url" not in s, s
    assert not names(kube_api, SERVER, namespace) and not names(kube_api, MODEL, namespace)


def test_a_deleted_model_of_the_stable_revision_is_applied_again(
        kube_api: KubeHttp, kc: Kubectl, namespace: str, op: Operator, registry: Registry, files: Path) -> None:
    """A pinned version: no alias to poll, so the periodic resync is what repairs the drift."""
    registry.register(files, "champion")
    kc.apply(inferenceservice(uri=f"models:/{MODEL_NAME}/1"))
    model = appears(kube_api, MODEL, namespace, V1, "the Model of version 1")
    appears(kube_api, EXPERIMENT, namespace, ISVC, "the Experiment")
    seldon_keeps_up(kube_api, namespace)
    serving_stable(kc, "Initialized")

    kube_api.delete(MODEL.path(namespace, V1))
    again = appears(kube_api, MODEL, namespace, V1, "the Model applied again", unlike=model)
    assert again["spec"] == model["spec"] and again["metadata"]["labels"] == model["metadata"]["labels"]
    assert again["metadata"]["ownerReferences"] == model["metadata"]["ownerReferences"]
    # The new Model is not loaded yet, and the status says so until Seldon reports it.
    condition_reaches(kc, "PredictorReady", status="False", reason="RevisionNotReady")
    assert conditions(kc, "Ready")[0]["status"] == "False"
    seldon_reports_ready(kube_api, MODEL, namespace, V1, MODEL_READY)
    assert serving_stable(kc, "Initialized")["stable"]["modelVersion"] == "1"


def test_a_model_reported_ready_wakes_its_inferenceservice(
        kube_api: KubeHttp, kc: Kubectl, namespace: str, registry: Registry, files: Path) -> None:
    """Readiness is what a new revision waits for, so Seldon's report of it should bring the
    InferenceService back at once: here with no resync and no alias to poll (a pinned version)."""
    registry.register(files, "champion")
    running = cluster_operator(namespace, registry, resync_seconds=0)
    with running.runner:
        kc.apply(inferenceservice(uri=f"models:/{MODEL_NAME}/1"))
        appears(kube_api, MODEL, namespace, V1, "the Model of version 1")
        appears(kube_api, EXPERIMENT, namespace, ISVC, "the Experiment")
        seldon_reports_ready(kube_api, EXPERIMENT, namespace, ISVC, EXPERIMENT_READY)
        condition_reaches(kc, "PredictorReady", status="False", reason="RevisionNotReady")
        seldon_reports_ready(kube_api, MODEL, namespace, V1, MODEL_READY)
        serving_stable(kc, "Initialized", timeout=20)
    assert running.runner.exception is None, running.runner.output
