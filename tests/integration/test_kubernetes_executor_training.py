"""Training workloads through the Kubernetes executor against the real kube-apiserver, with the minimal
Kubeflow CRDs of tests/crds/kubeflow/ (or without them). No Kubeflow controller runs: the tests play
it by patching the children's status, and check what the executor makes of it."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from typing import Any

import pytest

from loom.api.trainingjob import Backend
from loom.domain.errors import TrainingKindMissingError
from loom.domain.training import Replicas, TrainerProgress, Training
from loom.domain.workloads import OwnerRef, Phase, PythonEnv, Workload
from loom.drivers.kube_http import KubeHttp
from loom.executors.kubernetes import KubernetesExecutor
from tests.integration.conftest import Kubectl, sample
from tests.support.kubeflow import condition, kubeflow_cleanup, kubeflow_crds, no_kubeflow_crds, patch_status

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("kubeflow_cleanup")]
__all__ = ["kubeflow_cleanup", "kubeflow_crds", "no_kubeflow_crds"]  # fixtures used by name

IMAGE = "registry.example.com/loom/main:0.1.0"
LABELS = {"loom.dev/trainingjob": "recsys"}


@pytest.fixture
def executor(kube_api: KubeHttp) -> KubernetesExecutor:
    return KubernetesExecutor({PythonEnv.MAIN: IMAGE}, kube_api)


@pytest.fixture
def owner(kc: Kubectl) -> OwnerRef:
    kc.apply(sample("datalake"))
    lake = kc.get("datalake", "movielens")
    return OwnerRef("loom.dev/v1alpha1", "DataLake", "movielens", lake["metadata"]["uid"])


def workload(namespace: str, owner: OwnerRef, backend: Backend = Backend.TRAINJOB, **kw: Any) -> Workload:
    return Workload(
        "recsys-run-1a2b3c4d", namespace, "train", args=("--config", "train.json"),
        files={"train.json": json.dumps({"epochs": 2})}, owner=owner, labels=LABELS,
        training=Training(backend=backend, num_nodes=2, num_proc_per_node=2, backoff_limit=1, **kw),
    )


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def suspended(w: Workload, value: bool) -> Workload:
    assert w.training is not None
    return dataclasses.replace(w, training=dataclasses.replace(w.training, suspend=value))


@pytest.mark.usefixtures("kubeflow_crds")
def test_a_trainjob_is_applied_with_its_files_and_follows_kubeflow(
    kc: Kubectl, namespace: str, owner: OwnerRef, executor: KubernetesExecutor
) -> None:
    w = workload(namespace, owner)
    executor.submit(w)
    trainjob = json.loads(kc.run("get", "trainjob", w.name, "-o", "json", "--show-managed-fields").stdout)
    assert trainjob["apiVersion"] == "trainer.kubeflow.org/v1alpha1"
    assert trainjob["metadata"]["labels"]["loom.dev/workload"] == w.name
    assert trainjob["metadata"]["labels"]["loom.dev/trainingjob"] == "recsys"
    assert trainjob["metadata"]["ownerReferences"][0]["uid"] == owner.uid
    assert {m["manager"] for m in trainjob["metadata"]["managedFields"] if m["operation"] == "Apply"} == {"loom-operator"}
    spec = trainjob["spec"]
    assert spec["suspend"] is False and spec["runtimeRef"]["name"] == "torch-distributed"
    assert (spec["trainer"]["numNodes"], spec["trainer"]["numProcPerNode"], spec["trainer"]["image"]) == (2, 2, IMAGE)
    files = kc.get("configmap", w.name)
    assert files["data"] == dict(w.files) and files["metadata"]["ownerReferences"][0]["uid"] == owner.uid
    (run,) = executor.runs(namespace, w.name)
    assert (run.name, run.phase, run.replicas) == (w.name, Phase.PENDING, Replicas())

    patch_status(kc, f"trainjob/{w.name}", {
        "jobsStatus": [{"name": "node", "ready": 2, "active": 2, "succeeded": 0, "failed": 0, "suspended": 0}],
        "trainerStatus": {"progressPercentage": 40, "estimatedRemainingSeconds": 90,
                          "metrics": [{"name": "loss", "value": "0.25"}, {"name": "note", "value": "n/a"}]},
    })
    (run,) = executor.runs(namespace, w.name)
    assert (run.phase, run.replicas) == (Phase.RUNNING, Replicas(active=2))
    assert run.trainer == TrainerProgress(40, 90, {"loss": 0.25})
    assert run.started_at is not None

    stamp = now()
    patch_status(kc, f"trainjob/{w.name}", {
        "conditions": [condition("Complete", "JobsCompleted", "TrainJob is completed", stamp)],
        "jobsStatus": [{"name": "node", "ready": 0, "active": 0, "succeeded": 2, "failed": 0, "suspended": 0}],
    })
    (run,) = executor.runs(namespace, w.name)
    assert (run.phase, run.exit_code, run.replicas) == (Phase.SUCCEEDED, 0, Replicas(succeeded=2))
    assert run.message == "JobsCompleted: TrainJob is completed"
    assert run.finished_at == datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    executor.submit(w)  # the same content: applied again, changes nothing
    again = kc.get("trainjob", w.name)
    assert (again["metadata"]["uid"], again["metadata"]["generation"]) == (trainjob["metadata"]["uid"], 1)
    assert executor.names(namespace, LABELS) == {w.name}


@pytest.mark.usefixtures("kubeflow_crds")
def test_suspend_flips_both_ways(kc: Kubectl, namespace: str, owner: OwnerRef, executor: KubernetesExecutor) -> None:
    w = workload(namespace, owner)
    executor.submit(suspended(w, True))  # created suspended, as Kueue admits it later
    assert kc.get("trainjob", w.name)["spec"]["suspend"] is True
    patch_status(kc, f"trainjob/{w.name}", {
        "conditions": [condition("Suspended", "Suspended", "TrainJob is suspended", now())],
    })
    (run,) = executor.runs(namespace, w.name)
    assert (run.phase, run.message) == (Phase.SUSPENDED, "Suspended: TrainJob is suspended")

    executor.submit(w)
    assert kc.get("trainjob", w.name)["spec"]["suspend"] is False
    patch_status(kc, f"trainjob/{w.name}", {
        "conditions": [condition("Suspended", "Resumed", "TrainJob is resumed", now(), status="False")],
        "jobsStatus": [{"name": "node", "ready": 1, "active": 1, "succeeded": 0, "failed": 0, "suspended": 0}],
    })
    (run,) = executor.runs(namespace, w.name)
    assert (run.phase, run.replicas) == (Phase.RUNNING, Replicas(active=1))
    executor.submit(suspended(w, True))
    assert kc.get("trainjob", w.name)["spec"]["suspend"] is True


@pytest.mark.usefixtures("kubeflow_crds")
def test_a_pytorchjob_follows_its_conditions_and_is_deleted_with_its_files(
    kc: Kubectl, namespace: str, owner: OwnerRef, executor: KubernetesExecutor
) -> None:
    w = workload(namespace, owner, Backend.PYTORCHJOB)
    executor.submit(w)
    job = kc.get("pytorchjob", w.name)
    assert job["apiVersion"] == "kubeflow.org/v1"
    assert job["metadata"]["ownerReferences"][0]["uid"] == owner.uid
    assert job["metadata"]["labels"]["loom.dev/workload"] == w.name
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert (replicas["Master"]["replicas"], replicas["Worker"]["replicas"]) == (1, 1)
    assert job["spec"]["runPolicy"]["backoffLimit"] == 1 and job["spec"]["runPolicy"]["suspend"] is False
    assert kc.run("get", "trainjob", w.name, check=False).returncode != 0

    created = now()
    patch_status(kc, f"pytorchjob/{w.name}", {
        "conditions": [condition("Created", "PyTorchJobCreated", "PyTorchJob is created.", created)],
    })
    (run,) = executor.runs(namespace, w.name)
    assert (run.phase, run.message) == (Phase.PENDING, "PyTorchJobCreated: PyTorchJob is created.")
    patch_status(kc, f"pytorchjob/{w.name}", {
        "startTime": created,
        "conditions": [condition("Created", "PyTorchJobCreated", "PyTorchJob is created.", created),
                       condition("Running", "PyTorchJobRunning", "PyTorchJob is running.", now())],
        "replicaStatuses": {"Master": {"active": 1}, "Worker": {"active": 1}},
    })
    (run,) = executor.runs(namespace, w.name)
    assert (run.phase, run.replicas) == (Phase.RUNNING, Replicas(active=2))
    assert run.started_at == datetime.fromisoformat(created.replace("Z", "+00:00"))
    failed = now()
    patch_status(kc, f"pytorchjob/{w.name}", {
        "conditions": [condition("Created", "PyTorchJobCreated", "PyTorchJob is created.", created),
                       condition("Running", "PyTorchJobRunning", "PyTorchJob is running.", created, status="False"),
                       condition("Failed", "PyTorchJobFailed", "Worker 0 exited with code 1", failed)],
        "replicaStatuses": {"Master": {"active": 0, "failed": 1}, "Worker": {"active": 0, "failed": 1}},
    })
    (run,) = executor.runs(namespace, w.name)
    assert (run.phase, run.replicas) == (Phase.FAILED, Replicas(failed=2))
    assert run.message == "PyTorchJobFailed: Worker 0 exited with code 1"
    assert run.finished_at == datetime.fromisoformat(failed.replace("Z", "+00:00"))

    assert executor.names(namespace, LABELS) == {w.name}
    executor.delete(namespace, w.name)
    assert kc.run("get", "pytorchjob", w.name, check=False).returncode != 0
    assert kc.run("get", "configmap", w.name, check=False).returncode != 0
    assert executor.runs(namespace, w.name) == [] and executor.names(namespace, LABELS) == set()
    executor.delete(namespace, w.name)  # nothing left to delete is no error


@pytest.mark.usefixtures("no_kubeflow_crds")
def test_a_missing_kind_names_the_fix_and_is_otherwise_no_error(
    kc: Kubectl, namespace: str, owner: OwnerRef, executor: KubernetesExecutor
) -> None:
    w = workload(namespace, owner)
    with pytest.raises(TrainingKindMissingError) as trainjob:
        executor.submit(w)
    assert str(trainjob.value) == (
        "the cluster has no TrainJob kind (trainer.kubeflow.org/v1alpha1): install Kubeflow Trainer v2 "
        "(and JobSet), or set spec.backend: PyTorchJob for Training Operator 1.9"
    )
    with pytest.raises(TrainingKindMissingError) as pytorchjob:
        executor.submit(workload(namespace, owner, Backend.PYTORCHJOB))
    assert str(pytorchjob.value) == (
        "the cluster has no PyTorchJob kind (kubeflow.org/v1): install Kubeflow Training Operator 1.9, "
        "or set spec.backend: TrainJob for Kubeflow Trainer v2"
    )
    assert executor.runs(namespace, w.name) == []
    assert executor.names(namespace, LABELS) == set()
    executor.delete(namespace, w.name)
    assert kc.run("get", "configmap", w.name, check=False).returncode != 0
