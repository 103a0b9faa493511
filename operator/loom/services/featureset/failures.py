"""Failed materialization runs: which failures may heal by themselves, and how long to wait before
trying the same input again.

A run fails deterministically when its input cannot be materialized (a value that does not convert,
a column or snapshot that is not there): running it again changes nothing until the spec or the
lake table changes. Anything else (an unreachable registry or online store, a killed process) may
heal, so it is retried with a backoff that doubles per attempt. A run's message is the last line it
wrote, which for a Python component that died of an exception is `module.Exception: text`."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from loom.api.featureset import MaterializationFailure
from loom.domain.workloads import WorkloadStatus

# Exceptions a run raises when the data or the definition cannot be materialized as they are.
DETERMINISTIC = frozenset({
    "ValueError", "TypeError", "KeyError", "ArrowInvalid", "ArrowTypeError", "ArrowNotImplementedError",
    "IbisTypeError", "ValidationError", "SnapshotNotPinnable", "NoSuchTableError", "ResolveError",
})
MAX_BACKOFF = timedelta(hours=1)
_EXCEPTION = re.compile(r"^\s*([A-Za-z_][\w.]*?)(?:\([^)]*\))?:\s")


def exception_name(message: str) -> str | None:
    """The class name of the exception a `module.Exception: text` line names, if it names one."""
    match = _EXCEPTION.match(message)
    return match.group(1).rsplit(".", 1)[-1] if match else None


def is_transient(run: WorkloadStatus) -> bool:
    return exception_name(run.message) not in DETERMINISTIC


def same_input(failure: MaterializationFailure | None, generation: int | None, snapshot: int, schema_id: int,
               version: str) -> bool:
    """Whether a recorded failure was for exactly this input (spec, table snapshot and schema)."""
    return failure is not None and (failure.generation, failure.snapshot_id, failure.schema_id,
                                    failure.feature_view_version) == (generation, snapshot, schema_id, version)


def retry_at(failure: MaterializationFailure, base_seconds: float) -> datetime:
    """When a transiently failed input is tried again: base, 2x base, 4x base, ... at most MAX_BACKOFF."""
    delay = min(timedelta(seconds=base_seconds * 2 ** min(failure.attempts - 1, 16)), MAX_BACKOFF)
    return failure.time + delay
