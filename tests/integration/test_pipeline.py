"""pipelines/lake_to_serving.py compiled, and run by kfp.local's SubprocessRunner in the pipelines
environment (.venv-pipelines, `make venv-pipelines`) against the real API server, with the test playing
the operator: it writes the statuses Loom would (a new lake snapshot, its materialization, a run that
registered a version and the gate's verdict), and the pipeline's deploy moves the served alias in a real
MLflow SQLite registry only when the version won."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import ROOT
from tests.integration.conftest import Kubectl, sample

pytestmark = pytest.mark.integration

PIPELINES_PYTHON = ROOT / ".venv-pipelines" / "bin" / "python"
PIPELINE = ROOT / "pipelines" / "lake_to_serving.py"
COMPILED = PIPELINE.with_suffix(".yaml")
MODEL = "movielens-two-tower"
# Iceberg snapshot ids are 64-bit: above kfp's 53-bit integers, so any rounding shows.
BEFORE, NEW = 1234567890123456789, 8765432109876543210
STEPS = ["ingest", "quality-check", "materialize", "train", "evaluate"]


def pipelines(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`python pipelines/lake_to_serving.py ...` in the pipelines environment."""
    proc = subprocess.run([str(PIPELINES_PYTHON), str(PIPELINE), *args], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("pipeline") / "lake_to_serving.yaml"
    pipelines("compile", str(path))
    return {"text": path.read_text(), "ir": yaml.safe_load(path.read_text())}


def test_the_ir_chains_six_steps_and_deploys_only_a_winner(compiled: dict[str, Any]) -> None:
    ir = compiled["ir"]
    tasks = ir["root"]["dag"]["tasks"]
    assert set(tasks) == {*STEPS, "condition-1"}
    for before, step in zip(STEPS, STEPS[1:]):
        assert before in tasks[step]["dependentTasks"], step
    assert "dependentTasks" not in tasks["ingest"]
    won = tasks["condition-1"]
    assert "evaluate" in won["dependentTasks"]
    assert won["triggerPolicy"]["condition"] == "inputs.parameter_values['pipelinechannel--evaluate-Output'] == true"
    assert list(ir["components"]["comp-condition-1"]["dag"]["tasks"]) == ["deploy"]
    assert set(ir["root"]["outputDefinitions"]["parameters"]) == {"snapshot_id", "feature_view_version",
                                                                 "model_version", "won"}
    # Observing steps never reuse an old run's outputs.
    deploy = ir["components"]["comp-condition-1"]["dag"]["tasks"]["deploy"]
    assert [tasks[step]["cachingOptions"] for step in STEPS] + [deploy["cachingOptions"]] == [{}] * 6


def test_the_components_install_what_the_pipelines_environment_holds(compiled: dict[str, Any]) -> None:
    """kfp.local with use_venv=False pip-installs each component's packages into .venv-pipelines: the
    same pins as its lock make that a no-op instead of a change of the environment."""
    lock = set((ROOT / "requirements" / "pipelines.txt").read_text().lower().split())
    pins = set(re.findall(r"'([A-Za-z0-9_.-]+==[^']+)'", compiled["text"]))
    assert pins and {pin.lower() for pin in pins} <= lock, pins


def test_the_committed_ir_is_up_to_date(compiled: dict[str, Any]) -> None:
    assert COMPILED.read_text() == compiled["text"], "run `make pipelines` and commit pipelines/lake_to_serving.yaml"


@pytest.fixture
def registry(tmp_path: Path) -> str:
    """An MLflow SQLite registry where version 1 serves as @champion and version 2 is the new one."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(MODEL)
    for _ in range(2):
        client.create_model_version(MODEL, str(tmp_path))
    client.set_registered_model_alias(MODEL, "champion", "1")
    return uri


def champion(uri: str) -> str:
    return str(MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(MODEL, "champion").version)


def patch_status(kc: Kubectl, kind: str, name: str, status: dict[str, Any]) -> None:
    kc.run("patch", kind, name, "--subresource=status", "--type=merge", "-p", json.dumps({"status": status}))


def lake_status(snapshot: int, rows: int) -> dict[str, Any]:
    ingest = {"time": "2026-12-01T10:00:00Z", "files": 1, "rows": rows, "snapshotId": snapshot}
    return {"tables": [{"name": "user_features", "currentSnapshotId": snapshot, "rowCount": rows, "lastIngest": ingest}]}


def play_the_operator(kc: Kubectl, won: bool) -> None:
    """What Loom writes once the new snapshot lands: the lake's, the FeatureSet's, the TrainingJob's."""
    patch_status(kc, "datalake", "movielens", lake_status(NEW, 671))
    patch_status(kc, "featureset", "user-features", {"sourceSnapshotId": NEW, "featureViewVersion": "fv-2",
                                                     "lastMaterialized": {"time": "2026-12-01T10:01:00Z", "rows": 671,
                                                                          "durationSeconds": 2.5, "snapshotId": NEW,
                                                                          "featureViewVersion": "fv-2"}})
    ours, theirs = (0.0912, 0.0879) if won else (0.0851, 0.0879)
    verdict = "beats" if won else "does not beat"
    patch_status(kc, "trainingjob", MODEL, {
        "phase": "Succeeded", "modelVersion": "2",
        "runs": [{"name": f"{MODEL}-new", "phase": "Succeeded", "snapshotId": NEW, "modelVersion": "2"},
                 {"name": f"{MODEL}-old", "phase": "Succeeded", "snapshotId": BEFORE, "modelVersion": "1"}],
        "gate": {"passed": won, "reason": f"recall@10 {ours} {verdict} the champion (version 1) at {theirs}",
                 **({"alias": "challenger"} if won else {})},
        "metrics": {"recall@10": ours, "popularity_recall@10": 0.0442, "champion_recall@10": theirs},
        "lineage": {"registeredModel": MODEL, "modelVersion": "2", "modelUri": f"models:/{MODEL}/2"},
    })


@pytest.mark.parametrize("won", [True, False], ids=["winner-deployed", "loser-kept-out"])
def test_a_new_snapshot_reaches_serving_only_when_its_version_wins(kc: Kubectl, namespace: str, registry: str,
                                                                   tmp_path: Path, won: bool) -> None:
    served = sample("inferenceservice")
    del served["spec"]["rollout"]["canary"]["fromAlias"]  # deploy moves @champion itself (no canary to feed)
    for obj in (sample("datalake"), sample("featureset"), sample("trainingjob"), served):
        kc.apply(obj)
    patch_status(kc, "datalake", "movielens", lake_status(BEFORE, 600))
    arguments = {"namespace": namespace, "after_snapshot_id": str(BEFORE), "min_rows": 100, "timeout_seconds": 120,
                 "tracking_uri": registry}
    pipeline = subprocess.Popen(
        [str(PIPELINES_PYTHON), str(PIPELINE), "run", "--arguments", json.dumps(arguments),
         "--pipeline-root", str(tmp_path / "root")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    play_the_operator(kc, won)
    log, _ = pipeline.communicate(timeout=600)
    assert pipeline.returncode == 0, log[-8000:]

    outputs = json.loads(log.strip().splitlines()[-1])
    assert outputs == {"snapshot_id": str(NEW), "feature_view_version": "fv-2", "model_version": "2", "won": won}
    assert champion(registry) == ("2" if won else "1"), log[-8000:]
    assert (f"models:/{MODEL}@champion is version 2" in log) == won
    assert any((tmp_path / "root").glob("*/deploy")) == won, "deploy ran only for a winner"
