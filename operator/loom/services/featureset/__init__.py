"""FeatureSet reconcile: a Feast feature view over one DataLake table, kept in the registry, and the
table's snapshots materialized to the online store behind a data-quality gate.

observe (reads only) -> decide (pure) -> act (writes only). Status is derived from the systems,
never from memory: what was materialized or rejected is read back from the records the runs keep
next to the pin in the registry database."""

from __future__ import annotations

from loom.api.featureset import FeatureSetSpec
from loom.domain.outcome import Outcome
from loom.services.context import ReconcileContext
from loom.services.featureset import act, decide, observe
from loom.services.featureset.definition import feature_view_definition
from loom.services.featureset.deletion import delete

__all__ = ["delete", "feature_view_definition", "reconcile"]


def reconcile(spec: FeatureSetSpec, ctx: ReconcileContext) -> Outcome:
    return act.act(decide.decide(spec, observe.observe(spec, ctx), ctx.now), ctx)
