"""Failed materialization runs: which failures may heal by themselves, and how long to wait before
trying the same input again.

A run fails deterministically when its input cannot be materialized (a value that does not convert,
a column or snapshot that is not there): running it again changes nothing until the spec or the
lake table changes. The component says so by its exit status (`EXIT_INPUT_ERROR`), and neither the
executor nor this service runs it again for the same input. Anything else (an unreachable registry
or online store, a killed process) may heal, so it is retried with a backoff that doubles per attempt."""

from __future__ import annotations

from datetime import datetime, timedelta

from loom.api.featureset import MaterializationFailure
from loom.domain.workloads import EXIT_INPUT_ERROR, WorkloadStatus

MAX_BACKOFF = timedelta(hours=1)


def is_transient(run: WorkloadStatus) -> bool:
    return run.exit_code != EXIT_INPUT_ERROR


def same_input(failure: MaterializationFailure | None, generation: int | None, snapshot: int, schema_id: int,
               version: str) -> bool:
    """Whether a recorded failure was for exactly this input (spec, table snapshot and schema)."""
    return failure is not None and (failure.generation, failure.snapshot_id, failure.schema_id,
                                    failure.feature_view_version) == (generation, snapshot, schema_id, version)


def retry_at(failure: MaterializationFailure, base_seconds: float) -> datetime:
    """When a transiently failed input is tried again: base, 2x base, 4x base, ... at most MAX_BACKOFF."""
    delay = min(timedelta(seconds=base_seconds * 2 ** min(failure.attempts - 1, 16)), MAX_BACKOFF)
    return failure.time + delay
