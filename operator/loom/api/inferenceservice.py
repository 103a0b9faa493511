"""InferenceService: an MLflow model version served by MLServer, rolled out by a metric-gated canary."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from pydantic import ConfigDict, Field

from loom.api.meta import Duration, LocalObjectRef, LoomModel, StatusBase, cel, keyed


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


class Runtime(str, Enum):
    MLSERVER = "mlserver"


class Predictor(LoomModel):
    runtime: Runtime = Field(default=Runtime.MLSERVER, description="Model server (MLServer, V2 inference protocol).")
    replicas: int = Field(default=1, ge=1, le=100, description="Replicas per revision.")
    image: str | None = Field(default=None, max_length=512, description="Server image; the operator default when unset.")
    feature_set_ref: LocalObjectRef | None = Field(
        default=None, description="FeatureSet whose online features the model reads at request time."
    )


BUILTIN_METRICS = ("request-success-rate", "request-duration-p99")


class MetricCheck(LoomModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.name in " + str(list(BUILTIN_METRICS)) + " || has(self.query)",
                    "metrics[].query is required for a metric that is not built in",
                    field_path=".query",
                ),
                cel("has(self.min) || has(self.max)", "metrics[] needs min or max", field_path=".min"),
            ]
        }
    )

    name: str = Field(
        max_length=63,
        pattern=r"^[a-z][a-z0-9-]*$",
        description="request-success-rate, request-duration-p99 (ms), or a name for a custom query.",
    )
    query: str | None = Field(
        default=None, max_length=4096, description="PromQL returning one number; required for custom names."
    )
    min: float | None = Field(default=None, description="Fail the check below this value.")
    max: float | None = Field(default=None, description="Fail the check above this value.")


class Canary(LoomModel):
    """Flagger-style progressive traffic shift, analysed against Prometheus at every step."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("self.stepWeight <= self.maxWeight", "canary.stepWeight must not exceed canary.maxWeight",
                    field_path=".stepWeight"),
            ]
        }
    )

    step_weight: int = Field(default=10, ge=1, le=100, description="Traffic percent added to the canary per step.")
    max_weight: int = Field(default=50, ge=1, le=100, description="Highest canary percent before promotion.")
    interval: Duration = Field(default="1m", description="Time between analysis steps.")
    threshold: int = Field(default=3, ge=1, le=100, description="Failed checks before rolling back.")
    metrics: list[MetricCheck] = Field(
        default_factory=list, **keyed("Checks that gate each step; all must pass.", 16)
    )


class RolloutStrategy(str, Enum):
    CANARY = "Canary"
    REPLACE = "Replace"


class Rollout(LoomModel):
    strategy: RolloutStrategy = Field(default=RolloutStrategy.CANARY, description="How a new model version replaces the old.")
    canary: Canary = Field(default_factory=Canary, description="Canary settings.")


class InferenceServiceSpec(LoomModel):
    """Desired serving of one model."""

    model: ModelSource = Field(description="The model to serve.")
    predictor: Predictor = Field(default_factory=Predictor, description="How it is served.")
    rollout: Rollout = Field(default_factory=Rollout, description="How new versions are rolled out.")


class Revision(LoomModel):
    model_uri: str = Field(max_length=2048, description="MLflow URI being served.")
    model_version: str | None = Field(default=None, max_length=253, description="Resolved MLflow model version.")


class CheckResult(LoomModel):
    name: str = Field(max_length=63, description="Metric check name.")
    value: float | None = Field(default=None, description="Measured value; unset when no data.")
    passed: bool = Field(description="Whether the value was within bounds.")


class Analysis(LoomModel):
    time: datetime = Field(description="When the analysis ran.")
    failed_checks: int = Field(ge=0, description="Consecutive failed analyses of the current canary.")
    results: list[CheckResult] = Field(default_factory=list, **keyed("Per-check results.", 16))


class InferenceServiceStatus(StatusBase):
    """Observed state of serving: revisions, traffic split and the last canary analysis."""

    url: str | None = Field(default=None, max_length=2048, description="Where predictions are served (V2 protocol).")
    stable: Revision | None = Field(default=None, description="Revision taking the stable traffic.")
    canary: Revision | None = Field(default=None, description="Revision under canary analysis.")
    canary_weight: int | None = Field(default=None, ge=0, le=100, description="Percent of traffic on the canary.")
    last_analysis: Analysis | None = Field(default=None, description="Most recent canary analysis.")
