"""Serving children in a cluster: Seldon Core 2's Models and Experiments and KServe's InferenceServices
that Loom applied carry their InferenceService's owner label; a change of their status (a revision
loaded, an Experiment's candidates ready) wakes it at once, as a TrainJob's wakes its TrainingJob
(`runs`), instead of at the next resync. A kind the cluster does not serve is not watched until its
CRD appears."""

from __future__ import annotations

from typing import Any

import kopf

from loom.api.kinds import INFERENCESERVICE
from loom.domain.workloads import owner_label
from loom.handlers.triggers import WORKLOAD, ObjectRef, marker

SERVING_KINDS = (("mlops.seldon.io", "v1alpha1", "models"), ("mlops.seldon.io", "v1alpha1", "experiments"),
                 ("serving.kserve.io", "v1beta1", "inferenceservices"))
OWNER = owner_label(INFERENCESERVICE.kind)


def register(registry: kopf.OperatorRegistry) -> None:
    for group, version, plural in SERVING_KINDS:
        @kopf.on.event(group, version, plural, labels={OWNER: kopf.PRESENT}, registry=registry,
                       id=f"{group}-{plural}-changed")
        def child_changed(*, body: kopf.Body, namespace: str | None, name: str, memo: Any, **_: Any) -> None:
            status = body.get("status") or {}
            if not status:  # just applied by the operator itself: nothing to tell its owner yet
                return
            owner = (body.get("metadata", {}).get("labels") or {})[OWNER]
            seen = [name, status.get("observedGeneration"), status.get("conditions")]
            memo.wakeups(ObjectRef(INFERENCESERVICE.plural, namespace or "", owner), WORKLOAD, marker(seen))
