"""Carry out a TrainingJob decision's actions, in order. An action that fails stops the ones after it;
its condition reports the failure, the status fields it would have made true are not written, and the
reconcile is retried after the dependency backoff. A training kind the cluster lacks (no Kubeflow
Trainer, no Training Operator) is not retried: the condition names the fix, and installing it or
changing the spec brings the object back."""

from __future__ import annotations

import logging

from loom.api.kinds import TRAININGJOB
from loom.domain.errors import TrainingKindMissingError
from loom.domain.outcome import Decision, Outcome, failed_action
from loom.drivers import mlflow_tracking
from loom.services.context import ReconcileContext
from loom.services.trainingjob.actions import Action, DeleteRun, MoveAlias, RemoveAnnotation, SubmitRun

log = logging.getLogger(__name__)

REASONS = {SubmitRun: "SubmitFailed", DeleteRun: "DeleteFailed", MoveAlias: "RegistryUnavailable",
           RemoveAnnotation: "AnnotationNotRemoved"}


def act(decision: Decision[Action], ctx: ReconcileContext) -> Outcome:
    for action in decision.actions:
        try:
            if isinstance(action, SubmitRun):
                ctx.executor.submit(action.workload)
            elif isinstance(action, DeleteRun):
                ctx.executor.delete(action.namespace, action.name)
            elif isinstance(action, RemoveAnnotation):
                ctx.kube.remove_annotation(TRAININGJOB, ctx.namespace, ctx.name, action.key)
            else:
                mlflow_tracking.set_alias(action.tracking_uri, action.model, action.alias, action.version)
        except TrainingKindMissingError as missing:
            return _failed(decision.outcome, action, "BackendNotInstalled", str(missing), None)
        except Exception as error:  # an unreachable API server or registry, a missing Secret key
            log.warning("%s failed: %s", type(action).__name__, error)
            return _failed(decision.outcome, action, REASONS[type(action)], str(error),
                           ctx.config.dependency_retry_seconds)
    return decision.outcome


def _failed(outcome: Outcome, action: Action, reason: str, message: str, retry: float | None) -> Outcome:
    return failed_action(outcome, action.condition, action.fields, reason, message, retry)
