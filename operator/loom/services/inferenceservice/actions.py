"""What an InferenceService decision asks its act step to do (values only). The rollout's own actions
(domain.rollout: weights, promotions, rollbacks, retirements) are folded into one level-based `Serve`
of the whole wanted layout, so drift in the serving target is repaired on every reconcile."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from loom.domain.rollout import RemoveAnnotation
from loom.domain.serving import Serving
from loom.services.inferenceservice.rollout import CANARY_READY, PREDICTOR_READY


@dataclass(frozen=True)
class Serve:
    """Make the serving target run exactly this layout (its revisions, its split)."""

    serving: Serving
    condition: ClassVar[str | None] = PREDICTOR_READY
    fields: ClassVar[tuple[str, ...]] = ("url",)


@dataclass(frozen=True)
class MoveAlias:
    """Promotion under alias tracking: point `alias` of `model` at `version` in the registry."""

    tracking_uri: str
    model: str
    alias: str
    version: str
    condition: ClassVar[str | None] = CANARY_READY
    fields: ClassVar[tuple[str, ...]] = ()


Action = Serve | MoveAlias | RemoveAnnotation
