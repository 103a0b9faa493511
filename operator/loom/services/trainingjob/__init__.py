"""TrainingJob reconcile: distributed training of the model on the FeatureSet's training set, run by
Kubeflow (or local processes), followed to its end, judged by the evaluation gate, registered and
aliased in MLflow, and started again on new features.

observe (reads only) -> decide (pure) -> act (writes only)."""

from __future__ import annotations

from loom.api.trainingjob import TrainingJobSpec
from loom.builders.train import Tracking
from loom.config import ExecutorKind
from loom.domain.outcome import Outcome
from loom.services.context import ReconcileContext
from loom.services.trainingjob.act import act
from loom.services.trainingjob.decide import Settings, decide
from loom.services.trainingjob.deletion import delete
from loom.services.trainingjob.observe import experiment, observe

__all__ = ["delete", "reconcile"]

LOCAL_IMAGE = "local"


def settings(spec: TrainingJobSpec, ctx: ReconcileContext) -> Settings:
    config = ctx.config
    image = spec.image or (config.image_main if config.executor == ExecutorKind.KUBERNETES else None)
    return Settings(
        namespace=ctx.namespace,
        owner=ctx.owner,
        image=image or LOCAL_IMAGE,
        tracking=Tracking(
            uri=spec.tracking.tracking_uri or config.tracking_uri,
            experiment=experiment(spec, ctx.namespace, ctx.name),
            artifact_location=None if spec.tracking.tracking_uri else config.mlflow_artifacts,
        ),
        progress_seconds=config.training_progress_seconds,
        retry_seconds=config.dependency_retry_seconds,
    )


def reconcile(spec: TrainingJobSpec, ctx: ReconcileContext) -> Outcome:
    return act(decide(spec, observe(spec, ctx), settings(spec, ctx), ctx.now), ctx)
