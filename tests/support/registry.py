"""A real MLflow registry in SQLite for the serving tests: files logged as a run's artifacts, registered
as a version of one model, aliases set as a TrainingJob's gate or a user would."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Registry:
    uri: str
    artifacts: Path
    model: str

    def client(self) -> Any:
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def register(self, files: Path, alias: str) -> str:
        """Log `files` as a run's artifacts, register them as a new version, set `alias` on it."""
        client = self.client()
        experiment = client.get_experiment_by_name("serving")
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(
            "serving", artifact_location=self.artifacts.as_uri())
        run = client.create_run(experiment_id)
        client.log_artifacts(run.info.run_id, str(files), "model")
        client.set_terminated(run.info.run_id)
        if not client.search_registered_models(f"name = '{self.model}'"):
            client.create_registered_model(self.model)
        version = client.create_model_version(self.model, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
        client.set_registered_model_alias(self.model, alias, version.version)
        return str(version.version)

    def alias(self, alias: str) -> str:
        return str(self.client().get_model_version_by_alias(self.model, alias).version)

    def download_uri(self, version: str) -> str:
        return str(self.client().get_model_version_download_uri(self.model, version))
