"""A TrainingJob's decision, pure: its data is ready when the FeatureSet and the labels' DataLake are.
A reference that is not ready needs no requeue: its change brings the TrainingJob back (handlers.links)."""

from __future__ import annotations

from datetime import datetime

from loom.api.trainingjob import TrainingJobSpec
from loom.domain.outcome import Decision, Observed, Outcome
from loom.services.references import reference_condition
from loom.services.trainingjob.observe import TrainingJobObserved

DATA_READY = "DataReady"
SUCCEEDED = "Succeeded"


def decide(spec: TrainingJobSpec, observed: TrainingJobObserved, now: datetime) -> Decision[None]:
    references = (reference_condition(observed.features, DATA_READY), reference_condition(observed.labels, DATA_READY))
    blocker = next((c for c in references if not c.status), None)
    if blocker is not None:
        return Decision(Outcome((blocker,)))
    return Decision(Outcome((
        Observed(DATA_READY, True, "DataReady", "features and labels are Ready"),
        Observed(SUCCEEDED, None, "Pending", "training is not available in this operator version"),
    )))
