"""Status bookkeeping shared by every kind: conditions that keep their transition time, and the
decision whether anything changed at all (status is written only when it did)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loom.api.meta import Condition, ConditionStatus, StatusBase
from loom.domain.outcome import READY, Observed, Outcome


@dataclass(frozen=True)
class Transition:
    """A condition that flipped or changed reason in this reconcile; becomes a Kubernetes Event."""

    condition: Condition
    previous: ConditionStatus | None


def merge_conditions(
    existing: Sequence[Condition], observed: Sequence[Observed], generation: int | None, now: datetime
) -> tuple[list[Condition], list[Transition]]:
    """Merge observations into the current conditions; lastTransitionTime moves only on a flip."""
    by_type = {c.type: c for c in existing}
    merged: list[Condition] = []
    transitions: list[Transition] = []
    for obs in observed:
        old = by_type.pop(obs.type, None)
        flipped = old is None or old.status != obs.wire_status
        new = Condition(
            type=obs.type,
            status=obs.wire_status,
            reason=obs.reason,
            message=obs.message,
            last_transition_time=now if flipped or old is None else old.last_transition_time,
            observed_generation=generation,
        )
        merged.append(new)
        if old is None or flipped or old.reason != obs.reason:
            transitions.append(Transition(new, None if old is None else ConditionStatus(old.status)))
    merged.extend(by_type.values())  # conditions owned by someone else are kept as they are
    return merged, transitions


def next_status(
    model: type[StatusBase],
    current: Mapping[str, Any] | None,
    outcome: Outcome,
    generation: int | None,
    now: datetime,
) -> tuple[dict[str, Any] | None, list[Transition]]:
    """The status to write, or None when it equals the current one (no spurious writes)."""
    old = model.model_validate(current or {})
    observed = (*[c for c in outcome.conditions if c.type != READY], outcome.ready)
    conditions, transitions = merge_conditions(old.conditions, observed, generation, now)
    merged = {**old.model_dump(), **dict(outcome.fields)}
    merged.update(observed_generation=generation, conditions=conditions)
    new = model.model_validate(merged)
    if new == old:
        return None, transitions
    wire = new.to_wire()
    # A merge patch keeps what it does not mention: a field that went away is written as null.
    for name, info in model.model_fields.items():
        if getattr(new, name) is None and getattr(old, name) is not None:
            wire[info.alias or name] = None
    return wire, transitions
