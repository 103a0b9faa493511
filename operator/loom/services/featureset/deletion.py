"""Cleaning up after a deleted FeatureSet: its workloads (materializations) always go, by the owner
label, whatever else fails; its feature view, online data, pin and records leave Feast when the
FeatureSet ever applied a definition (its status has the view's version). The lake is never touched.

A Redis online store is reached before the registry is changed: Feast deletes the view from the
registry before it tears down the view's keys, so a teardown that failed would leave keys that no
later attempt could find (the view that names them is gone)."""

from __future__ import annotations

from loom.api.featureset import FeatureSetSpec
from loom.builders.materialize import CONNECTION_KEY, featureset_label
from loom.domain.feature_views import feast_name
from loom.drivers import feast_store
from loom.drivers.feast_store import OnlineKind
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
    return cleanup + _remove_from_feast(spec, ctx)


def _remove_from_feast(spec: FeatureSetSpec, ctx: ReconcileContext) -> Cleanup:
    view = feast_name(ctx.name)
    registry = spec.registry.uri or ctx.config.feast_registry_uri
    in_registry = f"feature view {view} in the Feast registry {redact(registry)}"
    online = f"online data of feature view {view} in the {OnlineKind(spec.online.store).value} online store"
    both = f"{in_registry} and its online data"
    connection = None
    ref = spec.online.connection_secret_ref
    if ref is not None:
        try:
            values = ctx.kube.get_secret(ctx.namespace, ref.name)
        except Exception as error:
            return Cleanup(left=(Left(both, describe(error)),))
        key = ref.key or CONNECTION_KEY
        if key not in values:
            return Cleanup(left=(Left(both, f"Secret {ctx.namespace}/{ref.name} has no key {key!r}"),))
        connection = values[key]
    secrets = (connection,) if connection else ()
    settings = store_settings(spec, ctx.namespace, ctx.config, connection)
    try:
        feast_store.ping_online(settings)
    except Exception as error:  # the online store cannot be reached: the registry is left as it is
        where = online if connection else f"{online} {redact(settings.online_connection)}"
        return Cleanup(left=(Left(in_registry, "kept until its online data can be removed"),
                             Left(where, describe(error, secrets))))
    try:
        removed = act.remove_definition(settings, view, f"{ctx.namespace}/{ctx.name}")
    except Exception as error:  # an unparseable URL, an unreachable registry
        return Cleanup(left=(Left(both, describe(error, secrets)),))
    return Cleanup((f"feature view {view} and its online data",) if removed else ())

