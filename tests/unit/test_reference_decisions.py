"""InferenceService decisions on what they reference, as tables: (observed) → conditions."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from loom.api.inferenceservice import InferenceServiceSpec
from loom.api.kinds import TRAININGJOB
from loom.services.inferenceservice.decide import decide as decide_serving
from loom.services.inferenceservice.observe import InferenceServiceObserved
from loom.services.references import Reference
from tests.conftest import ROOT

NOW = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)


def sample(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load(Path(ROOT / "samples" / f"{name}.yaml").read_text())["spec"])


def body(ready: str | None, generation: int = 2, observed: int = 2, message: str = "") -> dict[str, Any]:
    conditions = [] if ready is None else [
        {"type": "Ready", "status": ready, "reason": "X", "message": message, "observedGeneration": observed}
    ]
    return {"metadata": {"generation": generation}, "status": {"conditions": conditions}}


READY, NOT_READY = body("True"), body("False", message="table ratings has no snapshot")
STALE = body("True", generation=3, observed=2)  # Ready for an older generation is not Ready


@pytest.mark.parametrize(("model", "job", "expected"), [
    ({"trainingJobRef": {"name": "two-tower"}}, READY, [("ModelReady", True, "TrainingJobReady"),
                                                        ("PredictorReady", None, "Pending")]),
    ({"trainingJobRef": {"name": "two-tower"}}, None, [("ModelReady", False, "TrainingJobNotFound")]),
    ({"trainingJobRef": {"name": "two-tower"}}, NOT_READY, [("ModelReady", False, "TrainingJobNotReady")]),
    ({"uri": "models:/recommender/3"}, None, [("ModelReady", True, "ModelUriGiven"),
                                              ("PredictorReady", None, "Pending")]),
])
def test_inference_service_waits_for_its_model(
    model: dict[str, Any], job: dict[str, Any] | None, expected: list[tuple[str, bool | None, str]]
) -> None:
    raw = sample("inferenceservice")
    raw["model"] = {**{k: v for k, v in raw["model"].items() if k not in ("trainingJobRef", "uri")}, **model}
    spec = InferenceServiceSpec.model_validate(raw)
    ref = Reference(TRAININGJOB, "two-tower", job) if "trainingJobRef" in model else None
    decision = decide_serving(spec, InferenceServiceObserved(ref), NOW)
    assert [(c.type, c.status, c.reason) for c in decision.outcome.conditions] == expected
    assert decision.outcome.retry_after is None and decision.outcome.requeue_at is None
