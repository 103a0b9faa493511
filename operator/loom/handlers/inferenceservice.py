"""Kopf handlers for inferenceservices: the shared reconcile (brought back by its TrainingJob's and
FeatureSet's changes, see `links`, by its serving processes' changes, and by the rollout's due times),
and with the local executor the finalizer that stops its model servers and router, retried a bounded
number of times before it lets go. In a cluster its Seldon or KServe children carry owner references,
and Kubernetes' garbage collector removes them; the operator only drops its canary gauges, without a
finalizer (a deletion it misses leaves a stale gauge, never a stuck object)."""

from __future__ import annotations

from typing import Any

import kopf

from loom.api.kinds import INFERENCESERVICE
from loom.api.meta import GROUP, VERSION
from loom.config import ExecutorKind, OperatorConfig
from loom.handlers import deletion, reconcile
from loom.services import inferenceservice


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    local = config.executor == ExecutorKind.LOCAL
    # Local servers are processes only the finalizer stops: none starts before the finalizer is in place.
    reconcile.register(registry, config, INFERENCESERVICE, inferenceservice.reconcile, guarded=local)
    if local:  # every model server and the router go; the registry's versions and aliases stay
        deletion.register(registry, config, INFERENCESERVICE, "servers-cleanup", inferenceservice.delete)
        return

    @kopf.on.delete(GROUP, VERSION, INFERENCESERVICE.plural, id="gauges", registry=registry, optional=True)
    def forget(body: kopf.Body, **_: Any) -> None:
        inferenceservice.forget(body.metadata.namespace or "", body.metadata.name or "")
