"""Prometheus metrics of the operator itself (per-kind reconcile counts, durations, errors) and of the
canaries it runs (Flagger's: the weight, and each check's last result)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter(
    "loom_reconcile_total", "Reconciles by kind and result (ok, waiting, invalid, error).", ["kind", "result"]
)
RECONCILE_ERRORS = Counter("loom_reconcile_errors_total", "Reconciles that raised, by kind.", ["kind"])
RECONCILE_SECONDS = Histogram(
    "loom_reconcile_duration_seconds",
    "Wall time of one reconcile, by kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

CANARY = ["namespace", "name"]
CANARY_WEIGHT = Gauge("loom_canary_weight", "Percent of an InferenceService's traffic on its canary revision.", CANARY)
CANARY_FAILED_CHECKS = Gauge("loom_canary_failed_checks", "Failed analyses of the current canary.", CANARY)
CANARY_CHECK_PASSED = Gauge(
    "loom_canary_check_passed", "1 when the last analysis' check passed, 0 when it failed.", [*CANARY, "metric"]
)
CANARY_CHECK_VALUE = Gauge(
    "loom_canary_check_value", "The value the last analysis measured (absent when there was no data).",
    [*CANARY, "metric"],
)
