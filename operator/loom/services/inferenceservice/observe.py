"""What an InferenceService's decision reads: the TrainingJob its model comes from, if it names one."""

from __future__ import annotations

from dataclasses import dataclass

from loom.api.inferenceservice import InferenceServiceSpec
from loom.api.kinds import TRAININGJOB
from loom.services.context import ReconcileContext
from loom.services.references import Reference, observe_reference


@dataclass(frozen=True)
class InferenceServiceObserved:
    training_job: Reference | None


def observe(spec: InferenceServiceSpec, ctx: ReconcileContext) -> InferenceServiceObserved:
    ref = spec.model.training_job_ref
    return InferenceServiceObserved(
        training_job=None if ref is None else observe_reference(ctx.kube, TRAININGJOB, ctx.namespace, ref.name)
    )
