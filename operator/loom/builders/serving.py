"""An InferenceService's revisions -> the serving target's manifests (pure; the service applies them).
Every revision runs Loom's MLServer runtime (`serve.runtime.Recommender`, in the serve image), and
its model settings' `parameters.extra` says where the online features are.

Seldon Core 2 (`mlops.seldon.io/v1alpha1`): a `Server` on Seldon's stock `mlserver` ServerConfig with
the serve image and the capability `loom-recommender` (Seldon's documented way to a custom MLServer
image: no ServerConfig of our own), one `Model` per revision requiring that capability and pinned to
that Server, and one `Experiment` named after the InferenceService, the endpoint clients call
(`<name>.experiment`) whichever revisions serve: `candidates` weighted by the split (the stable
always; a candidate's share is its weight over the sum) and `mirror`,
which Seldon allows only to a model that is not a candidate: the canary of a shadow phase (weight 0).
Seldon's agent reads the model settings from the artifact's `model-settings.json` and sets each
`Model.spec.parameters` entry as a string in `parameters.extra`, so structured values travel as JSON.

KServe (`serving.kserve.io/v1beta1`, Standard deployment mode): a `ServingRuntime` running the serve
image for the model format `loom-recommender`, and one `InferenceService` whose predictor is the
stable revision and whose `canary[]` holds the canary with its `trafficPercent` (KServe 0.20's
Standard-mode canary; the canary keeps fixed replicas, so no `maxReplicas`). KServe downloads
`storageUri` to /mnt/models; MLServer, started on an empty model repository, reads the model
settings from MLSERVER_MODEL_* variables (the runtime's, and each predictor's name, version, extra).
A mirror a target cannot carry (KServe has none) is reported as a warning, not dropped silently."""

from __future__ import annotations

import json
from typing import Any

from loom.api.inferenceservice import Revision
from loom.builders import pods
from loom.builders.labels import owned_by, recommended
from loom.domain.rollout import Split
from loom.domain.serving import Serving, ServingManifests

SELDON_API_VERSION = "mlops.seldon.io/v1alpha1"
KSERVE_API_VERSION = "serving.kserve.io/v1beta1"
KSERVE_RUNTIME_API_VERSION = "serving.kserve.io/v1alpha1"
OWNER_KIND = "InferenceService"
COMPONENT = "serve"
RUNTIME = "loom-recommender"
IMPLEMENTATION = "serve.runtime.Recommender"
REVISION_LABEL = "loom.dev/revision"
# Seldon's stock MLServer ServerConfig, the container in it that runs MLServer, and how that container
# starts MLServer on the repository Seldon's agent fills (the stock config leaves it to the image).
SELDON_SERVER_CONFIG = "mlserver"
SELDON_SERVER_CONTAINER = "mlserver"
SELDON_SERVER_COMMAND = ("mlserver", "start", "$(MLSERVER_MODELS_DIR)")
# KServe's names: the annotation choosing the deployment mode, the serving container, where the
# storage initializer puts `storageUri`, and the ports of its stock MLServer runtime.
KSERVE_DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
KSERVE_STANDARD = "Standard"
KSERVE_CONTAINER = "kserve-container"
KSERVE_MODEL_DIR = "/mnt/models"
KSERVE_PROTOCOL = "v2"
# MLServer's model repository on KServe: a directory with no model-settings.json (it need not exist),
# so MLServer takes its one model from the MLSERVER_MODEL_* variables, whatever the artifacts carry.
KSERVE_REPOSITORY = "/var/run/loom/mlserver"


def _metadata(serving: Serving, name: str, revision: Revision | None = None) -> dict[str, Any]:
    meta_labels = {**recommended(name, COMPONENT), **owned_by(OWNER_KIND, serving.name)}
    if revision is not None:
        meta_labels[REVISION_LABEL] = revision.name
    meta: dict[str, Any] = {"name": name, "namespace": serving.namespace, "labels": meta_labels}
    if serving.owner is not None:
        meta["ownerReferences"] = [serving.owner.to_wire()]
    return meta


def _scaling(serving: Serving) -> dict[str, int]:
    """replicas with its bounds: a fixed count when the spec sets no bounds."""
    return {
        "replicas": serving.replicas,
        "minReplicas": serving.replicas if serving.min_replicas is None else serving.min_replicas,
        "maxReplicas": serving.replicas if serving.max_replicas is None else serving.max_replicas,
    }


def _revisions(serving: Serving) -> tuple[Revision, ...]:
    return (serving.stable,) if serving.canary is None else (serving.stable, serving.canary)


def seldon_server(serving: Serving) -> dict[str, Any]:
    """The Server of the InferenceService's Models: Seldon's MLServer with the serve image, advertising
    Loom's runtime, shaped like each replica (a Model's replicas each need a Server replica). Seldon
    merges the container into its stock one by name: maps key by key, lists appended."""
    container: dict[str, Any] = {
        "name": SELDON_SERVER_CONTAINER, "image": serving.image, "command": list(SELDON_SERVER_COMMAND)}
    resources = pods.resources(serving.node)
    memory = serving.node.requests.get("memory")
    if memory is not None and "memory" not in serving.node.limits:
        # Seldon merges these into its stock container, whose memory limit (1Gi) would stay otherwise.
        resources.setdefault("limits", {})["memory"] = memory
    if resources:
        container["resources"] = resources
    if serving.secret_env:
        container["env"] = pods.secret_env(serving.secret_env)
    return {
        "apiVersion": SELDON_API_VERSION,
        "kind": "Server",
        "metadata": _metadata(serving, serving.name),
        "spec": {
            "serverConfig": SELDON_SERVER_CONFIG,
            "extraCapabilities": [RUNTIME],
            **_scaling(serving),
            "podSpec": {"containers": [container], **pods.placement(serving.node)},
        },
    }


def seldon_model(serving: Serving, revision: Revision) -> dict[str, Any]:
    """One revision's Model: its artifacts, on the InferenceService's Server. Its `memory` is the
    loaded model's size (Seldon's default, 1MB, when unknown): the stable and the canary Model share
    each Server replica, whose capacity is the container's memory."""
    spec: dict[str, Any] = {
        "storageUri": revision.model_uri,
        "requirements": [RUNTIME],
        "server": serving.name,
        **_scaling(serving),
    }
    if serving.model_memory is not None:
        spec["memory"] = serving.model_memory
    if serving.extra:
        spec["parameters"] = [
            {"name": key, "value": value if isinstance(value, str) else json.dumps(value, sort_keys=True)}
            for key, value in sorted(serving.extra.items())
        ]
    return {
        "apiVersion": SELDON_API_VERSION,
        "kind": "Model",
        "metadata": _metadata(serving, revision.name, revision),
        "spec": spec,
    }


def _seldon_mirrors(split: Split) -> bool:
    """Seldon refuses an Experiment whose mirror is also a candidate, so the canary can be mirrored
    to only while it takes no traffic of its own (a shadow phase)."""
    return split.mirror > 0 and split.canary_weight == 0


def seldon_experiment(serving: Serving) -> dict[str, Any]:
    """The InferenceService's endpoint: an Experiment named after it, without a `default`, so clients
    call `<name>.experiment` (header `Seldon-Model`) and keep calling it across promotions, when the
    revisions' Models come and go. Its candidates are the stable Model (always, as Seldon requires) and
    the canary while it takes traffic."""
    split = serving.split
    candidates = [{"name": split.stable, "weight": split.stable_weight}]
    if split.canary is not None and split.canary_weight > 0:
        candidates.append({"name": split.canary, "weight": split.canary_weight})
    spec: dict[str, Any] = {"candidates": candidates}
    if split.canary is not None and _seldon_mirrors(split):
        spec["mirror"] = {"name": split.canary, "percent": split.mirror}
    return {
        "apiVersion": SELDON_API_VERSION,
        "kind": "Experiment",
        "metadata": _metadata(serving, serving.name),
        "spec": spec,
    }


def seldon(serving: Serving) -> ServingManifests:
    """Server, one Model per revision, and the Experiment that is the endpoint; a mirror Seldon cannot
    carry (to a canary that also takes traffic) becomes a warning."""
    manifests = [seldon_server(serving), *(seldon_model(serving, r) for r in _revisions(serving)),
                 seldon_experiment(serving)]
    warnings: list[str] = []
    split = serving.split
    if serving.canary is not None and split.mirror > 0 and not _seldon_mirrors(split):
        warnings.append(f"Seldon cannot mirror to a candidate: the {split.mirror}% mirror to {split.canary} "
                        f"is not applied while it takes {split.canary_weight}% of the traffic")
    return ServingManifests(tuple(manifests), tuple(warnings))


def _runtime_name(serving: Serving) -> str:
    return f"{serving.name}-mlserver"


def kserve_runtime(serving: Serving) -> dict[str, Any]:
    """The ServingRuntime of Loom's recommender: MLServer from the serve image, loading /mnt/models."""
    env = {
        "MLSERVER_MODEL_IMPLEMENTATION": IMPLEMENTATION,
        "MLSERVER_MODEL_URI": KSERVE_MODEL_DIR,
        "MLSERVER_HTTP_PORT": "8080",
        "MLSERVER_GRPC_PORT": "9000",
    }
    return {
        "apiVersion": KSERVE_RUNTIME_API_VERSION,
        "kind": "ServingRuntime",
        "metadata": _metadata(serving, _runtime_name(serving)),
        "spec": {
            "supportedModelFormats": [{"name": RUNTIME, "version": "1", "autoSelect": False}],
            "protocolVersions": [KSERVE_PROTOCOL],
            "containers": [{
                "name": KSERVE_CONTAINER,
                "image": serving.image,
                "command": ["mlserver", "start", KSERVE_REPOSITORY],
                "env": [{"name": k, "value": v} for k, v in sorted(env.items())]
                       + pods.secret_env(serving.secret_env),
            }],
        },
    }


def _kserve_predictor(serving: Serving, revision: Revision, *, canary: bool) -> dict[str, Any]:
    """A revision as a named predictor; MLServer learns the model's name, version and extra from the
    environment. Every revision serves under the InferenceService's name, since KServe splits the
    requests of one URL path (/v2/models/<name>/infer) between them; the version tells them apart.
    A canary has fixed replicas no more than the stable's minimum, as KServe requires."""
    env = {"MLSERVER_MODEL_NAME": serving.name, "MLSERVER_MODEL_VERSION": revision.model_version}
    if serving.extra:
        env["MLSERVER_MODEL_EXTRA"] = json.dumps(dict(serving.extra), sort_keys=True)
    model: dict[str, Any] = {
        "modelFormat": {"name": RUNTIME, "version": "1"},
        "runtime": _runtime_name(serving),
        "protocolVersion": KSERVE_PROTOCOL,
        "storageUri": revision.model_uri,
        "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
    }
    resources = pods.resources(serving.node)
    if resources:
        model["resources"] = resources
    scaling = _scaling(serving)
    # The pod label the canary analysis tells the revisions apart by (their metrics share the model name).
    predictor: dict[str, Any] = {"name": revision.name, "minReplicas": scaling["minReplicas"],
                                 "labels": {REVISION_LABEL: revision.name}}
    if not canary:
        predictor["maxReplicas"] = scaling["maxReplicas"]
    return {**predictor, **pods.placement(serving.node), "model": model}


def kserve_inference_service(serving: Serving) -> dict[str, Any]:
    """The KServe InferenceService: the stable predictor and, while there is one, the canary."""
    spec: dict[str, Any] = {"predictor": _kserve_predictor(serving, serving.stable, canary=False)}
    if serving.canary is not None:
        spec["canary"] = [{
            "trafficPercent": serving.split.canary_weight,
            "predictor": _kserve_predictor(serving, serving.canary, canary=True),
        }]
    meta = _metadata(serving, serving.name)
    meta["annotations"] = {KSERVE_DEPLOYMENT_MODE: KSERVE_STANDARD}
    return {"apiVersion": KSERVE_API_VERSION, "kind": "InferenceService", "metadata": meta, "spec": spec}


def kserve(serving: Serving) -> ServingManifests:
    """ServingRuntime and InferenceService; a requested mirror becomes a warning (KServe has none)."""
    warnings: list[str] = []
    if serving.split.mirror > 0:
        warnings.append(f"KServe cannot mirror requests: the {serving.split.mirror}% mirror to "
                        f"{serving.split.canary} is not applied (the seldon target or the local router can)")
    return ServingManifests((kserve_runtime(serving), kserve_inference_service(serving)), tuple(warnings))
