"""Cleaning up after a deleted FeatureSet: its workloads (materializations) always go, by the owner
label, whatever else fails; its feature view, online data, pin and records leave Feast when the
FeatureSet ever applied a definition (its status has the view's version). The lake is never touched."""

from __future__ import annotations

from loom.api.featureset import FeatureSetSpec
from loom.builders.materialize import CONNECTION_KEY, featureset_label
from loom.domain.feature_views import feast_name
from loom.services.context import ReconcileContext
from loom.services.deletion import Cleanup, Left, describe, redact, remove_workloads
from loom.services.featureset import act
from loom.services.featureset.definition import store_settings

APPLIED = "featureViewVersion"


def delete(spec: FeatureSetSpec | None, ctx: ReconcileContext) -> Cleanup:
    """One attempt; `spec` is None when it is invalid (then nothing but workloads can exist)."""
    cleanup = remove_workloads(ctx.executor, ctx.namespace, featureset_label(ctx.name))
    if spec is None or not ctx.status.get(APPLIED):
        return cleanup
    view = feast_name(ctx.name)
    registry = spec.registry.uri or ctx.config.feast_registry_uri
    what = f"feature view {view} in the Feast registry {redact(registry)} and its online data ({spec.online.store.value})"
    connection = None
    ref = spec.online.connection_secret_ref
    if ref is not None:
        try:
            values = ctx.kube.get_secret(ctx.namespace, ref.name)
        except Exception as error:
            return cleanup + Cleanup(left=(Left(what, describe(error)),))
        key = ref.key or CONNECTION_KEY
        if key not in values:
            return cleanup + Cleanup(left=(Left(what, f"Secret {ctx.namespace}/{ref.name} has no key {key!r}"),))
        connection = values[key]
    secrets = (connection,) if connection else ()
    try:
        settings = store_settings(spec, ctx.namespace, ctx.config, connection)
        removed = act.remove_definition(settings, view, f"{ctx.namespace}/{ctx.name}")
    except Exception as error:  # an unparseable URL, an unreachable registry or online store
        return cleanup + Cleanup(left=(Left(what, describe(error, secrets)),))
    return cleanup + Cleanup((f"feature view {view} and its online data",) if removed else ())
