"""MLflow as a TrainingJob reads and moves it: a run found by the Loom run name it is tagged with, its
metrics (the latest value of each, and when each epoch ended), the model version it registered, and
the registry's aliases.

A tracking server (http/https, as every cluster runs one) is spoken to over MLflow's REST API, so the
operator never loads the MLflow library (about 200 MiB in a process). Any other tracking URI (a SQLite
file, as on a laptop) goes through `MlflowClient`, imported on first use. Both answer alike (a test
holds them to it)."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

import urllib3

RUN_TAG = "loom.dev/run"
EPOCH_METRIC = "epoch"
TIMEOUT_SECONDS = 10.0
NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"
# An alias nobody set is INVALID_PARAMETER_VALUE to MLflow, a model that does not exist NOT_FOUND.
ALIAS_MISSING = (NOT_FOUND, "INVALID_PARAMETER_VALUE")


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


class Store(Protocol):
    def experiment_id(self, name: str) -> str | None: ...
    def newest_run(self, experiment_id: str, filter_string: str) -> dict[str, Any] | None: ...
    def epoch_times(self, run_id: str) -> list[tuple[int, int]]: ...
    def versions(self, filter_string: str) -> list[dict[str, Any]]: ...
    def alias(self, model: str, alias: str) -> dict[str, Any] | None: ...
    def set_alias(self, model: str, alias: str, version: str) -> None: ...


class RestStore:
    """MLflow's REST API (2.0 paths, served by MLflow 2 and 3 alike). Credentials as MLflow's own
    client takes them: MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME/PASSWORD."""

    def __init__(self, uri: str) -> None:
        self.base = uri.rstrip("/") + "/api/2.0/mlflow/"
        # urllib3 rather than requests: the operator has it loaded already; requests would add ~4 MiB.
        self.http = urllib3.PoolManager(maxsize=4, retries=False, timeout=TIMEOUT_SECONDS)
        self.headers = {"Accept": "application/json"}
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        elif user and password:
            self.headers.update(urllib3.make_headers(basic_auth=f"{user}:{password}"))

    def _call(self, method: str, path: str, missing: tuple[str, ...] = (NOT_FOUND,),
              params: Mapping[str, str] | None = None, json: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """The JSON answer; None when the error code says what was asked for does not exist.
        Anything else failing raises."""
        response = self.http.request(method, self.base + path, fields=params, json=json, headers=self.headers)
        if response.status == 404 or (response.status >= 400 and _code(response) in missing):
            return None
        if response.status >= 400:
            text = response.data.decode(errors="replace")[:500]
            raise RuntimeError(f"MLflow {path}: HTTP {response.status}: {text}")
        return dict(response.json())

    def experiment_id(self, name: str) -> str | None:
        found = self._call("GET", "experiments/get-by-name", params={"experiment_name": name})
        return str(found["experiment"]["experiment_id"]) if found else None

    def newest_run(self, experiment_id: str, filter_string: str) -> dict[str, Any] | None:
        found = self._call("POST", "runs/search", json={
            "experiment_ids": [experiment_id], "filter": filter_string, "max_results": 1,
            "order_by": ["attributes.start_time DESC"]})
        runs = (found or {}).get("runs") or []
        if not runs:
            return None
        run = runs[0]
        data = run.get("data") or {}
        return {
            "run_id": run["info"]["run_id"], "status": run["info"].get("status", ""),
            "start_time": run["info"].get("start_time"),
            "metrics": {m["key"]: float(m["value"]) for m in data.get("metrics") or []},
            "params": {p["key"]: p["value"] for p in data.get("params") or []},
            "tags": {t["key"]: t["value"] for t in data.get("tags") or []},
        }

    def epoch_times(self, run_id: str) -> list[tuple[int, int]]:
        found = self._call("GET", "metrics/get-history", params={"run_id": run_id, "metric_key": EPOCH_METRIC})
        return [(int(m.get("step", 0)), int(m["timestamp"])) for m in (found or {}).get("metrics") or []]

    def versions(self, filter_string: str) -> list[dict[str, Any]]:
        found = self._call("GET", "model-versions/search", params={"filter": filter_string})
        return list((found or {}).get("model_versions") or [])

    def alias(self, model: str, alias: str) -> dict[str, Any] | None:
        found = self._call("GET", "registered-models/alias", missing=ALIAS_MISSING,
                           params={"name": model, "alias": alias})
        return found["model_version"] if found else None

    def set_alias(self, model: str, alias: str, version: str) -> None:
        self._call("POST", "registered-models/alias", json={"name": model, "alias": alias, "version": version})


def _code(response: urllib3.BaseHTTPResponse) -> str | None:
    try:
        return str(response.json().get("error_code"))
    except ValueError:
        return None


class LibraryStore:
    """`MlflowClient` for tracking URIs no server answers (a SQLite file, a directory)."""

    def __init__(self, uri: str) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)

    def experiment_id(self, name: str) -> str | None:
        found = self.client.get_experiment_by_name(name)
        return None if found is None else str(found.experiment_id)

    def newest_run(self, experiment_id: str, filter_string: str) -> dict[str, Any] | None:
        runs = self.client.search_runs([experiment_id], filter_string=filter_string,
                                       order_by=["attributes.start_time DESC"], max_results=1)
        if not runs:
            return None
        run = runs[0]
        return {"run_id": run.info.run_id, "status": run.info.status, "start_time": run.info.start_time,
                "metrics": dict(run.data.metrics), "params": dict(run.data.params), "tags": dict(run.data.tags)}

    def epoch_times(self, run_id: str) -> list[tuple[int, int]]:
        return [(m.step, m.timestamp) for m in self.client.get_metric_history(run_id, EPOCH_METRIC)]

    def versions(self, filter_string: str) -> list[dict[str, Any]]:
        return [{"name": v.name, "version": v.version, "run_id": v.run_id, "source": v.source,
                 "model_id": getattr(v, "model_id", None)} for v in self.client.search_model_versions(filter_string)]

    def alias(self, model: str, alias: str) -> dict[str, Any] | None:
        from mlflow.exceptions import MlflowException

        try:
            v = self.client.get_model_version_by_alias(model, alias)
        except MlflowException as error:
            if error.error_code in ALIAS_MISSING:
                return None
            raise
        return {"name": v.name, "version": v.version, "run_id": v.run_id, "source": v.source,
                "model_id": getattr(v, "model_id", None)}

    def set_alias(self, model: str, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(model, alias, version)


_stores: dict[str, Store] = {}
_lock = threading.Lock()


def store(uri: str) -> Store:
    """One store per tracking URI (a SQLite store migrates its schema when first opened)."""
    with _lock:
        if uri not in _stores:
            _stores[uri] = RestStore(uri) if uri.startswith(("http://", "https://")) else LibraryStore(uri)
        return _stores[uri]


def _time(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(int(ms) / 1000, timezone.utc)


def _quoted(value: str) -> str:
    """A value inside single quotes of an MLflow filter string."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def find_run(uri: str, experiment: str, run_name: str) -> TrackedRun | None:
    """The run tagged with this Loom run name in the experiment; None while the trainer has not
    created it yet (or the experiment does not exist)."""
    s = store(uri)
    experiment_id = s.experiment_id(experiment)
    if experiment_id is None:
        return None
    run = s.newest_run(experiment_id, f"tags.`{RUN_TAG}` = '{_quoted(run_name)}'")
    if run is None:
        return None
    epochs = s.epoch_times(run["run_id"]) if EPOCH_METRIC in run["metrics"] else []
    return TrackedRun(
        run_id=run["run_id"],
        status=run["status"],
        start_time=_time(run["start_time"]),
        metrics=run["metrics"],
        params=run["params"],
        tags={k: v for k, v in run["tags"].items() if not k.startswith("mlflow.")},
        epochs_ended=tuple(t for t in (_time(ms) for _, ms in sorted(epochs)) if t),
    )


def _version(v: Mapping[str, Any]) -> RegisteredVersion:
    source = v.get("source") or ""
    # A version registered from a LoggedModel has it as its source (models:/m-...), where the store's
    # search leaves model_id unset.
    logged = source.removeprefix("models:/") if source.startswith("models:/m-") else None
    return RegisteredVersion(name=v["name"], version=str(v["version"]), run_id=v.get("run_id") or None,
                             model_id=v.get("model_id") or logged, source=source)


def run_version(uri: str, model: str, run_id: str) -> RegisteredVersion | None:
    """The version of `model` registered from this run, if any."""
    versions = store(uri).versions(f"name = '{_quoted(model)}' and run_id = '{_quoted(run_id)}'")
    return _version(max(versions, key=lambda v: int(v["version"]))) if versions else None


def alias_version(uri: str, model: str, alias: str) -> str | None:
    """The version an alias points at; None when the model or the alias does not exist."""
    found = store(uri).alias(model, alias)
    return str(found["version"]) if found else None


def set_alias(uri: str, model: str, alias: str, version: str) -> None:
    store(uri).set_alias(model, alias, version)
