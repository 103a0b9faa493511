"""InferenceService: an MLflow model version served by MLServer, rolled out by a metric-gated canary.

The rollout keeps Flagger's words (interval, threshold, stepWeight/maxWeight or stepWeights, metrics
with thresholdRange, mirror, skipAnalysis, the phases and failedChecks) and the serving targets'
(Seldon Core 2 Model/Experiment, KServe InferenceService), so users of either feel at home."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import Enum
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from loom.api.gpuprofile import CpuQuantity, MemoryQuantity
from loom.api.meta import (
    MAX_DURATION,
    DNSLabel,
    Duration,
    LocalObjectRef,
    LoomModel,
    StatusBase,
    cel,
    keyed,
    parse_duration,
)
from loom.api.trainingjob import Lineage

ALIAS_PATTERN = r"^[a-z][a-z0-9_-]*$"


class ModelSource(LoomModel):
    """Which model to serve: a TrainingJob's registered version, or an explicit MLflow URI."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.trainingJobRef) != has(self.uri)",
                    "model must set exactly one of trainingJobRef or uri",
                )
            ]
        }
    )

    training_job_ref: LocalObjectRef | None = Field(
        default=None, description="Serve the version this TrainingJob registered (followed as it retrains)."
    )
    uri: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^models:/[^/@]+(/[0-9]+|@[a-z][a-z0-9_-]*)$",
        description="MLflow model URI, models:/<name>/<version> or models:/<name>@<alias>.",
    )

    @property
    def alias(self) -> tuple[str, str] | None:
        """(model name, alias) of a models:/<name>@<alias> URI, the alias a promotion moves."""
        if self.uri is None or "@" not in self.uri:
            return None
        name, alias = self.uri.removeprefix("models:/").split("@", 1)
        return name, alias


class Target(str, Enum):
    """Which serving system carries the revisions in a cluster (the local executor runs MLServer itself)."""

    SELDON = "seldon"
    KSERVE = "kserve"


class Runtime(str, Enum):
    MLSERVER = "mlserver"


class PredictorResources(LoomModel):
    """Requests of each model server replica, when no GPU profile is named."""

    cpu: CpuQuantity | None = Field(default=None, description="CPU per replica, e.g. 2 or 500m.")
    memory: MemoryQuantity | None = Field(default=None, description="Memory per replica, e.g. 4Gi.")


class Predictor(LoomModel):
    """How each revision is served; Seldon Model's replica fields, KServe's minReplicas/maxReplicas."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("!has(self.resources) || !has(self.gpuProfile)",
                    "predictor sets resources or gpuProfile, not both", field_path=".gpuProfile"),
                cel("!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
                    "predictor.minReplicas must not exceed predictor.maxReplicas", field_path=".minReplicas"),
                cel("!has(self.minReplicas) || self.minReplicas <= self.replicas",
                    "predictor.replicas must be at least predictor.minReplicas", field_path=".replicas"),
                cel("!has(self.maxReplicas) || self.replicas <= self.maxReplicas",
                    "predictor.replicas must not exceed predictor.maxReplicas", field_path=".replicas"),
            ]
        }
    )

    runtime: Runtime = Field(default=Runtime.MLSERVER, description="Model server (MLServer, V2 inference protocol).")
    replicas: int = Field(default=1, ge=1, le=100, description="Replicas per revision (the initial count when scaling).")
    min_replicas: int | None = Field(default=None, ge=0, le=100, description="Fewest replicas the autoscaler keeps.")
    max_replicas: int | None = Field(default=None, ge=1, le=100, description="Most replicas the autoscaler adds.")
    resources: PredictorResources | None = Field(default=None, description="Requests per replica.")
    gpu_profile: DNSLabel | None = Field(
        default=None, description="Named GPU shape from gpu-profiles, instead of resources."
    )
    image: str | None = Field(default=None, max_length=512, description="Server image; the operator default when unset.")
    feature_set_ref: LocalObjectRef | None = Field(
        default=None, description="FeatureSet whose online features the model reads at request time."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Predictor:
        if self.resources is not None and self.gpu_profile is not None:
            raise ValueError("predictor sets resources or gpuProfile, not both")
        low, high = self.min_replicas, self.max_replicas
        if (low is not None and high is not None and low > high) or (low is not None and self.replicas < low) or (
                high is not None and self.replicas > high):
            raise ValueError("predictor needs minReplicas <= replicas <= maxReplicas")
        return self


class BuiltinMetric(str, Enum):
    """Flagger's built-in checks: percent of requests not answered 5xx, and p99 latency in milliseconds."""

    REQUEST_SUCCESS_RATE = "request-success-rate"
    REQUEST_DURATION = "request-duration"


BUILTIN_METRICS = tuple(m.value for m in BuiltinMetric)
PLACEHOLDERS = ("revision", "namespace", "interval")
# A query is text in which "{{" opens only one of the placeholders (RE2 and Python read it alike; one
# regular expression keeps the API server's CEL cost estimate within its budget).
_QUERY_TEXT = r"^([^{]|\{[^{]|\{\{ *(" + "|".join(PLACEHOLDERS) + r") *\}\})*\{?$"
_PLACEHOLDERS_MESSAGE = "placeholders are {{ revision }}, {{ namespace }} and {{ interval }}"


def _known_placeholders(query: str) -> str:
    if not re.fullmatch(_QUERY_TEXT, query, flags=re.DOTALL):
        raise ValueError(_PLACEHOLDERS_MESSAGE)
    return query


Query = Annotated[
    str,
    Field(max_length=4096),
    AfterValidator(_known_placeholders),
    Field(json_schema_extra={"x-kubernetes-validations": [cel(
        "self.matches('" + _QUERY_TEXT.replace("\\", "\\\\") + "')", _PLACEHOLDERS_MESSAGE)]}),
]


class ThresholdRange(LoomModel):
    """Flagger's bounds of a check: the measured value must lie within [min, max]."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("has(self.min) || has(self.max)", "thresholdRange needs min or max", field_path=".min"),
                cel("!has(self.min) || !has(self.max) || self.min <= self.max",
                    "thresholdRange.min must not exceed thresholdRange.max", field_path=".min"),
            ]
        }
    )

    min: float | None = Field(default=None, description="The check fails below this value.")
    max: float | None = Field(default=None, description="The check fails above this value.")

    @model_validator(mode="after")
    def _bounded(self) -> ThresholdRange:
        if self.min is None and self.max is None:
            raise ValueError("thresholdRange needs min or max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("thresholdRange.min must not exceed thresholdRange.max")
        return self


class MetricCheck(LoomModel):
    """One check of every analysis: a built-in, or a PromQL query returning one number."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    f"(self.name in {list(BUILTIN_METRICS)}) != has(self.query)",
                    "metrics[].query is required for a metric that is not built in, and not allowed for a built-in",
                    field_path=".query",
                ),
            ]
        }
    )

    name: str = Field(
        max_length=63,
        pattern=r"^[a-z][a-z0-9-]*$",
        description="request-success-rate (percent non-5xx), request-duration (p99 ms), or a custom query's name.",
    )
    threshold_range: ThresholdRange = Field(description="Bounds the measured value must stay within.")
    interval: Duration | None = Field(
        default=None, description="Range the query aggregates over; the canary interval when unset."
    )
    query: Query | None = Field(
        default=None,
        description=("PromQL returning one number, for a custom name; {{ revision }}, {{ namespace }} and "
                     "{{ interval }} are replaced before it runs."),
    )

    @model_validator(mode="after")
    def _query_iff_custom(self) -> MetricCheck:
        if (self.name in BUILTIN_METRICS) == (self.query is not None):
            raise ValueError("metrics[].query is required for a metric that is not built in, and not allowed "
                             "for a built-in")
        return self


MIN_INTERVAL = timedelta(seconds=10)
DEFAULT_STEP_WEIGHT = 10
DEFAULT_MAX_WEIGHT = 50


def _at_least_ten_seconds(text: str) -> str:
    if parse_duration(text) < MIN_INTERVAL:
        raise ValueError(f"canary.interval {text!r} is shorter than 10s")
    return text


# A duration's seconds in CEL, as api/meta's Duration rule sums them; an annotation's own rules replace
# the Duration's, so the interval states both of its bounds.
_SECONDS = "self.findAll('[0-9]+(\\\\.[0-9]+)?(ms|s|m|h|d)').map(p, " + "".join(
    f"p.endsWith('{unit}') ? double(p.substring(0, p.size() - {len(unit)})) * {factor!r} : "
    for unit, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0))
) + "double(p.substring(0, p.size() - 1)) * 86400.0).sum()"
Interval = Annotated[
    Duration,
    AfterValidator(_at_least_ten_seconds),
    Field(json_schema_extra={"x-kubernetes-validations": [
        cel(f"{_SECONDS} >= {MIN_INTERVAL.total_seconds()!r}", "canary.interval must be at least 10s"),
        cel(f"{_SECONDS} <= {MAX_DURATION.total_seconds()!r}", f"must be at most {MAX_DURATION.days}d (10 years)"),
    ]}),
]
Weight = Annotated[int, Field(ge=1, le=100)]


class Canary(LoomModel):
    """Flagger-style progressive traffic shift, analysed against Prometheus every interval. Weights go up
    by stepWeight to maxWeight, or through stepWeights; a failed analysis holds the weight and counts a
    failed check, and `threshold` failed checks roll the canary back."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("!has(self.stepWeights) || !(has(self.stepWeight) || has(self.maxWeight))",
                    "canary sets stepWeight/maxWeight or stepWeights, not both", field_path=".stepWeights"),
                cel(f"(has(self.stepWeight) ? self.stepWeight : {DEFAULT_STEP_WEIGHT}) <= "
                    f"(has(self.maxWeight) ? self.maxWeight : {DEFAULT_MAX_WEIGHT})",
                    "canary.stepWeight must not exceed canary.maxWeight", field_path=".stepWeight"),
            ]
        }
    )

    interval: Interval = Field(default="1m", description="Time between analyses (at least 10s).")
    threshold: int = Field(default=3, ge=1, le=100, description="Failed checks before rolling back.")
    step_weight: int | None = Field(
        default=None, ge=1, le=100,
        description=f"Traffic percent added to the canary per step ({DEFAULT_STEP_WEIGHT} when no stepWeights).",
    )
    max_weight: int | None = Field(
        default=None, ge=1, le=100,
        description=f"Highest canary percent before promotion ({DEFAULT_MAX_WEIGHT} when no stepWeights).",
    )
    step_weights: list[Weight] | None = Field(
        default=None, min_length=1, max_length=20,
        description="Explicit canary percents, increasing; promotion follows the last.",
        json_schema_extra={"x-kubernetes-list-type": "set", "x-kubernetes-validations": [
            cel("self.isSorted()", "canary.stepWeights must increase")]},
    )
    metrics: list[MetricCheck] = Field(
        default_factory=list, **keyed("Checks that gate each step; all must pass.", 16)
    )
    mirror: int = Field(
        default=0, ge=0, le=100,
        description="Percent of requests also sent to the canary while it is analysed; its answers are discarded.",
    )
    skip_analysis: bool = Field(default=False, description="Promote a new revision as soon as it is ready.")
    from_alias: str | None = Field(
        default=None, max_length=255, pattern=ALIAS_PATTERN,
        description=("MLflow alias whose new versions start a canary (e.g. challenger); model.uri must name the "
                     "alias promotion moves (e.g. models:/x@champion)."),
    )

    @model_validator(mode="after")
    def _one_way(self) -> Canary:
        if self.step_weights is not None:
            if self.step_weight is not None or self.max_weight is not None:
                raise ValueError("canary sets stepWeight/maxWeight or stepWeights, not both")
            if any(b <= a for a, b in zip(self.step_weights, self.step_weights[1:])):
                raise ValueError("canary.stepWeights must increase")
        elif (self.step_weight or DEFAULT_STEP_WEIGHT) > (self.max_weight or DEFAULT_MAX_WEIGHT):
            raise ValueError("canary.stepWeight must not exceed canary.maxWeight")
        return self

    @property
    def weights(self) -> tuple[int, ...]:
        """The canary's percent at each step: stepWeights, or stepWeight added up to maxWeight (capped)."""
        if self.step_weights is not None:
            return tuple(self.step_weights)
        step, top = self.step_weight or DEFAULT_STEP_WEIGHT, self.max_weight or DEFAULT_MAX_WEIGHT
        return tuple(min(w, top) for w in range(step, top + step, step))


class RolloutStrategy(str, Enum):
    CANARY = "Canary"
    REPLACE = "Replace"


class Rollout(LoomModel):
    strategy: RolloutStrategy = Field(
        default=RolloutStrategy.CANARY,
        description="Canary (analysed steps) or Replace (the new revision takes all traffic once ready).",
    )
    canary: Canary = Field(default_factory=Canary, description="Canary settings.")


class InferenceServiceSpec(LoomModel):
    """Desired serving of one model."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("!has(self.rollout) || !has(self.rollout.canary) || !has(self.rollout.canary.fromAlias) || "
                    "(has(self.model.uri) && self.model.uri.contains('@') && "
                    "!self.model.uri.endsWith('@' + self.rollout.canary.fromAlias))",
                    "rollout.canary.fromAlias needs model.uri naming another alias (models:/<name>@<alias>)",
                    field_path=".rollout.canary.fromAlias"),
            ]
        }
    )

    model: ModelSource = Field(description="The model to serve.")
    target: Target = Field(default=Target.SELDON, description="seldon (Seldon Core 2) or kserve, in a cluster.")
    predictor: Predictor = Field(default_factory=Predictor, description="How it is served.")
    rollout: Rollout = Field(default_factory=Rollout, description="How new versions are rolled out.")

    @model_validator(mode="after")
    def _alias_tracking(self) -> InferenceServiceSpec:
        tracked = self.rollout.canary.from_alias
        alias = self.model.alias
        if tracked is not None and (alias is None or alias[1] == tracked):
            raise ValueError("rollout.canary.fromAlias needs model.uri naming another alias (models:/<name>@<alias>)")
        return self


class RolloutPhase(str, Enum):
    """Flagger's canary phases."""

    INITIALIZING = "Initializing"
    INITIALIZED = "Initialized"
    PROGRESSING = "Progressing"
    PROMOTING = "Promoting"
    FINALISING = "Finalising"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class Revision(LoomModel):
    """One served model version: a Seldon Model, a KServe predictor, or a local MLServer process."""

    name: DNSLabel = Field(description="Revision name (the child serving it; the `revision` of queries).")
    model_name: str = Field(max_length=256, description="Registered model name in MLflow.")
    model_version: str = Field(max_length=253, description="Registered model version.")
    model_uri: str = Field(max_length=2048, description="Where the server loads it from (the version's artifacts).")


class CheckResult(LoomModel):
    name: str = Field(max_length=63, description="Metric check name.")
    value: float | None = Field(default=None, description="Measured value; unset when there was no data.")
    passed: bool = Field(description="Whether the value was within thresholdRange.")
    message: str = Field(default="", max_length=1024, description="The comparison made, or why there is no value.")


class Analysis(LoomModel):
    time: datetime = Field(description="When the analysis ran.")
    weight: int = Field(ge=0, le=100, description="Canary percent while it was measured.")
    results: list[CheckResult] = Field(default_factory=list, **keyed("Per-metric results.", 16))


class InferenceServiceStatus(StatusBase):
    """Observed state of serving: revisions, traffic split and the canary analysis (all the rollout's
    state is here, so a restarted operator resumes at the same step with the same counters)."""

    phase: RolloutPhase | None = Field(default=None, description="Rollout phase (Flagger's).")
    url: str | None = Field(default=None, max_length=2048, description="Where predictions are served (V2 protocol).")
    stable: Revision | None = Field(default=None, description="Revision taking the stable traffic.")
    canary: Revision | None = Field(default=None, description="Revision under canary analysis (or last analysed).")
    canary_weight: int | None = Field(default=None, ge=0, le=100, description="Percent of traffic on the canary.")
    failed_checks: int = Field(default=0, ge=0, description="Failed analyses of the current canary.")
    iterations: int = Field(default=0, ge=0, description="Analyses run on the current canary.")
    last_transition_time: datetime | None = Field(
        default=None,
        description="When the phase last changed (or the canary took its first traffic); analyses fall due every "
                    "interval from it.",
    )
    last_analysis: Analysis | None = Field(default=None, description="Most recent canary analysis.")
    lineage: Lineage | None = Field(default=None, description="What trained the stable revision (its TrainingJob's).")
