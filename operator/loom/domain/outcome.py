"""What a reconcile reports, as plain values: observed conditions, events, and when to look again.
The handlers turn them into status, Kubernetes Events and requeues."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from loom.api.meta import ConditionStatus

READY = "Ready"


@dataclass(frozen=True)
class Observed:
    """One condition as a service observed it; timestamps and generations are added here."""

    type: str
    status: bool | None
    reason: str
    message: str = ""

    @property
    def wire_status(self) -> ConditionStatus:
        if self.status is None:
            return ConditionStatus.UNKNOWN
        return ConditionStatus.TRUE if self.status else ConditionStatus.FALSE


@dataclass(frozen=True)
class Event:
    """Something that happened outside any condition flip (a table recreated, a schema evolved); the
    glue posts it as a Kubernetes Event. Services emit one only when they changed something."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Outcome:
    """What a service reports after one reconcile: conditions, kind-specific status fields, events,
    and when to look again. Two different things:

    - `retry_after` (seconds): an external system failed or could not be reached; the reconcile is
      retried as an error (Kopf's TemporaryError, counted as "error" in metrics).
    - `requeue_at`: nothing to do until that time (a schedule tick, a backoff before retrying a failed
      run); the operator's scheduler brings the object back then. Not an error.

    Waiting for another object or for a workload run needs neither: their changes are followed by
    events and bring the object back by themselves."""

    conditions: tuple[Observed, ...]
    fields: Mapping[str, Any] = field(default_factory=dict)
    retry_after: float | None = None
    events: tuple[Event, ...] = ()
    requeue_at: datetime | None = None

    @property
    def ready(self) -> Observed:
        """Ready is True only when every other condition is; otherwise it carries the first blocker."""
        blockers = [c for c in self.conditions if c.type != READY and c.status is not True]
        explicit = next((c for c in self.conditions if c.type == READY), None)
        if explicit is not None:
            return explicit
        if not blockers:
            return Observed(READY, True, "Ready", "all conditions are satisfied")
        first = blockers[0]
        return Observed(READY, False if first.status is False else None, first.reason, first.message)


A = TypeVar("A")


@dataclass(frozen=True)
class Decision(Generic[A]):
    """What a service's pure `decide` returns: the outcome to report and the actions (typed values of
    the service's own) that its `act` step carries out to get there."""

    outcome: Outcome
    actions: tuple[A, ...] = ()


def failed_action(outcome: Outcome, condition: str | None, fields: tuple[str, ...], reason: str, message: str,
                  retry_after: float | None) -> Outcome:
    """What a decision's outcome becomes when carrying out one of its actions failed: the action's
    condition reports the failure, the conditions after it are left as they were (this reconcile did
    not get that far), and the status `fields` that were true only once the action was done are not
    written."""
    conditions = list(outcome.conditions)
    index = next((i for i, c in enumerate(conditions) if c.type == condition), None)
    if index is not None:
        conditions[index:] = [Observed(conditions[index].type, False, reason, message)]
    kept = {k: v for k, v in outcome.fields.items() if k not in fields}
    return Outcome(tuple(conditions), kept, retry_after=retry_after, events=outcome.events,
                   requeue_at=outcome.requeue_at)
