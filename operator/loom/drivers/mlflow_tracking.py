"""MLflow as a TrainingJob reads and moves it: a run found by the Loom run name it is tagged with, its
metrics (the latest value of each, and when each epoch ended), the model version it registered, and
the registry's aliases. The one module that imports MLflow; it is imported lazily, on first use, so an
operator with no TrainingJob never loads it."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

RUN_TAG = "loom.dev/run"
EPOCH_METRIC = "epoch"

_clients: dict[str, Any] = {}
_lock = threading.Lock()


def _client(uri: str) -> Any:
    """One client per tracking URI (a SQLite store migrates its schema when first opened)."""
    with _lock:
        if uri not in _clients:
            from mlflow.tracking import MlflowClient

            _clients[uri] = MlflowClient(tracking_uri=uri, registry_uri=uri)
        return _clients[uri]


@dataclass(frozen=True)
class TrackedRun:
    """One training run as MLflow holds it. `epochs_ended` is when each epoch's metrics were logged,
    oldest first, for the estimate of time left."""

    run_id: str
    status: str  # RUNNING, SCHEDULED, FINISHED, FAILED, KILLED
    start_time: datetime | None
    metrics: Mapping[str, float] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    epochs_ended: tuple[datetime, ...] = ()


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str | None
    model_id: str | None  # the MLflow 3 LoggedModel the version was registered from
    source: str


def _time(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, timezone.utc)


def find_run(uri: str, experiment: str, run_name: str) -> TrackedRun | None:
    """The run tagged with this Loom run name in the experiment; None while the trainer has not
    created it yet (or the experiment does not exist)."""
    client = _client(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs(
        [found.experiment_id], filter_string=f"tags.`{RUN_TAG}` = '{_quoted(run_name)}'",
        order_by=["attributes.start_time DESC"], max_results=1,
    )
    if not runs:
        return None
    run = runs[0]
    epochs = client.get_metric_history(run.info.run_id, EPOCH_METRIC) if EPOCH_METRIC in run.data.metrics else []
    return TrackedRun(
        run_id=run.info.run_id,
        status=run.info.status,
        start_time=_time(run.info.start_time),
        metrics=dict(run.data.metrics),
        params=dict(run.data.params),
        tags={k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
        epochs_ended=tuple(t for t in (_time(m.timestamp) for m in sorted(epochs, key=lambda m: m.step)) if t),
    )


def run_version(uri: str, model: str, run_id: str) -> RegisteredVersion | None:
    """The version of `model` registered from this run, if any."""
    versions = _client(uri).search_model_versions(f"name = '{_quoted(model)}' and run_id = '{_quoted(run_id)}'")
    if not versions:
        return None
    return _version(max(versions, key=lambda v: int(v.version)))


def alias_version(uri: str, model: str, alias: str) -> str | None:
    """The version an alias points at; None when the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return str(_client(uri).get_model_version_by_alias(model, alias).version)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def set_alias(uri: str, model: str, alias: str, version: str) -> None:
    _client(uri).set_registered_model_alias(model, alias, version)


def _version(v: Any) -> RegisteredVersion:
    return RegisteredVersion(
        name=v.name, version=str(v.version), run_id=v.run_id, model_id=getattr(v, "model_id", None),
        source=v.source,
    )


def _quoted(value: str) -> str:
    """A value inside single quotes of an MLflow filter string."""
    return value.replace("\\", "\\\\").replace("'", "\\'")
