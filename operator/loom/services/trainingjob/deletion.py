"""Cleaning up after a deleted TrainingJob: its runs go (a running one is stopped) by the owner label,
as Kubernetes' garbage collector would remove the TrainJobs it owns, which the local executor has no
stand-in for. What MLflow holds (runs, registered versions, aliases) is the record of what was
trained and served, and is never touched."""

from __future__ import annotations

from loom.builders.train import trainingjob_label
from loom.services.context import ReconcileContext
from loom.services.deletion import Cleanup, remove_workloads


def delete(ctx: ReconcileContext) -> Cleanup:
    return remove_workloads(ctx.executor, ctx.namespace, trainingjob_label(ctx.name))
