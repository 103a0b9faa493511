"""The MLflow driver against real MLflow: a tracking server spoken to over REST, and the same SQLite
store opened by the library, must answer alike (runs by Loom run name, epoch history, the version a
run registered, aliases read and moved)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loom.devcluster.mlflow import mlflow_server
from loom.drivers import mlflow_tracking

EXPERIMENT = "ml/recsys"
MODEL = "recsys-two-tower"


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
