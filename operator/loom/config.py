"""Operator settings: one typed, validated object, read once at start-up (`loom run` builds it from
`LOOM_*` environment variables, which the Helm chart sets, plus its own flags) and passed down.
Nothing below the CLI reads the environment for a setting."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_STATE_DIR = Path.home() / ".local" / "state" / "loom" / "operator"
DEFAULT_COMPONENTS_DIR = Path(__file__).resolve().parents[2] / "components"
DEFAULT_GPU_PROFILES_DIR = Path(__file__).resolve().parents[2] / "gpu-profiles"
# The serve environment of this checkout (`make venv-serve`): MLServer cannot share the main one (Feast).
DEFAULT_PYTHON_SERVE = str(Path(__file__).resolve().parents[2] / ".venv-serve" / "bin" / "python")


class ExecutorKind(str, Enum):
    KUBERNETES = "kubernetes"
    LOCAL = "local"


class ControllerKind(str, Enum):
    DATALAKE = "DataLake"
    FEATURESET = "FeatureSet"
    TRAININGJOB = "TrainingJob"
    INFERENCESERVICE = "InferenceService"


class LogFormat(str, Enum):
    PLAIN = "plain"
    JSON = "json"


class OperatorConfig(BaseSettings):
    """Every field `x` is read from `LOOM_X` (e.g. `LOOM_FEAST_REDIS`)."""

    model_config = SettingsConfigDict(env_prefix="LOOM_", frozen=True, extra="ignore")

    metrics_port: int = Field(8080, ge=0, le=65535, description="Prometheus /metrics port; 0 turns it off")
    metrics_address: str = "0.0.0.0"
    executor: ExecutorKind = ExecutorKind.KUBERNETES
    field_manager: str = Field("loom-operator", min_length=1, max_length=128,
                               description="server-side apply field manager of every child object")
    log_format: LogFormat = LogFormat.PLAIN
    dependency_retry_seconds: float = Field(15.0, gt=0, description="backoff after an external system failed")
    deletion_attempts: int = Field(5, ge=1, le=20, description="finalizer attempts at cleaning up (the delay "
                                   "doubles from dependency_retry_seconds) before it lets go with a Warning")
    controllers: tuple[ControllerKind, ...] = Field(
        tuple(ControllerKind), min_length=1,
        description="the kinds this operator reconciles (JSON list); e.g. run serving apart from the data kinds")
    reconcile_workers: int = Field(16, ge=1, le=256, description="reconciles running at once (each in a thread)")
    object_workers: int = Field(64, ge=1, le=10000, description="objects of one kind whose watch events are "
                                "handled at once; bounds the operator's memory in a burst of changes")
    api_connections: int = Field(16, ge=1, le=1000, description="connections Kopf's requests to the API server "
                                 "share, beside one per watch stream; more requests wait for a free one")
    resync_seconds: float = Field(300.0, ge=0, description="periodic drift repair of unchanged objects; 0: off")
    driver_helper: bool = Field(True, description="call Iceberg catalogs, Feast and the MLflow library (a "
                                "tracking URI no server answers) in a helper process, which exits when idle and "
                                "takes their memory with it; false: in the operator process")
    driver_helper_idle_seconds: float = Field(60.0, gt=0, description="the helper exits after this long without a call")

    # Kubernetes executor: one workload image per Python environment (main, serve).
    image_main: str | None = None
    image_serve: str | None = None

    # Local executor: where runs and schedules live, which components and interpreters run them.
    state_dir: Path = DEFAULT_STATE_DIR
    components_dir: Path = DEFAULT_COMPONENTS_DIR
    python_main: str = sys.executable
    python_serve: str | None = Field(DEFAULT_PYTHON_SERVE, description="interpreter of serving workloads (MLServer); "
                                     "default: .venv-serve of this checkout")

    # Feast defaults for FeatureSets that name no registry or online store connection.
    feast_registry: str | None = Field(None, description="SQLAlchemy URL; default: SQLite under state_dir")
    feast_redis: str = "localhost:6379"
    feast_sqlite: Path | None = Field(None, description="SQLite online store; default: under state_dir")

    # Training: the GPU shapes a TrainingJob names, and where runs are tracked and models registered.
    gpu_profiles_dir: Path = DEFAULT_GPU_PROFILES_DIR
    mlflow_tracking_uri: str | None = Field(None, description="MLflow tracking URI; default: SQLite under state_dir")
    mlflow_artifacts: str | None = Field(None, description="artifact root of new experiments; default: under "
                                         "state_dir with the default tracking URI, the server's own otherwise")
    training_progress_seconds: float = Field(10.0, gt=0, description="how often a running training's progress "
                                             "is read from MLflow (nothing announces a new epoch)")

    # Serving: where the canary analysis queries metrics, and (local executor) where the scrape targets
    # of the local routers are written for that Prometheus (file_sd) and the served versions' files go.
    prometheus_url: str | None = Field(None, description="Prometheus of the canary analysis, e.g. "
                                       "http://prometheus.monitoring:9090; without it checks fail with no data")
    registry_poll_seconds: float = Field(30.0, gt=0, description="how often an InferenceService serving an MLflow "
                                         "alias reads it again (the registry announces no alias move)")
    prometheus_targets_dir: Path | None = Field(None, description="local executor: the file_sd directory the "
                                                "local Prometheus reads; routers are not announced without it")

    @model_validator(mode="after")
    def _defaults_under_state_dir(self) -> OperatorConfig:
        if self.mlflow_tracking_uri is None:
            mlflow_dir = self.state_dir / "mlflow"
            object.__setattr__(self, "mlflow_tracking_uri", f"sqlite:///{mlflow_dir / 'mlflow.db'}")
            if self.mlflow_artifacts is None:
                object.__setattr__(self, "mlflow_artifacts", (mlflow_dir / "artifacts").as_uri())
        feast_dir = self.state_dir / "feast"
        if self.feast_registry is None:
            object.__setattr__(self, "feast_registry", f"sqlite:///{feast_dir / 'registry.db'}")
        if self.feast_sqlite is None:
            object.__setattr__(self, "feast_sqlite", feast_dir / "online.db")
        return self

    @property
    def tracking_uri(self) -> str:
        assert self.mlflow_tracking_uri is not None  # set by the validator
        return self.mlflow_tracking_uri

    @property
    def models_dir(self) -> Path:
        """Local executor: the served versions' files, downloaded from MLflow once per version."""
        return self.state_dir / "models"

    @property
    def feast_registry_uri(self) -> str:
        assert self.feast_registry is not None  # set by the validator
        return self.feast_registry

    @property
    def feast_sqlite_path(self) -> str:
        assert self.feast_sqlite is not None  # set by the validator
        return str(self.feast_sqlite)
