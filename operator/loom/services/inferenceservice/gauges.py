"""The rollout's state as the operator's Prometheus gauges, as Flagger exports its canaries': the
canary's weight, its failed checks, and each check's last result, so a dashboard or an alert needs no
kubectl. Set from the status fields a reconcile wrote; gone with the InferenceService."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import Gauge

from loom.api.inferenceservice import Analysis
from loom.metrics import CANARY_CHECK_PASSED, CANARY_CHECK_VALUE, CANARY_FAILED_CHECKS, CANARY_WEIGHT


def export(namespace: str, name: str, fields: Mapping[str, Any]) -> None:
    """Gauges from the rollout's status fields; a reconcile that wrote none (blocked) changes nothing."""
    if "canary_weight" not in fields:
        return
    CANARY_WEIGHT.labels(namespace, name).set(fields["canary_weight"] or 0)
    CANARY_FAILED_CHECKS.labels(namespace, name).set(fields.get("failed_checks") or 0)
    analysis: Analysis | None = fields.get("last_analysis")
    _forget_checks(namespace, name, keep={r.name for r in analysis.results} if analysis else set())
    for result in analysis.results if analysis else ():
        CANARY_CHECK_PASSED.labels(namespace, name, result.name).set(1 if result.passed else 0)
        if result.value is None:
            _remove(CANARY_CHECK_VALUE, (namespace, name, result.name))
        else:
            CANARY_CHECK_VALUE.labels(namespace, name, result.name).set(result.value)


def forget(namespace: str, name: str) -> None:
    """Every gauge of a deleted InferenceService."""
    for gauge in (CANARY_WEIGHT, CANARY_FAILED_CHECKS):
        _remove(gauge, (namespace, name))
    _forget_checks(namespace, name, keep=set())


def _forget_checks(namespace: str, name: str, keep: set[str]) -> None:
    """Per-metric gauges of checks the last analysis no longer has."""
    for gauge in (CANARY_CHECK_PASSED, CANARY_CHECK_VALUE):
        for labels in _children(gauge):
            if labels[:2] == (namespace, name) and labels[2] not in keep:
                _remove(gauge, labels)


def _children(gauge: Gauge) -> list[tuple[str, ...]]:
    return [(s.labels["namespace"], s.labels["name"], s.labels["metric"])
            for family in gauge.collect() for s in family.samples]


def _remove(gauge: Gauge, labels: tuple[str, ...]) -> None:
    try:
        gauge.remove(*labels)
    except KeyError:  # never set
        pass
