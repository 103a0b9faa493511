"""TrainingJob: distributed PyTorch training on a FeatureSet's training set, run by Kubeflow Trainer
(TrainJob v2, or PyTorchJob v1 on older clusters), evaluated against baselines, tracked and registered
in MLflow. Kubeflow's field names are kept where they exist (numNodes, numProcPerNode, runtimeRef,
suspend, backoffLimit)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from pydantic import ConfigDict, Field
from pydantic.json_schema import JsonDict

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


class Backend(str, Enum):
    """Which Kubeflow kind runs the training: Trainer v2's TrainJob, or Training Operator 1.9's PyTorchJob."""

    TRAINJOB = "TrainJob"
    PYTORCHJOB = "PyTorchJob"


class RuntimeKind(str, Enum):
    CLUSTER = "ClusterTrainingRuntime"
    NAMESPACED = "TrainingRuntime"


class RuntimeRef(LoomModel):
    """The Trainer runtime a TrainJob uses (TrainJob's own runtimeRef)."""

    name: DNSLabel = Field(default="torch-distributed", description="Runtime name, e.g. torch-distributed.")
    kind: RuntimeKind = Field(default=RuntimeKind.CLUSTER, description="ClusterTrainingRuntime or TrainingRuntime.")
    api_group: str = Field(
        default="trainer.kubeflow.org", max_length=253, pattern=r"^trainer\.kubeflow\.org$",
        description="API group of the runtime.",
    )


class Labels(LoomModel):
    """The labelled interactions; features are joined onto them point-in-time correct."""

    data_lake_ref: DataLakeTableRef = Field(description="DataLake table holding entity keys, labels and event time.")
    label_field: Identifier = Field(description="Column holding the training label (e.g. a rating).")
    timestamp_field: Identifier = Field(description="Event-time column of the labelled rows.")
    item_field: Identifier = Field(default="movieId", description="Column holding the item id of each row.")


class Items(LoomModel):
    """The item catalogue the item tower reads (e.g. movies with genres and year)."""

    data_lake_ref: DataLakeTableRef = Field(description="DataLake table with one row per item.")
    key_field: Identifier = Field(default="movieId", description="Item id column, equal to labels.itemField.")


class Dataset(LoomModel):
    feature_set_ref: LocalObjectRef = Field(description="FeatureSet whose features are joined onto the labels.")
    labels: Labels = Field(description="Labelled entity rows.")
    items: Items | None = Field(default=None, description="Item features for the item tower; ids only when unset.")


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
        default="challenger",
        max_length=255,
        pattern=r"^[a-z][a-z0-9_-]*$",
        description="MLflow alias moved to the new version when it passes the evaluation gate.",
    )


class Metric(str, Enum):
    RECALL_AT_10 = "recall@10"
    NDCG_AT_10 = "ndcg@10"


class Evaluation(LoomModel):
    """The gate a new version must pass before its alias moves; every number is computed on one
    per-user temporal holdout in the same run."""

    metric: Metric = Field(default=Metric.RECALL_AT_10, description="The metric the gate compares.")
    holdout_fraction: float = Field(
        default=0.2, gt=0, lt=1, description="The newest fraction of each user's positives held out."
    )
    positive_rating: float = Field(default=3.5, description="A label at or above this counts as a positive.")
    min_lift_over_baseline: float = Field(
        default=1.5, ge=0, le=1000, description="The metric must be at least this multiple of popularity's."
    )
    must_beat_champion: bool = Field(
        default=True, description="The metric must exceed the version holding championAlias, on this holdout."
    )
    champion_alias: str = Field(
        default="champion", max_length=255, pattern=r"^[a-z][a-z0-9_-]*$",
        description="The alias serving uses; its version is the champion to beat.",
    )


class Resources(LoomModel):
    gpu_profile: DNSLabel | None = Field(
        default=None, description="Named GPU shape from gpu-profiles (resources, nodeSelector, tolerations)."
    )
    cpu: str | None = Field(
        default=None, max_length=16, pattern=r"^[0-9]+(\.[0-9]+)?m?$", description="CPU request per node."
    )
    memory: str | None = Field(
        default=None, max_length=24, pattern=r"^[0-9]+(Ki|Mi|Gi|Ti|k|M|G|T)?$", description="Memory request per node."
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
    history_limit: int = Field(default=3, ge=1, le=100, description="Finished runs kept (like a CronJob's history).")


def _fixed(field: str) -> JsonDict:
    """A field that shapes the run: changing it means a new TrainingJob."""
    return cel("self == oldSelf", f"{field} is immutable; create a new TrainingJob")


class TrainingJobSpec(LoomModel):
    """Desired training. Only `suspend`, `evaluation`, `retrain` and the deadlines change in place; the
    rest shapes the run and is immutable (create a new TrainingJob)."""

    # A field that is unset on one side is not compared by its own transition rule.
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    f"has(self.{field}) == has(oldSelf.{field})",
                    f"{field} is immutable; create a new TrainingJob", field_path=f".{field}",
                )
                for field in ("runtimeRef", "image")
            ]
        }
    )

    backend: Backend = Field(
        default=Backend.TRAINJOB,
        description="TrainJob (Kubeflow Trainer v2) or PyTorchJob (Training Operator 1.9).",
        json_schema_extra={"x-kubernetes-validations": [_fixed("backend")]},
    )
    runtime_ref: RuntimeRef | None = Field(
        default=None,
        description="Trainer runtime for backend TrainJob; ClusterTrainingRuntime torch-distributed when unset.",
        json_schema_extra={"x-kubernetes-validations": [_fixed("runtimeRef")]},
    )
    dataset: Dataset = Field(
        description="Training data.",
        json_schema_extra={"x-kubernetes-validations": [_fixed("dataset")]},
    )
    model: Model = Field(
        description="What to train and how it is registered.",
        json_schema_extra={"x-kubernetes-validations": [_fixed("model")]},
    )
    evaluation: Evaluation = Field(default_factory=Evaluation, description="The gate a new version must pass.")
    image: str | None = Field(
        default=None, max_length=512,
        description="Container image for the training pods; the operator default when unset.",
        json_schema_extra={"x-kubernetes-validations": [_fixed("image")]},
    )
    num_nodes: int = Field(
        default=1, ge=1, le=512, description="Nodes (pods) that train together.",
        json_schema_extra={"x-kubernetes-validations": [_fixed("numNodes")]},
    )
    num_proc_per_node: int = Field(
        default=1, ge=1, le=64, description="Training processes per node; the GPU profile's GPU count when it has GPUs.",
        json_schema_extra={"x-kubernetes-validations": [_fixed("numProcPerNode")]},
    )
    resources: Resources = Field(
        default_factory=Resources, description="Per-node resources.",
        json_schema_extra={"x-kubernetes-validations": [_fixed("resources")]},
    )
    suspend: bool = Field(default=False, description="Suspend the run (its pods are deleted); false resumes it.")
    queue: DNSLabel | None = Field(default=None, description="Kueue LocalQueue (label kueue.x-k8s.io/queue-name).")
    priority_class: DNSLabel | None = Field(
        default=None, description="Kueue WorkloadPriorityClass (label kueue.x-k8s.io/priority-class)."
    )
    active_deadline: Duration | None = Field(default=None, description="Fail a run that takes longer than this.")
    backoff_limit: int = Field(
        default=2, ge=0, le=20,
        description=("Retries of a failed run before it fails (PyTorchJob and the local executor; a TrainJob "
                     "restarts as its runtime's JobSet failurePolicy says)."),
    )
    ttl_after_finished: Duration | None = Field(
        default=None, description="Delete a finished run's child this long after it finished (its record stays)."
    )
    tracking: Tracking = Field(default_factory=Tracking, description="MLflow tracking settings.")
    retrain: Retrain = Field(default_factory=Retrain, description="When to train again.")


class TrainingPhase(str, Enum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SUSPENDED = "Suspended"


class Replicas(LoomModel):
    active: int = Field(default=0, ge=0, description="Pods (or local processes) running.")
    succeeded: int = Field(default=0, ge=0, description="Pods that finished.")
    failed: int = Field(default=0, ge=0, description="Pods that failed.")


class Progress(LoomModel):
    """How far the current run is, from the metrics it logs to MLflow (or TrainJob's trainerStatus)."""

    epoch: int | None = Field(default=None, ge=0, description="Epochs finished.")
    total_epochs: int | None = Field(default=None, ge=0, description="Epochs planned.")
    percent: int | None = Field(default=None, ge=0, le=100, description="Percent done.")
    loss: float | None = Field(default=None, description="Training loss of the last epoch.")
    metrics: dict[PropertyKey, float] = Field(
        default_factory=dict, max_length=64, description="Latest validation metrics (e.g. recall@10)."
    )
    estimated_remaining_seconds: int | None = Field(default=None, ge=0, description="Time left at the current pace.")


class TableSnapshot(LoomModel):
    table: str = Field(max_length=512, description="DataLake/table read.")
    snapshot_id: int = Field(description="Iceberg snapshot id read.")


class Lineage(LoomModel):
    """What a run consumed and produced, so a served prediction traces back to its data."""

    snapshots: list[TableSnapshot] = Field(default_factory=list, max_length=16, description="Every table read.")
    feature_view_version: str | None = Field(default=None, max_length=253, description="FeatureSet definition.")
    run_id: str | None = Field(default=None, max_length=253, description="MLflow run id.")
    logged_model_id: str | None = Field(default=None, max_length=253, description="MLflow LoggedModel id.")
    registered_model: str | None = Field(default=None, max_length=256, description="Registered model name.")
    model_version: str | None = Field(default=None, max_length=253, description="Registered version.")
    model_uri: str | None = Field(default=None, max_length=2048, description="models:/<name>/<version>.")
    image: str | None = Field(default=None, max_length=512, description="Image (or local environment) that trained.")


class Gate(LoomModel):
    passed: bool = Field(description="Whether the version passed the evaluation gate.")
    alias: str | None = Field(default=None, max_length=255, description="The alias moved to it, when it passed.")
    reason: str = Field(max_length=4096, description="Why it passed or failed, with the numbers compared.")


class RunRecord(LoomModel):
    """One run of this TrainingJob (the newest first in status.runs)."""

    name: DNSLabel = Field(description="The run's child (TrainJob, PyTorchJob or local run) name.")
    phase: TrainingPhase = Field(description="The run's phase.")
    reason: str | None = Field(default=None, max_length=1024, description="Why it was started.")
    snapshot_id: int | None = Field(default=None, description="FeatureSet snapshot it trained on.")
    inputs: list[TableSnapshot] = Field(
        default_factory=list, max_length=8, description="The lake tables it reads, at the snapshots it was started for."
    )
    start_time: datetime | None = Field(default=None, description="When the run started.")
    completion_time: datetime | None = Field(default=None, description="When the run finished.")
    model_version: str | None = Field(default=None, max_length=253, description="The version it registered.")


class TrainingJobStatus(StatusBase):
    """Observed state of the current run, its progress, and the model version it registered."""

    phase: TrainingPhase | None = Field(default=None, description="Phase of the current run.")
    current_run: str | None = Field(default=None, max_length=63, description="Name of the current run.")
    start_time: datetime | None = Field(default=None, description="When the current run started.")
    completion_time: datetime | None = Field(default=None, description="When the current run finished.")
    replicas: Replicas | None = Field(default=None, description="Pods of the current run.")
    progress: Progress | None = Field(default=None, description="Progress of the current run.")
    metrics: dict[PropertyKey, float] = Field(
        default_factory=dict, max_length=256, description="Final evaluation metrics of the last finished run."
    )
    gate: Gate | None = Field(default=None, description="The evaluation gate's verdict on the last run.")
    lineage: Lineage | None = Field(default=None, description="What the last finished run read and registered.")
    runs: list[RunRecord] = Field(default_factory=list, max_length=101, description="Runs, newest first.")
    model_version: str | None = Field(default=None, max_length=253, description="Latest registered version.")
