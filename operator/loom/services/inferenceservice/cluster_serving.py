"""The serving backend of a cluster: an InferenceService's revisions as Seldon Core 2 or KServe objects
(`builders.serving` lays them out), server-side applied under the operator's field manager; children
of revisions the layout no longer has (the old stable after a promotion, the Experiment once there is
no canary), and those of the other target after spec.target changed, are found by the owner label
and deleted.

Readiness is what Seldon's and KServe's controllers write in status, counted only for the object's
current generation. Seldon: clients call the Experiment, so nothing is ready before it is
ExperimentReady; then the stable is ready with its Model's ModelReady, and a canary with its Model's
and the Experiment's current spec ready (CandidatesReady and MirrorReady too where reported).
KServe: the InferenceService's PredictorReady makes the predictor named in its spec ready, CanaryReady
the canary named in `canary[]`.

Where clients send requests: KServe's `status.url`; for Seldon, the namespace's Seldon mesh
(`http://seldon-mesh.<namespace>`, /v2/models/<name>/infer with the header `Seldon-Model:
<name>.experiment`), where the Experiment named after the InferenceService splits them; that
endpoint outlives every promotion.

An observe reads discovery (one GET per group version: a target whose CRDs are not installed is
`missing`, naming the fix) and one LIST per kind it needs by the owner label, never a GET per child."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loom.api.inferenceservice import Revision, Target
from loom.builders import serving as builder
from loom.builders.canary_queries import MetricSource
from loom.builders.labels import owned_by
from loom.domain.serving import Serving, ServingManifests
from loom.drivers.kube_children import ChildKind, KubeChildren, condition_status, current, holds, label_selector
from loom.drivers.kube_http import KubeHttp
from loom.services.inferenceservice.backend import Applied, Served

SERVER = ChildKind("Server", builder.SELDON_API_VERSION, "servers")
MODEL = ChildKind("Model", builder.SELDON_API_VERSION, "models")
EXPERIMENT = ChildKind("Experiment", builder.SELDON_API_VERSION, "experiments")
KSERVE_SERVICE = ChildKind("InferenceService", builder.KSERVE_API_VERSION, "inferenceservices")
SERVING_RUNTIME = ChildKind("ServingRuntime", builder.KSERVE_RUNTIME_API_VERSION, "servingruntimes")

# The condition types Seldon Core 2's and KServe's controllers write.
MODEL_READY = "ModelReady"
EXPERIMENT_READY = "ExperimentReady"
EXPERIMENT_PARTS = ("CandidatesReady", "MirrorReady")
PREDICTOR_READY = "PredictorReady"
CANARY_READY = "CanaryReady"
SELDON_MESH = "seldon-mesh"


@dataclass(frozen=True)
class Layout:
    """A target's kinds (in the order they are removed: users before what they use), its builder,
    and what to do when the cluster lacks them."""

    system: str
    kinds: tuple[ChildKind, ...]
    build: Callable[[Serving], ServingManifests]
    fix: str

    def missing(self, kinds: Sequence[ChildKind]) -> str:
        listed = ", ".join(f"{k.kind} ({k.api_version})" for k in kinds)
        return f"the cluster has no {self.system} kinds {listed}: {self.fix}"


LAYOUTS = {
    Target.SELDON: Layout(
        "Seldon Core 2", (EXPERIMENT, MODEL, SERVER), builder.seldon,
        "install Seldon Core 2 (its CRDs and a SeldonRuntime in the namespace), or set spec.target: kserve",
    ),
    Target.KSERVE: Layout(
        "KServe", (KSERVE_SERVICE, SERVING_RUNTIME), builder.kserve,
        "install KServe 0.20 or later in Standard deployment mode, or set spec.target: seldon",
    ),
}


def seldon_url(namespace: str) -> str:
    return f"http://{SELDON_MESH}.{namespace}"


def seldon_ready(revisions: Sequence[str], models: Sequence[Mapping[str, Any]],
                 experiment: Mapping[str, Any] | None) -> frozenset[str]:
    """None while the Experiment clients call is not ExperimentReady. Then the stable (the first of
    `revisions`) is ready with its Model, also while Seldon applies a newer spec of the Experiment (the
    split in force keeps routing); a canary only once the Experiment's current spec is ready."""
    if not revisions or experiment is None or condition_status(experiment, EXPERIMENT_READY) is not True:
        return frozenset()
    with_model = {m["metadata"]["name"] for m in models if holds(m, (MODEL_READY,))}
    ready = {revisions[0]} & with_model
    if holds(experiment, (EXPERIMENT_READY,), EXPERIMENT_PARTS):
        ready |= set(revisions[1:]) & with_model
    return frozenset(ready)


def kserve_ready(service: Mapping[str, Any]) -> frozenset[str]:
    """The predictors of the InferenceService that KServe reports ready, by the names in its spec."""
    if not current(service):
        return frozenset()
    spec = service.get("spec") or {}
    ready: set[str | None] = set()
    if condition_status(service, PREDICTOR_READY):
        ready.add((spec.get("predictor") or {}).get("name"))
    if condition_status(service, CANARY_READY):
        ready |= {(c.get("predictor") or {}).get("name") for c in spec.get("canary") or []}
    return frozenset(name for name in ready if name)


def _named(objects: Sequence[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((obj for obj in objects if obj["metadata"]["name"] == name), None)


def _url(service: Mapping[str, Any] | None) -> str | None:
    return ((service or {}).get("status") or {}).get("url") or None


class ClusterServing:
    """ServingBackend of Seldon Core 2 and KServe, through one client of the API server."""

    def __init__(self, api: KubeHttp, field_manager: str) -> None:
        self._children = KubeChildren(api, field_manager)

    def metric_source(self, target: Target) -> MetricSource:
        """Seldon's agent metrics, or MLServer's own in KServe's predictor pods."""
        return MetricSource.SELDON if target == Target.SELDON else MetricSource.KSERVE

    def observe(self, namespace: str, name: str, target: Target, revisions: Sequence[Revision]) -> Served:
        layout = LAYOUTS[target]
        unserved = self._children.unserved(layout.kinds)
        if unserved:
            return Served(missing=layout.missing(unserved))
        selector = label_selector(owned_by(builder.OWNER_KIND, name))
        names = list(dict.fromkeys(r.name for r in revisions))
        if target == Target.SELDON:
            models = self._children.listed(MODEL, namespace, selector)
            experiment = _named(self._children.listed(EXPERIMENT, namespace, selector), name)
            return Served(seldon_ready(names, models, experiment), seldon_url(namespace))
        service = _named(self._children.listed(KSERVE_SERVICE, namespace, selector), name)
        if service is None:
            return Served()
        return Served(kserve_ready(service) & frozenset(names), _url(service))

    def apply(self, serving: Serving, target: Target) -> Applied:
        layout = LAYOUTS[target]
        built = layout.build(serving)
        applied = self._children.apply(built.manifests, layout.kinds)
        selector = label_selector(owned_by(builder.OWNER_KIND, serving.name))
        self._children.prune(serving.namespace, selector, layout.kinds, built.manifests)
        for other, retired in LAYOUTS.items():  # what a previous spec.target left, where installed
            if other != target:
                installed = self._children.unserved(retired.kinds)
                self._children.prune(serving.namespace, selector,
                                     [k for k in retired.kinds if k not in installed], ())
        url: str | None
        if target == Target.SELDON:
            url = seldon_url(serving.namespace)
        else:
            url = _url(next((obj for obj in applied
                             if (obj["apiVersion"], obj["kind"]) == (KSERVE_SERVICE.api_version, KSERVE_SERVICE.kind)),
                            None))
        return Applied(url, built.warnings)
