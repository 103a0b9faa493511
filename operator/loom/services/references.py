"""Links between Loom resources: a resource is only as ready as what it consumes. Observing a
reference (one GET) is apart from judging it (pure), so decide functions take the observed object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from loom.api.kinds import Kind
from loom.domain.outcome import READY, Observed
from loom.drivers.kube import Kube

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Reference:
    """A Loom object named in a spec, as observed: `body` is None when it does not exist."""

    kind: Kind
    name: str
    body: Mapping[str, Any] | None


def observe_reference(kube: Kube, kind: Kind, namespace: str, name: str) -> Reference:
    return Reference(kind, name, kube.get_loom(kind, namespace, name))


def ready_condition(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The Ready condition of a Loom object, if it has one for its current generation."""
    status = obj.get("status") or {}
    generation = obj.get("metadata", {}).get("generation")
    for cond in status.get("conditions") or []:
        if cond.get("type") == READY and cond.get("observedGeneration", generation) == generation:
            return cond
    return None


def reference_condition(ref: Reference, condition_type: str) -> Observed:
    """Whether the referenced resource exists and is Ready, as a condition of the referrer."""
    kind = ref.kind.kind
    if ref.body is None:
        return Observed(condition_type, False, f"{kind}NotFound", f'{kind} "{ref.name}" does not exist')
    ready = ready_condition(ref.body)
    if ready is None or ready.get("status") != "True":
        detail = f": {ready.get('message')}" if ready and ready.get("message") else ""
        return Observed(condition_type, False, f"{kind}NotReady", f'{kind} "{ref.name}" is not Ready{detail}')
    return Observed(condition_type, True, f"{kind}Ready", f'{kind} "{ref.name}" is Ready')


def check_reference(ctx: Any, kind: Kind, name: str, condition_type: str) -> tuple[Observed, Mapping[str, Any] | None]:
    """Observe and judge in one step, for services not yet split into observe and decide."""
    ref = observe_reference(ctx.kube, kind, ctx.namespace, name)
    return reference_condition(ref, condition_type), ref.body


def parsed(model: type[M], raw: Any) -> M | None:
    """A referenced object's spec or status as its API model; None when it does not parse (that
    object's own reconcile reports why)."""
    try:
        return model.model_validate(dict(raw or {}))
    except ValidationError:
        return None
