"""An InferenceService's decision, pure: its model is available when given by URI or when the
TrainingJob it names is Ready; that TrainingJob's change brings it back (handlers.links)."""

from __future__ import annotations

from datetime import datetime

from loom.api.inferenceservice import InferenceServiceSpec
from loom.domain.outcome import Decision, Observed, Outcome
from loom.services.inferenceservice.observe import InferenceServiceObserved
from loom.services.inferenceservice.rollout import PREDICTOR_READY
from loom.services.references import reference_condition

MODEL_READY = "ModelReady"


def decide(spec: InferenceServiceSpec, observed: InferenceServiceObserved, now: datetime) -> Decision[None]:
    if observed.training_job is not None:
        model = reference_condition(observed.training_job, MODEL_READY)
        if not model.status:
            return Decision(Outcome((model,)))
    else:
        model = Observed(MODEL_READY, True, "ModelUriGiven", f"serving {spec.model.uri}")
    pending = Observed(PREDICTOR_READY, None, "Pending", "serving is not available in this operator version")
    return Decision(Outcome((model, pending)))
