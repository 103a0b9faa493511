"""What `kubectl loom` asks of the operator, as merge patches of the object: the annotations it
honours (loom.dev/promote and loom.dev/abort on an InferenceService's canary, loom.dev/retrain on a
TrainingJob; each removed once answered) and a TrainingJob's spec.suspend."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loom.api.kinds import INFERENCESERVICE, TRAININGJOB, Kind
from loom.domain.rollout import ABORT_ANNOTATION, PROMOTE_ANNOTATION
from loom.domain.training import RETRAIN_ANNOTATION

Patch = dict[str, Any]


@dataclass(frozen=True)
class Request:
    kind: Kind
    help: str
    said: str  # what was done, for the user
    patch: Callable[[datetime], Patch]


def _flag(key: str) -> Callable[[datetime], Patch]:
    return lambda now: {"metadata": {"annotations": {key: "true"}}}


def _retrain(now: datetime) -> Patch:
    """The request's time is its value, so each request names a run of its own."""
    return {"metadata": {"annotations": {RETRAIN_ANNOTATION: now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}}


def _suspend(value: bool) -> Callable[[datetime], Patch]:
    return lambda now: {"spec": {"suspend": value}}


REQUESTS: dict[str, Request] = {
    "promote": Request(INFERENCESERVICE, "promote the canary under analysis now",
                       f"promotion of the canary requested ({PROMOTE_ANNOTATION})", _flag(PROMOTE_ANNOTATION)),
    "abort": Request(INFERENCESERVICE, "roll the canary under analysis back",
                     f"rollback of the canary requested ({ABORT_ANNOTATION})", _flag(ABORT_ANNOTATION)),
    "retrain": Request(TRAININGJOB, "start a new run of the current FeatureSet snapshot",
                       f"new run requested ({RETRAIN_ANNOTATION})", _retrain),
    "suspend": Request(TRAININGJOB, "suspend the current run", "suspended (spec.suspend=true)", _suspend(True)),
    "resume": Request(TRAININGJOB, "resume the current run", "resumed (spec.suspend=false)", _suspend(False)),
}
