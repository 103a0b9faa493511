"""The trainer under torchrun, as Kubeflow's torch runtime (or the local executor) starts it: two
processes on gloo train one model with DistributedDataParallel, and only rank 0 talks to MLflow."""

from __future__ import annotations

import json
import sys

from mlflow import MlflowClient

from tests.integration.training.conftest import Setup

TORCHRUN = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2")


def test_two_processes_train_one_model_and_register_one_version(setup: Setup) -> None:
    proc = setup.train(*TORCHRUN, **{"model.hyperparameters": {"embeddingDim": "16", "hidden": "32", "epochs": "2"}})
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "rank 1: epoch 2/2" in proc.stderr and "rank 0:" in proc.stderr

    client = MlflowClient(setup.tracking_uri)
    versions = client.search_model_versions("name='movielens-two-tower'")
    assert [str(v.version) for v in versions] == ["1"] and result["modelVersion"] == "1"
    runs = client.search_runs([client.get_experiment_by_name("ns/movielens-two-tower").experiment_id])
    assert [r.info.run_id for r in runs] == [result["runId"]] and runs[0].info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(result["runId"], "loss")] == [1, 2]
