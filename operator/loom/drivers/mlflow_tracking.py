"""MLflow as a TrainingJob reads and moves it: a run found by the Loom run name it is tagged with, its
metrics (the latest value of each, and when each epoch ended), the model version it registered, and
the registry's aliases; and, for an InferenceService, a `models:/` URI resolved to its version and
where MLflow keeps the version's files, which are downloaded for a local model server.

A tracking server (http/https, as every cluster runs one) is spoken to over MLflow's REST API, so the
operator never loads the MLflow library (about 200 MiB in a process); the files come through the
server's artifact proxy (`mlflow server --serve-artifacts`, the default, for an `mlflow-artifacts:`
artifact root), or straight from disk for a `file:` root on this machine (a local server). Any other
tracking URI (a SQLite file, as on a laptop) goes through `MlflowClient`, imported on first use. Both
answer alike (a test holds them to it)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlparse

import urllib3

from loom.drivers.host import out_of_process

RUN_TAG = "loom.dev/run"
EPOCH_METRIC = "epoch"
TIMEOUT_SECONDS = 10.0
NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"
# An alias nobody set is INVALID_PARAMETER_VALUE to MLflow, a model that does not exist NOT_FOUND.
ALIAS_MISSING = (NOT_FOUND, "INVALID_PARAMETER_VALUE")
# models:/<name>/<version> or models:/<name>@<alias>, as MLflow parses them (a name holds no '/').
MODEL_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:/(?P<version>[0-9]+)|@(?P<alias>[^/@]+))")
CHUNK_BYTES = 1 << 20


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


@dataclass(frozen=True)
class ResolvedModel:
    """A registry version and where its files are (`download_uri`: file:, mlflow-artifacts:, s3: ...)."""

    name: str
    version: str
    download_uri: str
    run_id: str | None
    source: str


class Store(Protocol):
    def experiment_id(self, name: str) -> str | None: ...
    def newest_run(self, experiment_id: str, filter_string: str) -> dict[str, Any] | None: ...
    def epoch_times(self, run_id: str) -> list[tuple[int, int]]: ...
    def versions(self, filter_string: str) -> list[dict[str, Any]]: ...
    def version(self, model: str, version: str) -> dict[str, Any] | None: ...
    def alias(self, model: str, alias: str) -> dict[str, Any] | None: ...
    def set_alias(self, model: str, alias: str, version: str) -> None: ...
    def download_uri(self, model: str, version: str) -> str | None: ...
    def copy_files(self, artifact_uri: str, into: Path) -> None: ...


class RestStore:
    """MLflow's REST API (2.0 paths, served by MLflow 2 and 3 alike). Credentials as MLflow's own
    client takes them: MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME/PASSWORD."""

    def __init__(self, uri: str) -> None:
        self.base = uri.rstrip("/") + "/api/2.0/mlflow/"
        self.artifacts = uri.rstrip("/") + "/api/2.0/mlflow-artifacts/artifacts"
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

    def version(self, model: str, version: str) -> dict[str, Any] | None:
        found = self._call("GET", "model-versions/get", params={"name": model, "version": version})
        return found["model_version"] if found else None

    def download_uri(self, model: str, version: str) -> str | None:
        found = self._call("GET", "model-versions/get-download-uri", params={"name": model, "version": version})
        return str(found["artifact_uri"]) if found else None

    def copy_files(self, artifact_uri: str, into: Path) -> None:
        parsed = urlparse(artifact_uri)
        if parsed.scheme == "mlflow-artifacts":
            # The path under the server's artifact destination; a netloc names this same server.
            self._proxied(unquote(parsed.path).strip("/"), into)
        elif parsed.scheme == "file" and Path(unquote(parsed.path)).is_dir():
            shutil.copytree(unquote(parsed.path), into, dirs_exist_ok=True)
        else:
            raise RuntimeError(f"MLflow keeps the files at {artifact_uri}, which the operator cannot read: "
                               "serve artifacts through the tracking server (mlflow server --serve-artifacts "
                               "with an mlflow-artifacts:/ artifact root)")

    def _proxied(self, path: str, into: Path) -> None:
        """Copy the tree under `path` from the artifact proxy: list each directory, stream each file."""
        response = self.http.request("GET", self.artifacts, fields={"path": path}, headers=self.headers)
        if response.status >= 400:
            raise RuntimeError(f"MLflow artifacts {path}: HTTP {response.status}: "
                               f"{response.data.decode(errors='replace')[:500]}")
        into.mkdir(parents=True, exist_ok=True)
        for entry in response.json().get("files") or []:
            name = str(entry["path"]).rsplit("/", 1)[-1]
            if entry.get("is_dir"):
                self._proxied(f"{path}/{name}", into / name)
                continue
            with self.http.request("GET", f"{self.artifacts}/{quote(f'{path}/{name}')}", headers=self.headers,
                                   preload_content=False) as file:
                if file.status >= 400:
                    raise RuntimeError(f"MLflow artifact {path}/{name}: HTTP {file.status}")
                with (into / name).open("wb") as out:
                    for chunk in file.stream(CHUNK_BYTES):
                        out.write(chunk)


def _code(response: urllib3.BaseHTTPResponse) -> str | None:
    try:
        return str(response.json().get("error_code"))
    except ValueError:
        return None


class LibraryStore:
    """`MlflowClient` for tracking URIs no server answers (a SQLite file, a directory)."""

    def __init__(self, uri: str) -> None:
        from mlflow.tracking import MlflowClient

        self.uri = uri
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

    def version(self, model: str, version: str) -> dict[str, Any] | None:
        from mlflow.exceptions import MlflowException

        try:
            v = self.client.get_model_version(model, version)
        except MlflowException as error:
            if error.error_code == NOT_FOUND:
                return None
            raise
        return {"name": v.name, "version": v.version, "run_id": v.run_id, "source": v.source,
                "model_id": getattr(v, "model_id", None)}

    def download_uri(self, model: str, version: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_download_uri(model, version))
        except MlflowException as error:
            if error.error_code == NOT_FOUND:
                return None
            raise

    def copy_files(self, artifact_uri: str, into: Path) -> None:
        import mlflow.artifacts

        with tempfile.TemporaryDirectory(dir=into.parent) as scratch:
            got = mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=scratch,
                                                      tracking_uri=self.uri)
            shutil.move(got, into)


_stores: dict[str, Store] = {}
_lock = threading.Lock()


def served(uri: str, *args: object, **kwargs: object) -> bool:
    """A tracking server's URI: spoken to over REST, in any process (the MLflow library is for the rest)."""
    return uri.startswith(("http://", "https://"))


def store(uri: str) -> Store:
    """One store per tracking URI (a SQLite store migrates its schema when first opened)."""
    with _lock:
        if uri not in _stores:
            _stores[uri] = RestStore(uri) if served(uri) else LibraryStore(uri)
        return _stores[uri]


@out_of_process(inline_if=served)
def open_store(uri: str) -> None:
    """Open the store ahead of its first use (a SQLite store imports the MLflow library, then migrates)."""
    store(uri)


def _time(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(int(ms) / 1000, timezone.utc)


def _quoted(value: str) -> str:
    """A value inside single quotes of an MLflow filter string."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


@out_of_process(inline_if=served)
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


@out_of_process(inline_if=served)
def run_version(uri: str, model: str, run_id: str) -> RegisteredVersion | None:
    """The version of `model` registered from this run, if any."""
    versions = store(uri).versions(f"name = '{_quoted(model)}' and run_id = '{_quoted(run_id)}'")
    return _version(max(versions, key=lambda v: int(v["version"]))) if versions else None


@out_of_process(inline_if=served)
def alias_version(uri: str, model: str, alias: str) -> str | None:
    """The version an alias points at; None when the model or the alias does not exist."""
    found = store(uri).alias(model, alias)
    return str(found["version"]) if found else None


@out_of_process(inline_if=served)
def set_alias(uri: str, model: str, alias: str, version: str) -> None:
    store(uri).set_alias(model, alias, version)


@out_of_process(inline_if=served)
def resolve(uri: str, model_uri: str) -> ResolvedModel | None:
    """The version a `models:/<name>/<version>` or `models:/<name>@<alias>` URI names, with where its
    files are; None when the model, the version or the alias does not exist. Any other URI is a
    ValueError (the spec is wrong, not the registry)."""
    match = MODEL_URI.fullmatch(model_uri)
    if match is None:
        raise ValueError(f"{model_uri!r} is neither models:/<name>/<version> nor models:/<name>@<alias>")
    s, name = store(uri), match["name"]
    found = s.version(name, match["version"]) if match["version"] else s.alias(name, match["alias"])
    if found is None:
        return None
    version = str(found["version"])
    download_uri = s.download_uri(name, version)
    if download_uri is None:  # deleted between the two calls
        return None
    return ResolvedModel(name=name, version=version, download_uri=download_uri,
                         run_id=found.get("run_id") or None, source=found.get("source") or "")


_downloading = threading.Lock()


@out_of_process(inline_if=served)
def download(uri: str, resolved: ResolvedModel, destination: Path) -> Path:
    """The version's files in `destination/<name>/<version>`, returned. A version's files never change,
    so a directory already there is a complete earlier download and is reused; the files are written
    into a temporary directory beside it and renamed into place, so a download that failed midway
    (this process or an earlier one) leaves nothing there and is done again."""
    if resolved.name in (".", ".."):
        raise ValueError(f"{resolved.name!r} cannot name a model's directory")
    target = destination / resolved.name / resolved.version
    with _downloading:  # one download at a time: serving a version is rare, its files can be large
        if target.is_dir():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        for stale in target.parent.glob(f".{resolved.version}.partial-*"):
            shutil.rmtree(stale, ignore_errors=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{resolved.version}.partial-", dir=target.parent))
        try:
            files = partial / "files"
            store(uri).copy_files(resolved.download_uri, files)
            if not files.is_dir() or not any(files.iterdir()):
                raise RuntimeError(f"MLflow holds no files for {resolved.name} version {resolved.version} "
                                   f"at {resolved.download_uri}")
            files.rename(target)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return target
