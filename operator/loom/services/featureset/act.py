"""Carry out a FeatureSet decision's actions, in order, and nothing else: apply or remove Feast
definitions, submit or delete workloads.

An action that fails stops the ones after it (a run never starts against a registry that does not
hold its definition). Its condition then reports the failure in place of what the decision expected,
and the conditions after it are left as they were: this reconcile did not get that far. A definition
that conflicts with another FeatureSet's is reported and not retried (it stays so until one of them
changes); any other failure is an external system's, retried after `retry_seconds`."""

from __future__ import annotations

import logging

from loom.domain.feature_views import PinRef
from loom.domain.outcome import Decision, Outcome, failed_action
from loom.drivers import feast_pins, feast_store
from loom.drivers.feast_store import DefinitionConflict, StoreSettings
from loom.executors.base import Executor
from loom.features.materialize import MATERIALIZED, REJECTED
from loom.services.context import ReconcileContext
from loom.services.featureset.actions import Action, ApplyDefinition, DeleteRun, SubmitRun

log = logging.getLogger(__name__)

REASONS = {ApplyDefinition: "RegistryUnavailable", SubmitRun: "SubmitFailed", DeleteRun: "DeleteFailed"}


def act(decision: Decision[Action], ctx: ReconcileContext) -> Outcome:
    for action in decision.actions:
        try:
            _carry_out(action, ctx.executor)
        except DefinitionConflict as conflict:
            return _failed(decision.outcome, action, "NameConflict", str(conflict), None)
        except Exception as error:  # an unreachable registry or API server, a missing Secret key
            log.warning("%s failed: %s", type(action).__name__, error)
            return _failed(decision.outcome, action, REASONS[type(action)], str(error),
                           ctx.config.dependency_retry_seconds)
    return decision.outcome


def _carry_out(action: Action, executor: Executor) -> None:
    if isinstance(action, ApplyDefinition):
        feast_store.apply(action.settings, action.definition)
    elif isinstance(action, SubmitRun):
        executor.submit(action.workload)
    else:
        executor.delete(action.namespace, action.name)


def _failed(outcome: Outcome, action: Action, reason: str, message: str, retry: float | None) -> Outcome:
    return failed_action(outcome, action.condition, action.fields, reason, message, retry)


def remove_definition(settings: StoreSettings, view: str, owner: str) -> bool:
    """Remove the feature view, its online data, its pin and its records; the lake is never touched.
    False when the registry held no view of this FeatureSet; a view of the same name that belongs to
    another FeatureSet is left alone."""
    try:
        removed = feast_store.remove(settings, view, owner)
    except DefinitionConflict:
        return False
    pin = PinRef(settings.registry_uri, settings.project, view)
    feast_pins.drop(pin)
    feast_pins.remove_records(pin, [MATERIALIZED, REJECTED])
    return removed
