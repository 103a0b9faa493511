"""FeatureSet reconcile: a Feast feature view over one DataLake table, kept in the registry, and the
table's snapshots materialized to the online store behind a data-quality gate.

observe (reads only) -> decide (pure) -> act (writes only). Status is derived from the systems,
never from memory: what was materialized or rejected is read back from the records the runs keep
next to the pin in the registry database."""

from __future__ import annotations

from loom.api.featureset import FeatureSetSpec
from loom.builders.materialize import CONNECTION_KEY, featureset_label
from loom.domain.errors import SecretNotFoundError
from loom.domain.feature_views import feast_name
from loom.domain.outcome import Outcome
from loom.services.context import ReconcileContext
from loom.services.featureset import act, decide, observe
from loom.services.featureset.definition import feature_view_definition, store_settings

__all__ = ["delete", "feature_view_definition", "reconcile"]


def reconcile(spec: FeatureSetSpec, ctx: ReconcileContext) -> Outcome:
    return act.act(decide.decide(spec, observe.observe(spec, ctx), ctx.now), ctx)


def delete(spec: FeatureSetSpec, ctx: ReconcileContext) -> bool:
    """Remove the FeatureSet's workloads and its view, online data, pin and records from Feast; the
    lake is never touched. False when the registry held no view of this FeatureSet. Raises
    SecretNotFoundError when the online store's Secret is gone (its data cannot be reached)."""
    connection = None
    ref = spec.online.connection_secret_ref
    if ref is not None:
        values = ctx.kube.get_secret(ctx.namespace, ref.name)
        key = ref.key or CONNECTION_KEY
        if key not in values:
            raise SecretNotFoundError(f"Secret {ctx.namespace}/{ref.name} has no key {key!r}")
        connection = values[key]
    act.remove_runs(ctx.executor, ctx.namespace, featureset_label(ctx.name))
    settings = store_settings(spec, ctx.namespace, ctx.config, connection)
    return act.remove_definition(settings, feast_name(ctx.name), f"{ctx.namespace}/{ctx.name}")
