"""Everything the run tells MLflow (rank 0 only): the experiment and run with the run's identity and
lineage as tags, params, per-epoch progress (what the operator reads for status.progress), the final
metrics, the model version's files as an MLflow 3 LoggedModel, and its registration. Never an alias:
the operator applies the gate and moves it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mlflow
from contract import TrainConfig
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException

RUN_TAG = "loom.dev/run"
TRAININGJOB_TAG = "loom.dev/trainingjob"
UID_TAG = "loom.dev/uid"
CHAMPION_TAG = "loom.dev/champion-version"
MODEL_TYPE = "two-tower"


def metric_name(metric: str) -> str:
    """recall@10 → recall_at_10 (MLflow refuses '@' in a metric name)."""
    return metric.replace("@", "_at_")


def run_tags(config: TrainConfig) -> dict[str, str]:
    tags = {RUN_TAG: config.run.name, TRAININGJOB_TAG: config.run.training_job, UID_TAG: config.run.uid,
            f"loom.dev/snapshot.{config.labels.table}": str(config.labels.snapshot_id),
            f"loom.dev/snapshot.{config.features.view}": str(config.features.snapshot_id)}
    if config.items is not None:
        tags[f"loom.dev/snapshot.{config.items.table}"] = str(config.items.snapshot_id)
    if config.features.feature_view_version:
        tags["loom.dev/feature-view-version"] = config.features.feature_view_version
    if config.run.image:
        tags["loom.dev/image"] = config.run.image
    return tags


def start(config: TrainConfig, params: dict[str, str]) -> str:
    """Start the run (its experiment created when missing) and return its id."""
    mlflow.set_tracking_uri(config.tracking.uri)
    client = MlflowClient()
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(
        config.tracking.experiment, artifact_location=config.tracking.artifact_location)
    run = mlflow.start_run(experiment_id=experiment_id, run_name=config.run.name, tags=run_tags(config))
    mlflow.log_params(params)
    return run.info.run_id


def champion(config: TrainConfig, into: Path) -> str | None:
    """Download the files of the version holding the champion alias into `into`; its version, or
    None when there is no such model or alias."""
    alias = config.evaluation.champion_alias
    if not alias:
        return None
    try:
        version = MlflowClient().get_model_version_by_alias(config.model.name, alias)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise
    mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{config.model.name}/{version.version}",
                                        dst_path=str(into))
    return str(version.version)


@dataclass(frozen=True)
class Registered:
    logged_model_id: str
    version: str


def log_and_register(config: TrainConfig, run_id: str, files: Path, params: dict[str, str]) -> Registered:
    """The files as a LoggedModel of the run, registered as a new version of model.name."""
    logged = mlflow.initialize_logged_model(name=config.model.name, source_run_id=run_id, model_type=MODEL_TYPE,
                                            params=params, tags={RUN_TAG: config.run.name})
    try:
        MlflowClient().log_model_artifacts(logged.model_id, str(files))
    except Exception:
        mlflow.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    mlflow.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    version = mlflow.register_model(f"models:/{logged.model_id}", config.model.name,
                                    tags={RUN_TAG: config.run.name, TRAININGJOB_TAG: config.run.training_job})
    return Registered(logged.model_id, str(version.version))
