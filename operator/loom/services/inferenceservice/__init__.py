"""InferenceService reconcile: serve a registered model version and roll new versions out by a
metric-gated canary (Flagger's rules, `rollout.py`), on Seldon Core 2 or KServe in a cluster and on
the local executor's MLServer processes and router on one machine.

observe (reads only) -> decide (pure) -> [the analysis's queries, then decide again with the results]
-> act (writes only)."""

from __future__ import annotations

from loom.api.inferenceservice import InferenceServiceSpec
from loom.builders.labels import owned_by
from loom.builders.local_serving import OWNER_KIND
from loom.config import ExecutorKind
from loom.domain.outcome import Outcome
from loom.domain.rollout import QueryMetrics
from loom.drivers.kube import default_api
from loom.gpuprofiles import cached_profiles
from loom.services.context import ReconcileContext
from loom.services.deletion import Cleanup, remove_workloads
from loom.services.inferenceservice import gauges
from loom.services.inferenceservice.act import act, analyse
from loom.services.inferenceservice.backend import ServingBackend
from loom.services.inferenceservice.cluster_serving import ClusterServing
from loom.services.inferenceservice.decide import Settings, decide
from loom.services.inferenceservice.local_serving import LocalServing
from loom.services.inferenceservice.observe import observe
from loom.services.unavailable import read

__all__ = ["delete", "forget", "reconcile"]

LOCAL_IMAGE = "local"


def backend(ctx: ReconcileContext) -> ServingBackend:
    config = ctx.config
    if config.executor == ExecutorKind.LOCAL:
        return LocalServing(ctx.executor, config.tracking_uri, config.models_dir, config.prometheus_targets_dir)
    return ClusterServing(default_api(), config.field_manager)


def settings(ctx: ReconcileContext) -> Settings:
    config = ctx.config
    return Settings(namespace=ctx.namespace, name=ctx.name, owner=ctx.owner,
                    image=config.image_serve or LOCAL_IMAGE, retry_seconds=config.dependency_retry_seconds,
                    poll_seconds=config.registry_poll_seconds,
                    profiles=read(lambda: cached_profiles(config.gpu_profiles_dir)))


def reconcile(spec: InferenceServiceSpec, ctx: ReconcileContext) -> Outcome:
    serving = backend(ctx)
    observed = observe(spec, ctx, serving)
    how = settings(ctx)
    decision = decide(spec, observed, how, ctx.now)
    query = next((a for a in decision.actions if isinstance(a, QueryMetrics)), None)
    if query is not None:
        decision = decide(spec, observed, how, ctx.now, analyse(query, spec.target, serving, ctx, ctx.now))
    outcome = act(decision, spec.target, serving, ctx)
    gauges.export(ctx.namespace, ctx.name, outcome.fields)
    return outcome


def forget(namespace: str, name: str) -> None:
    """What the operator itself holds of a deleted InferenceService: its canary gauges."""
    gauges.forget(namespace, name)


def delete(ctx: ReconcileContext) -> Cleanup:
    """Local executor: the model servers and the router go (a cluster's children go with their owner
    reference), and the router's scrape target; the registry is never touched."""
    forget(ctx.namespace, ctx.name)
    cleanup = remove_workloads(ctx.executor, ctx.namespace, owned_by(OWNER_KIND, ctx.name))
    LocalServing(ctx.executor, ctx.config.tracking_uri, ctx.config.models_dir,
                 ctx.config.prometheus_targets_dir).remove(ctx.namespace, ctx.name)
    return cleanup
