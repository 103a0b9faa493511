"""Reconcile logic per kind: observe, compare with desired, act, report an Outcome. Level-based, idempotent."""
