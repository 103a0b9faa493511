"""Kopf handlers for trainingjobs: the shared reconcile (brought back by its FeatureSet's snapshots and
its children's status, see `links` and `runs`), and with the local executor the finalizer that stops
and removes its runs, retried a bounded number of times (`deletion_attempts`) before it lets go. In a
cluster the runs carry owner references, and Kubernetes' garbage collector removes them."""

from __future__ import annotations

import kopf

from loom.api.kinds import TRAININGJOB
from loom.config import ExecutorKind, OperatorConfig
from loom.handlers import deletion, reconcile
from loom.services import trainingjob


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    local = config.executor == ExecutorKind.LOCAL
    # Local runs are processes only the finalizer stops: none starts before the finalizer is in place.
    reconcile.register(registry, config, TRAININGJOB, trainingjob.reconcile, guarded=local)
    if local:  # every run goes, a running one stopped; MLflow's record of them stays
        deletion.register(registry, config, TRAININGJOB, "runs-cleanup", trainingjob.delete)
