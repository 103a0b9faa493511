"""The MLflow driver against real MLflow: a tracking server spoken to over REST, and the same SQLite
store opened by the library, must answer alike (runs by Loom run name, epoch history, the version a
run registered, aliases read and moved, `models:/` URIs resolved); a version's files are downloaded
byte for byte, through the server's artifact proxy or from its file store."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from loom.devcluster.mlflow import mlflow_server
from loom.drivers import mlflow_tracking

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

EXPERIMENT = "ml/recsys"
MODEL = "recsys-two-tower"
# A version logged as the trainer logs one (an MLflow 3 LoggedModel, registered from it), its files in
# the server's file store; and one in an experiment whose artifacts the server proxies.
SERVED = "recsys-served"
PROXIED = "recsys-proxied"


def _version_files(directory: Path, seed: int) -> Path:
    """A version's layout (components/train/export.py): binary arrays, JSON, model settings, a subfolder."""
    directory.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    np.save(directory / "item_embeddings.npy", rng.standard_normal((50, 8), dtype=np.float32))
    (directory / "user_tower.onnx").write_bytes(rng.bytes(300_000))
    (directory / "items.json").write_text("[1, 2, 3]")
    (directory / "model-settings.json").write_text('{"implementation": "serve.runtime.Recommender"}')
    (directory / "extra").mkdir()
    (directory / "extra" / "notes.txt").write_text("nested")
    return directory


def _log_version(client: MlflowClient, experiment: str, name: str, files: Path) -> None:
    from mlflow.entities import LoggedModelStatus

    run = client.create_run(experiment, tags={mlflow_tracking.RUN_TAG: f"{name}-run"})
    logged = client.create_logged_model(experiment, name=name, source_run_id=run.info.run_id)
    client.log_model_artifacts(logged.model_id, str(files))
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    client.set_terminated(run.info.run_id)
    client.create_registered_model(name)
    client.create_model_version(name, f"models:/{logged.model_id}", run_id=run.info.run_id, model_id=logged.model_id)
    client.set_registered_model_alias(name, "champion", "1")


def _tree(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The server's URL and the SQLite URI of the store behind it, with one tracked, registered run."""
    from mlflow.tracking import MlflowClient

    directory = tmp_path_factory.mktemp("mlflow")
    with mlflow_server(directory) as url:
        client = MlflowClient(tracking_uri=url, registry_uri=url)
        experiment = client.create_experiment(EXPERIMENT)
        run = client.create_run(experiment, tags={mlflow_tracking.RUN_TAG: "recsys-1a2b", "loom.dev/x": "y"})
        run_id = run.info.run_id
        client.log_param(run_id, "epochs", "3")
        for epoch in (1, 2, 3):
            client.log_metric(run_id, "epoch", epoch, step=epoch, timestamp=1_700_000_000_000 + epoch * 1000)
            client.log_metric(run_id, "loss", 1.0 / epoch, step=epoch)
        client.log_metric(run_id, "recall_at_10", 0.081)
        client.set_terminated(run_id)
        client.create_registered_model(MODEL)
        client.create_model_version(MODEL, f"runs:/{run_id}/model", run_id=run_id)
        other = client.create_run(experiment, tags={mlflow_tracking.RUN_TAG: "recsys-other"})
        client.create_model_version(MODEL, f"runs:/{other.info.run_id}/model", run_id=other.info.run_id)
        _log_version(client, experiment, SERVED, _version_files(directory / "served", 1))
        proxied = client.create_experiment("ml/proxied", artifact_location="mlflow-artifacts:/proxied")
        _log_version(client, proxied, PROXIED, _version_files(directory / "proxied", 2))
        yield url, f"sqlite:///{directory / 'mlflow.db'}"


@pytest.mark.parametrize("via", ["rest", "library"])
def test_a_run_is_found_by_its_loom_name_with_metrics_and_epoch_times(server: tuple[str, str], via: str) -> None:
    uri = server[0] if via == "rest" else server[1]
    assert isinstance(mlflow_tracking.store(uri),
                      mlflow_tracking.RestStore if via == "rest" else mlflow_tracking.LibraryStore)
    run = mlflow_tracking.find_run(uri, EXPERIMENT, "recsys-1a2b")
    assert run is not None and run.status == "FINISHED"
    assert run.metrics == {"epoch": 3.0, "loss": pytest.approx(1 / 3), "recall_at_10": 0.081}
    assert run.params == {"epochs": "3"} and run.tags == {mlflow_tracking.RUN_TAG: "recsys-1a2b", "loom.dev/x": "y"}
    assert [t.timestamp() for t in run.epochs_ended] == [1_700_000_001, 1_700_000_002, 1_700_000_003]
    assert mlflow_tracking.find_run(uri, EXPERIMENT, "no-such-run") is None
    assert mlflow_tracking.find_run(uri, "no/such-experiment", "recsys-1a2b") is None
    version = mlflow_tracking.run_version(uri, MODEL, run.run_id)
    assert version is not None and (version.name, version.version, version.run_id) == (MODEL, "1", run.run_id)
    assert mlflow_tracking.run_version(uri, MODEL, "0" * 32) is None


def test_aliases_are_read_and_moved_alike(server: tuple[str, str]) -> None:
    rest, library = server
    for uri in (rest, library):
        assert mlflow_tracking.alias_version(uri, MODEL, "challenger") is None
        assert mlflow_tracking.alias_version(uri, "no-such-model", "champion") is None
    mlflow_tracking.set_alias(rest, MODEL, "challenger", "2")
    assert [mlflow_tracking.alias_version(u, MODEL, "challenger") for u in (rest, library)] == ["2", "2"]
    mlflow_tracking.set_alias(library, MODEL, "challenger", "1")
    assert [mlflow_tracking.alias_version(u, MODEL, "challenger") for u in (rest, library)] == ["1", "1"]


def test_an_unreachable_server_raises_rather_than_answering_nothing(tmp_path: Path) -> None:
    with pytest.raises(Exception):
        mlflow_tracking.find_run("http://127.0.0.1:9", EXPERIMENT, "recsys-1a2b")


def test_model_uris_resolve_alike_to_the_version_and_its_files(server: tuple[str, str]) -> None:
    rest, library = server
    for name in (SERVED, PROXIED):
        by_version, by_alias = ([mlflow_tracking.resolve(u, uri) for u in (rest, library)]
                                for uri in (f"models:/{name}/1", f"models:/{name}@champion"))
        assert by_version[0] == by_version[1] == by_alias[0] == by_alias[1]
        resolved = by_version[0]
        assert resolved is not None and (resolved.name, resolved.version) == (name, "1")
        assert resolved.run_id and resolved.source.startswith("models:/m-")
        assert resolved.download_uri.endswith("/artifacts")
    proxied = mlflow_tracking.resolve(rest, f"models:/{PROXIED}/1")
    assert proxied is not None and proxied.download_uri.startswith("mlflow-artifacts:/proxied/")
    for uri in (rest, library):
        assert mlflow_tracking.resolve(uri, f"models:/{SERVED}@challenger") is None
        assert mlflow_tracking.resolve(uri, f"models:/{SERVED}/7") is None
        assert mlflow_tracking.resolve(uri, "models:/no-such-model@champion") is None
        assert mlflow_tracking.resolve(uri, "models:/no-such-model/1") is None
        for wrong in ("models:/m-0123456789", "runs:/abc/model", f"models:/{SERVED}/latest", f"models:/{SERVED}"):
            with pytest.raises(ValueError):
                mlflow_tracking.resolve(uri, wrong)


@pytest.mark.parametrize(("via", "name"), [("rest", SERVED), ("rest", PROXIED), ("library", SERVED)])
def test_a_version_is_downloaded_byte_for_byte_once(server: tuple[str, str], tmp_path: Path,
                                                    via: str, name: str) -> None:
    uri = server[0] if via == "rest" else server[1]
    logged = Path(server[1].removeprefix("sqlite:///")).parent / ("served" if name == SERVED else "proxied")
    resolved = mlflow_tracking.resolve(uri, f"models:/{name}@champion")
    assert resolved is not None
    # What a download that died midway left behind is cleared, not reused.
    (tmp_path / name).mkdir()
    (tmp_path / name / ".1.partial-dead").mkdir()
    (tmp_path / name / ".1.partial-dead" / "items.json").write_text("[")
    files = mlflow_tracking.download(uri, resolved, tmp_path)
    assert files == tmp_path / name / "1"
    assert _tree(files) == _tree(logged)
    assert sorted(p.name for p in (tmp_path / name).iterdir()) == ["1"]
    # A complete download is reused, not fetched again.
    before = {p: os.stat(p).st_mtime_ns for p in files.rglob("*")}
    assert mlflow_tracking.download(uri, resolved, tmp_path) == files
    assert {p: os.stat(p).st_mtime_ns for p in files.rglob("*")} == before


def test_a_failed_download_leaves_nothing_to_reuse(server: tuple[str, str], tmp_path: Path) -> None:
    rest, library = server
    for uri in (rest, library):
        resolved = mlflow_tracking.resolve(uri, f"models:/{SERVED}/1")
        assert resolved is not None
        missing = mlflow_tracking.ResolvedModel(SERVED, "9", resolved.download_uri + "-gone", None, "")
        with pytest.raises(Exception):
            mlflow_tracking.download(uri, missing, tmp_path)
        assert list((tmp_path / SERVED).iterdir()) == []
    unreadable = mlflow_tracking.ResolvedModel(SERVED, "9", "s3://bucket/models/m-1/artifacts", None, "")
    with pytest.raises(RuntimeError, match="serve-artifacts"):
        mlflow_tracking.download(rest, unreadable, tmp_path)


def test_a_tracking_server_s_version_reaches_disk_without_the_mlflow_library(server: tuple[str, str],
                                                                            tmp_path: Path) -> None:
    """The operator process serves a version from a tracking server over REST alone (about 200 MiB less)."""
    script = f"""
import sys
from pathlib import Path
from loom.drivers import mlflow_tracking
resolved = mlflow_tracking.resolve({server[0]!r}, "models:/{PROXIED}@champion")
mlflow_tracking.download({server[0]!r}, resolved, Path({str(tmp_path)!r}))
print(sorted(m for m in sys.modules if m.split(".")[0] == "mlflow"))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]"]
    assert (tmp_path / PROXIED / "1" / "item_embeddings.npy").is_file()
