"""InferenceService reconcile: serve a registered model and roll new versions out by canary."""

from __future__ import annotations

from loom.api.inferenceservice import InferenceServiceSpec
from loom.api.kinds import TRAININGJOB
from loom.domain.outcome import Observed, Outcome
from loom.services.context import ReconcileContext
from loom.services.references import check_reference

MODEL_READY = "ModelReady"
PREDICTOR_READY = "PredictorReady"


def reconcile(spec: InferenceServiceSpec, ctx: ReconcileContext) -> Outcome:
    if spec.model.training_job_ref is not None:
        model, _ = check_reference(ctx, TRAININGJOB, spec.model.training_job_ref.name, MODEL_READY)
        if not model.status:
            return Outcome((model,))  # its change brings this InferenceService back (handlers.links)
    else:
        model = Observed(MODEL_READY, True, "ModelUriGiven", f"serving {spec.model.uri}")
    pending = "serving is not available in this operator version"
    return Outcome((model, Observed(PREDICTOR_READY, None, "Pending", pending)))
