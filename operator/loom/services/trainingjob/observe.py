"""What a TrainingJob's decision reads: the FeatureSet and the DataLake its dataset names."""

from __future__ import annotations

from dataclasses import dataclass

from loom.api.kinds import DATALAKE, FEATURESET
from loom.api.trainingjob import TrainingJobSpec
from loom.services.context import ReconcileContext
from loom.services.references import Reference, observe_reference


@dataclass(frozen=True)
class TrainingJobObserved:
    features: Reference
    labels: Reference


def observe(spec: TrainingJobSpec, ctx: ReconcileContext) -> TrainingJobObserved:
    return TrainingJobObserved(
        features=observe_reference(ctx.kube, FEATURESET, ctx.namespace, spec.dataset.feature_set_ref.name),
        labels=observe_reference(ctx.kube, DATALAKE, ctx.namespace, spec.dataset.labels.data_lake_ref.name),
    )
