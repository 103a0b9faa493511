"""The rollout's settings at the operator's boundary: the models refuse what the CRD refuses (an object
that got past an older CRD reports InvalidSpec), and the canary's steps and queries come out as
Flagger would take them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from loom.api.inferenceservice import Canary, InferenceServiceSpec, ModelSource
from loom.domain.rollout import Split, promql_duration, render_query
from tests.conftest import ROOT


def raw_spec(**canary: Any) -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load((ROOT / "samples" / "inferenceservice.yaml").read_text())["spec"]
    raw["rollout"]["canary"].update(canary)
    return raw


def test_sample_validates_with_its_defaults() -> None:
    spec = InferenceServiceSpec.model_validate(raw_spec())
    assert spec.target == "seldon" and spec.rollout.canary.weights == (10, 20, 30, 40, 50)
    assert spec.rollout.canary.mirror == 0 and not spec.rollout.canary.skip_analysis


@pytest.mark.parametrize("canary, weights", [
    ({}, (10, 20, 30, 40, 50)),
    ({"stepWeight": 25}, (25, 50)),
    ({"stepWeight": 30, "maxWeight": 80}, (30, 60, 80)),
    ({"maxWeight": 100}, tuple(range(10, 101, 10))),
    ({"stepWeights": [1, 5, 50, 90]}, (1, 5, 50, 90)),
])
def test_weights_follow_step_weight_or_step_weights(canary: dict[str, Any], weights: tuple[int, ...]) -> None:
    assert Canary.model_validate(canary).weights == weights


@pytest.mark.parametrize("canary, message", [
    ({"stepWeights": [10, 20], "stepWeight": 10}, "canary sets stepWeight/maxWeight or stepWeights, not both"),
    ({"stepWeights": [10, 20], "maxWeight": 20}, "canary sets stepWeight/maxWeight or stepWeights, not both"),
    ({"stepWeights": [30, 20]}, "canary.stepWeights must increase"),
    ({"stepWeights": [20, 20]}, "canary.stepWeights must increase"),
    ({"stepWeights": [0, 20]}, "greater than or equal to 1"),
    ({"stepWeight": 60}, "canary.stepWeight must not exceed canary.maxWeight"),
    ({"interval": "9s"}, "canary.interval '9s' is shorter than 10s"),
    ({"interval": "9999ms"}, "shorter than 10s"),
    ({"mirror": 101}, "less than or equal to 100"),
    ({"metrics": [{"name": "ctr", "thresholdRange": {"min": 1}}]}, "metrics[].query is required"),
    ({"metrics": [{"name": "request-duration", "thresholdRange": {"max": 1}, "query": "1"}]},
     "not allowed for a built-in"),
    ({"metrics": [{"name": "ctr", "thresholdRange": {}, "query": "1"}]}, "thresholdRange needs min or max"),
    ({"metrics": [{"name": "ctr", "thresholdRange": {"min": 2, "max": 1}, "query": "1"}]},
     "thresholdRange.min must not exceed thresholdRange.max"),
    ({"metrics": [{"name": "ctr", "thresholdRange": {"min": 1}, "query": "up{{ model }}"}]},
     "placeholders are {{ revision }}, {{ namespace }} and {{ interval }}"),
])
def test_canary_refusals_name_the_rule(canary: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as err:
        Canary.model_validate(canary)
    assert message in str(err.value)


def test_interval_of_ten_seconds_is_the_shortest() -> None:
    assert Canary.model_validate({"interval": "10s"}).interval == "10s"


def test_alias_tracking_needs_another_alias_in_the_uri() -> None:
    raw = raw_spec(fromAlias="challenger")
    raw["model"] = {"uri": "models:/movielens-two-tower@champion"}
    assert InferenceServiceSpec.model_validate(raw).model.alias == ("movielens-two-tower", "champion")
    for uri in ("models:/movielens-two-tower/3", "models:/movielens-two-tower@challenger"):
        raw["model"] = {"uri": uri}
        with pytest.raises(ValidationError, match="fromAlias needs model.uri naming another alias"):
            InferenceServiceSpec.model_validate(raw)


def test_model_alias_of_a_version_uri_is_none() -> None:
    assert ModelSource(uri="models:/m/7").alias is None


@pytest.mark.parametrize("predictor, message", [
    ({"resources": {"cpu": "1"}, "gpuProfile": "nvidia-t4"}, "predictor sets resources or gpuProfile, not both"),
    ({"replicas": 5, "maxReplicas": 4}, "minReplicas <= replicas <= maxReplicas"),
    ({"replicas": 1, "minReplicas": 2}, "minReplicas <= replicas <= maxReplicas"),
    ({"minReplicas": 3, "maxReplicas": 2, "replicas": 2}, "minReplicas <= replicas <= maxReplicas"),
])
def test_predictor_refusals(predictor: dict[str, Any], message: str) -> None:
    raw = raw_spec()
    raw["predictor"] = predictor
    with pytest.raises(ValidationError) as err:
        InferenceServiceSpec.model_validate(raw)
    assert message in str(err.value)


@pytest.mark.parametrize("template, expected", [
    ('rate(x{revision="{{ revision }}", namespace="{{namespace}}"}[{{  interval }}])',
     'rate(x{revision="r-2", namespace="ml"}[90s])'),
    ("sum(x) / {{ revision }}{{ revision }}", "sum(x) / r-2r-2"),
    ("no placeholders {a}", "no placeholders {a}"),
])
def test_render_query(template: str, expected: str) -> None:
    assert render_query(template, revision="r-2", namespace="ml", interval="90s") == expected


@pytest.mark.parametrize("seconds, text", [(60, "60s"), (90, "90s"), (10.5, "10500ms"), (86400, "86400s")])
def test_promql_duration(seconds: float, text: str) -> None:
    assert promql_duration(timedelta(seconds=seconds)) == text


def test_split_gives_the_stable_the_rest() -> None:
    assert Split("a", "b", 30, 10).stable_weight == 70
    assert Split("a").stable_weight == 100
