"""TrainingJob reconcile: train on a FeatureSet's training set, track and register in MLflow. So far it
judges whether its data is ready; training itself is not in this operator version."""

from __future__ import annotations

from loom.api.trainingjob import TrainingJobSpec
from loom.domain.outcome import Outcome
from loom.services.context import ReconcileContext
from loom.services.trainingjob.decide import decide
from loom.services.trainingjob.observe import observe


def reconcile(spec: TrainingJobSpec, ctx: ReconcileContext) -> Outcome:
    return decide(spec, observe(spec, ctx), ctx.now).outcome
