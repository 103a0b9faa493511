"""Carry out an InferenceService decision's actions, in order; the canary analysis's queries run before
(`analyse`, in the service's reconcile), since the decision needs their results. An action that fails
stops the ones after it: its condition reports the failure and the reconcile is retried after the
dependency backoff. What the serving target could not do of the split is posted as a Warning."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

from loom.api.inferenceservice import Target
from loom.api.kinds import INFERENCESERVICE
from loom.builders.canary_queries import analysis_query
from loom.domain.outcome import Decision, Event, Outcome, failed_action
from loom.domain.rollout import MetricResult, QueryMetrics, RemoveAnnotation
from loom.drivers import mlflow_tracking
from loom.drivers.prometheus import Prometheus
from loom.services.context import ReconcileContext
from loom.services.inferenceservice.actions import Action, MoveAlias, Serve
from loom.services.inferenceservice.backend import ServingBackend

log = logging.getLogger(__name__)

REASONS = {Serve: "ServeFailed", MoveAlias: "RegistryUnavailable", RemoveAnnotation: "AnnotationNotRemoved"}
# How soon a retired revision still routed to is looked at again (the router reloads within a second).
DRAIN_CHECK = timedelta(seconds=1)
NO_PROMETHEUS = "no Prometheus is configured for the canary analysis (LOOM_PROMETHEUS_URL)"


def analyse(query: QueryMetrics, target: Target, backend: ServingBackend, ctx: ReconcileContext,
            at: datetime) -> tuple[MetricResult, ...]:
    """Run one analysis's checks against Prometheus at `at`; a check without a number says why."""
    if ctx.config.prometheus_url is None:
        return tuple(MetricResult(q.name, None, NO_PROMETHEUS) for q in query.queries)
    source = backend.metric_source(target)
    prometheus = Prometheus(ctx.config.prometheus_url)
    try:
        return tuple(prometheus.measure(q.name, analysis_query(q, source, query.revision, ctx.namespace), at)
                     for q in query.queries)
    finally:
        prometheus.close()


def act(decision: Decision[Action | QueryMetrics], target: Target, backend: ServingBackend,
        ctx: ReconcileContext) -> Outcome:
    outcome = decision.outcome
    for action in decision.actions:
        if isinstance(action, QueryMetrics):
            continue  # answered before this decision was taken
        try:
            if isinstance(action, Serve):
                applied = backend.apply(action.serving, target)
                url = {"url": applied.url} if applied.url is not None else {}
                events = outcome.events + tuple(Event("Warning", "SplitNotApplied", w) for w in applied.warnings)
                due = outcome.requeue_at
                if applied.draining:  # a retired revision goes once nothing routes to it any more
                    drained = ctx.now + DRAIN_CHECK
                    due = drained if due is None else min(due, drained)
                outcome = replace(outcome, fields={**outcome.fields, **url}, events=events, requeue_at=due)
            elif isinstance(action, MoveAlias):
                mlflow_tracking.set_alias(action.tracking_uri, action.model, action.alias, action.version)
            else:
                ctx.kube.remove_annotation(INFERENCESERVICE, ctx.namespace, ctx.name, action.key)
        except Exception as error:  # an unreachable registry, API server or executor
            log.warning("%s failed: %s", type(action).__name__, error)
            condition, kept = (None, ()) if isinstance(action, RemoveAnnotation) else (action.condition, action.fields)
            return failed_action(outcome, condition, kept, REASONS[type(action)], str(error),
                                 ctx.config.dependency_retry_seconds)
    return outcome
