"""The canary gauges follow the rollout's status fields: weight, failed checks and each check's last
result; a check the last analysis no longer has, a value it could not measure, and a deleted
InferenceService leave no stale series; a blocked reconcile (no fields) changes nothing."""

from __future__ import annotations

from datetime import datetime, timezone

from prometheus_client import REGISTRY

from loom.api.inferenceservice import Analysis, CheckResult
from loom.services.inferenceservice import gauges

NS, NAME = "ml", "gauged-recommender"


def sample(metric: str, check: str | None = None) -> float | None:
    labels = {"namespace": NS, "name": NAME} | ({"metric": check} if check else {})
    return REGISTRY.get_sample_value(metric, labels)


def fields(weight: int | None, failed: int, *results: CheckResult) -> dict[str, object]:
    analysis = Analysis(time=datetime(2026, 1, 1, tzinfo=timezone.utc), weight=weight or 0, results=list(results))
    return {"canary_weight": weight, "failed_checks": failed, "last_analysis": analysis if results else None}


def test_gauges_follow_the_status_and_go_with_the_object() -> None:
    gauges.export(NS, NAME, fields(20, 1, CheckResult(name="request-success-rate", value=97.5, passed=False),
                                   CheckResult(name="request-duration", value=12.0, passed=True)))
    assert sample("loom_canary_weight") == 20 and sample("loom_canary_failed_checks") == 1
    assert sample("loom_canary_check_passed", "request-success-rate") == 0
    assert sample("loom_canary_check_value", "request-success-rate") == 97.5
    assert sample("loom_canary_check_passed", "request-duration") == 1

    gauges.export(NS, NAME, {})  # blocked: no status fields written
    assert sample("loom_canary_weight") == 20

    gauges.export(NS, NAME, fields(30, 1, CheckResult(name="request-success-rate", value=None, passed=False)))
    assert sample("loom_canary_weight") == 30
    assert sample("loom_canary_check_passed", "request-success-rate") == 0
    assert sample("loom_canary_check_value", "request-success-rate") is None, "no data: no value"
    assert sample("loom_canary_check_passed", "request-duration") is None, "a check no longer analysed"

    gauges.export(NS, NAME, fields(None, 0))  # promoted: no canary
    assert sample("loom_canary_weight") == 0 and sample("loom_canary_failed_checks") == 0
    assert sample("loom_canary_check_passed", "request-success-rate") is None

    gauges.forget(NS, NAME)
    assert sample("loom_canary_weight") is None and sample("loom_canary_failed_checks") is None
    gauges.forget(NS, NAME)  # twice is harmless
