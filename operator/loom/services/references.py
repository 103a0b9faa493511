"""Links between Loom resources: a resource is only as ready as what it consumes."""

from __future__ import annotations

from typing import Any

from loom.api.kinds import Kind
from loom.domain.outcome import READY, Observed
from loom.services.context import ReconcileContext


def ready_condition(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The Ready condition of a Loom object, if it has one for its current generation."""
    status = obj.get("status") or {}
    generation = obj.get("metadata", {}).get("generation")
    for cond in status.get("conditions") or []:
        if cond.get("type") == READY and cond.get("observedGeneration", generation) == generation:
            return cond
    return None


def check_reference(
    ctx: ReconcileContext, kind: Kind, name: str, condition_type: str
) -> tuple[Observed, dict[str, Any] | None]:
    """Observe whether the referenced resource exists and is Ready; return it for further checks."""
    obj = ctx.kube.get_loom(kind, ctx.namespace, name)
    if obj is None:
        return Observed(condition_type, False, f"{kind.kind}NotFound", f'{kind.kind} "{name}" does not exist'), None
    ready = ready_condition(obj)
    if ready is None or ready.get("status") != "True":
        detail = f": {ready.get('message')}" if ready and ready.get("message") else ""
        return Observed(condition_type, False, f"{kind.kind}NotReady", f'{kind.kind} "{name}" is not Ready{detail}'), obj
    return Observed(condition_type, True, f"{kind.kind}Ready", f'{kind.kind} "{name}" is Ready'), obj
