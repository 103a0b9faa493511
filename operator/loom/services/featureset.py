"""FeatureSet reconcile: a Feast feature view over a DataLake table."""

from __future__ import annotations

from loom.api.featureset import FeatureSetSpec
from loom.api.kinds import DATALAKE
from loom.services.context import ReconcileContext
from loom.services.references import check_reference
from loom.services.status import Observed, Outcome

SOURCE_READY = "SourceReady"
REGISTRY_READY = "RegistryReady"


def reconcile(spec: FeatureSetSpec, ctx: ReconcileContext) -> Outcome:
    ref = spec.source.data_lake_ref
    source, lake = check_reference(ctx, DATALAKE, ref.name, SOURCE_READY)
    if lake is not None and source.status:
        tables = {t["name"] for t in lake["spec"]["tables"]}
        if ref.table not in tables:
            source = Observed(
                SOURCE_READY, False, "TableNotFound", f'DataLake "{ref.name}" has no table "{ref.table}"'
            )
    if not source.status:
        return Outcome((source,), retry_after=ctx.config.dependency_retry_seconds)
    pending = "Feast registry reconciliation is not available in this operator version"
    return Outcome((source, Observed(REGISTRY_READY, None, "Pending", pending)))
