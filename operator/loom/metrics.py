"""Prometheus metrics of the operator itself (per-kind reconcile counts, durations, errors)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
