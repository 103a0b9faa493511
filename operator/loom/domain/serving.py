"""What the serving builders need to lay out an InferenceService in a cluster, and what they give back:
the revisions and their split (domain.rollout), each replica's shape (the training NodeShape, so a GPU
profile means the same for serving as for training), the server image and the model settings' extra
parameters (where the online features are). The service resolves all of it; the builders only shape."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from loom.api.inferenceservice import Revision
from loom.domain.rollout import Split
from loom.domain.training import NodeShape
from loom.domain.workloads import OwnerRef, SecretEnv


@dataclass(frozen=True)
class Serving:
    """One InferenceService as its serving target lays it out. `stable` and `canary` carry the resolved
    artifact location of their MLflow version (`Revision.model_uri`: what
    `get_model_version_download_uri` answered, never a models:/ URI); `split` names them by
    `Revision.name`. `min_replicas`/`max_replicas` unset mean a fixed `replicas`. `model_memory` is
    what one loaded revision takes (Seldon packs Models onto a Server replica by it), not the pod's
    memory, which is `node`'s."""

    name: str
    namespace: str
    image: str
    stable: Revision
    split: Split
    canary: Revision | None = None
    owner: OwnerRef | None = None
    replicas: int = 1
    min_replicas: int | None = None
    max_replicas: int | None = None
    node: NodeShape = field(default_factory=NodeShape)
    model_memory: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    # Every serving process's variables whose values stay in Secrets (the online store's connection).
    secret_env: tuple[SecretEnv, ...] = ()

    def __post_init__(self) -> None:
        if self.split.stable != self.stable.name:
            raise ValueError(f"split names stable {self.split.stable!r}, the stable revision is {self.stable.name!r}")
        canary = None if self.canary is None else self.canary.name
        if self.split.canary != canary:
            raise ValueError(f"split names canary {self.split.canary!r}, the canary revision is {canary!r}")
        if canary == self.stable.name:
            raise ValueError(f"the canary and the stable revision are both {canary!r}")


@dataclass(frozen=True)
class ServingManifests:
    """The children to apply, in order (runtimes before what uses them), and what the target cannot
    do of the requested split (e.g. KServe has no mirroring), for a condition or an Event."""

    manifests: tuple[dict[str, Any], ...]
    warnings: tuple[str, ...] = ()
