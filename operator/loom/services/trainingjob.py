"""TrainingJob reconcile: train on a FeatureSet's training set, track and register in MLflow."""

from __future__ import annotations

from loom.api.kinds import DATALAKE, FEATURESET
from loom.api.trainingjob import TrainingJobSpec
from loom.domain.outcome import Observed, Outcome
from loom.services.context import ReconcileContext
from loom.services.references import check_reference

DATA_READY = "DataReady"
SUCCEEDED = "Succeeded"


def reconcile(spec: TrainingJobSpec, ctx: ReconcileContext) -> Outcome:
    features, _ = check_reference(ctx, FEATURESET, spec.dataset.feature_set_ref.name, DATA_READY)
    labels, _ = check_reference(ctx, DATALAKE, spec.dataset.labels.data_lake_ref.name, DATA_READY)
    blocker = next((c for c in (features, labels) if not c.status), None)
    if blocker is not None:
        return Outcome((blocker,))  # its change brings this TrainingJob back (handlers.links)
    pending = "training is not available in this operator version"
    return Outcome((Observed(DATA_READY, True, "DataReady", "features and labels are Ready"),
                    Observed(SUCCEEDED, None, "Pending", pending)))
