"""TrainingJob: a PyTorch training run on a FeatureSet's training set, tracked and registered in MLflow."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from loom.api.featureset import DataLakeTableRef
from loom.api.meta import (
    MAX_PROPERTIES,
    DNSLabel,
    Duration,
    Identifier,
    LocalObjectRef,
    LoomModel,
    Properties,
    PropertyKey,
    StatusBase,
    cel,
)


class Labels(LoomModel):
    """The labelled entity rows; features are joined onto them point-in-time correct."""

    data_lake_ref: DataLakeTableRef = Field(description="DataLake table holding entity keys, labels and event time.")
    label_field: Identifier = Field(description="Column holding the training label.")
    timestamp_field: Identifier = Field(description="Event-time column of the labelled rows.")


class Dataset(LoomModel):
    feature_set_ref: LocalObjectRef = Field(description="FeatureSet whose features are joined onto the labels.")
    labels: Labels = Field(description="Labelled entity rows.")
    validation_fraction: float = Field(
        default=0.1, ge=0, lt=1, description="Fraction of the newest rows held out for evaluation."
    )


class Model(LoomModel):
    name: str = Field(
        max_length=256,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Registered model name in MLflow.",
    )
    entrypoint: str = Field(
        default="two_tower",
        max_length=253,
        pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)*(:[A-Za-z_][A-Za-z0-9_]*)?$",
        description="Training component to run: a built-in name or module:function.",
    )
    hyperparameters: Properties = Field(
        default_factory=dict,
        max_length=MAX_PROPERTIES,
        description="Passed to the entrypoint and logged as MLflow params.",
    )
    alias: str = Field(
        default="candidate",
        max_length=255,
        pattern=r"^[a-z][a-z0-9_-]*$",
        description="MLflow alias set on the newly registered version (serve it as models:/<name>@<alias>).",
    )


class Resources(LoomModel):
    gpu_profile: DNSLabel | None = Field(
        default=None, description="Named GPU shape from gpu-profiles (resources, nodeSelector, tolerations)."
    )
    cpu: str | None = Field(
        default=None, max_length=16, pattern=r"^[0-9]+(\.[0-9]+)?m?$", description="CPU request per worker."
    )
    memory: str | None = Field(
        default=None, max_length=24, pattern=r"^[0-9]+(Ki|Mi|Gi|Ti|k|M|G|T)?$", description="Memory request per worker."
    )


class Tracking(LoomModel):
    tracking_uri: str | None = Field(
        default=None, max_length=2048, description="MLflow tracking URI; the operator's default when unset."
    )
    experiment: str | None = Field(
        default=None, max_length=256, description="MLflow experiment; defaults to <namespace>/<name>."
    )


class Retrain(LoomModel):
    on_new_features: bool = Field(
        default=False, description="Start a new run whenever the FeatureSet materializes a new snapshot."
    )


class TrainingJobSpec(LoomModel):
    """Desired training run."""

    dataset: Dataset = Field(
        description="Training data.",
        json_schema_extra={
            "x-kubernetes-validations": [cel("self == oldSelf", "dataset is immutable; create a new TrainingJob")]
        },
    )
    model: Model = Field(description="What to train and how it is registered.")
    image: str | None = Field(
        default=None, max_length=512, description="Container image for the training pods; the operator default when unset."
    )
    workers: int = Field(default=0, ge=0, le=512, description="Worker replicas besides the master.")
    resources: Resources = Field(default_factory=Resources, description="Per-replica resources.")
    tracking: Tracking = Field(default_factory=Tracking, description="MLflow tracking settings.")
    retrain: Retrain = Field(default_factory=Retrain, description="When to train again.")
    backoff_limit: int = Field(default=2, ge=0, le=20, description="Retries before the job is marked failed.")
    active_deadline: Duration | None = Field(default=None, description="Give up after this long.")


class TrainingJobStatus(StatusBase):
    """Observed state of the current run and the model version it registered."""

    start_time: datetime | None = Field(default=None, description="When the current run started.")
    completion_time: datetime | None = Field(default=None, description="When the current run finished.")
    run_id: str | None = Field(default=None, max_length=253, description="MLflow run id of the current run.")
    model_version: str | None = Field(default=None, max_length=253, description="Registered MLflow model version.")
    model_uri: str | None = Field(
        default=None, max_length=2048, description="URI that serves this version, models:/<name>/<version>."
    )
    dataset_snapshot_id: int | None = Field(default=None, description="Iceberg snapshot the training set was read at.")
    feature_view_version: str | None = Field(
        default=None, max_length=253, description="FeatureSet definition trained on."
    )
    metrics: dict[PropertyKey, float] = Field(
        default_factory=dict, max_length=256, description="Final evaluation metrics."
    )
