"""FeatureSet reconcile: a Feast feature view over one DataLake table, kept in the registry, and the
table's snapshots materialized to the online store behind a data-quality gate.

observe (reads only) -> decide (pure) -> act (writes only). Status is derived from the systems,
never from memory: what was materialized or rejected is read back from the records the runs keep
next to the pin in the registry database.

The steps are imported by the first reconcile or deletion, not with the package: they pull in
pyiceberg's SQL catalog (the pins) and the Feast registry, which an operator without FeatureSets never
needs; `definition`, which TrainingJobs read too, stays light (tests/unit/test_startup_imports.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loom.services.featureset.definition import feature_view_definition

if TYPE_CHECKING:
    from loom.api.featureset import FeatureSetSpec
    from loom.domain.outcome import Outcome
    from loom.services.context import ReconcileContext
    from loom.services.deletion import Cleanup

__all__ = ["delete", "feature_view_definition", "reconcile"]


def reconcile(spec: FeatureSetSpec, ctx: ReconcileContext) -> Outcome:
    from loom.services.featureset import act, decide, observe

    return act.act(decide.decide(spec, observe.observe(spec, ctx), ctx.now), ctx)


def delete(spec: FeatureSetSpec | None, ctx: ReconcileContext) -> Cleanup:
    from loom.services.featureset import deletion

    return deletion.delete(spec, ctx)
