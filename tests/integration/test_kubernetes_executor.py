"""The Kubernetes executor against the real kube-apiserver and kube-controller-manager. There is no
kubelet, so the tests play it (pod status) or the Job controller (Job status) where a pod would run."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from typing import Any

import pytest

from loom.domain.workloads import OwnerRef, Phase, PythonEnv, SecretEnv, Workload
from loom.drivers.kube_http import KubeHttp
from loom.executors.kubernetes import KubernetesExecutor
from tests.integration.conftest import Kubectl, eventually, sample

IMAGE = "registry.example.com/loom/main:0.1.0"
LABELS = {"loom.dev/datalake": "movielens", "loom.dev/task": "ingest"}


@pytest.fixture
def executor(kube_api: KubeHttp) -> KubernetesExecutor:
    return KubernetesExecutor({PythonEnv.MAIN: IMAGE}, kube_api)


@pytest.fixture
def owner(kc: Kubectl) -> OwnerRef:
    kc.apply(sample("datalake"))
    lake = kc.get("datalake", "movielens")
    return OwnerRef("loom.dev/v1alpha1", "DataLake", "movielens", lake["metadata"]["uid"])


def workload(namespace: str, owner: OwnerRef, name: str = "movielens-ingest-movies-1a2b3c4d", **kw: Any) -> Workload:
    return Workload(
        name, namespace, "ingest", args=("--catalog-properties-file", "catalog.json", "--ingest", "movies"),
        files={"catalog.json": "{}"},
        secret_env=(SecretEnv("LOOM_CATALOG_SECRET_0", "lake-credentials", "password"),),
        owner=owner, labels=LABELS, **kw,
    )


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def patch_status(kc: Kubectl, resource: str, status: dict[str, Any]) -> None:
    kc.run("patch", resource, "--subresource=status", "--type=merge", "-p", json.dumps({"status": status}))


def test_job_is_applied_once_and_follows_its_conditions(
    kc: Kubectl, namespace: str, owner: OwnerRef, executor: KubernetesExecutor
) -> None:
    w = workload(namespace, owner)
    executor.submit(w)
    executor.submit(w)
    job = json.loads(kc.run("get", "job", w.name, "-o", "json", "--show-managed-fields").stdout)
    assert job["metadata"]["ownerReferences"][0]["uid"] == owner.uid
    assert job["metadata"]["labels"]["loom.dev/workload"] == w.name
    assert [(m["manager"], m["operation"]) for m in job["metadata"]["managedFields"] if m["operation"] == "Apply"] == [
        ("loom-operator", "Apply")
    ]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "/opt/loom/components/ingest"]
    assert {"name": "LOOM_CATALOG_SECRET_0", "valueFrom": {"secretKeyRef": {"name": "lake-credentials", "key": "password"}}} in container["env"]
    (run,) = executor.runs(namespace, w.name)
    assert (run.name, run.phase) == (w.name, Phase.PENDING)

    stamp = now()  # play the Job controller: the pod succeeded
    patch_status(kc, f"job/{w.name}", {
        "startTime": job["status"].get("startTime", stamp), "completionTime": stamp, "succeeded": 1, "active": 0,
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": stamp, "lastProbeTime": stamp},
            {"type": "Complete", "status": "True", "lastTransitionTime": stamp, "lastProbeTime": stamp},
        ],
    })
    (run,) = executor.runs(namespace, w.name)
    assert (run.phase, run.exit_code) == (Phase.SUCCEEDED, 0) and run.finished_at is not None
    executor.submit(w)  # a finished run is not started again
    assert kc.get("job", w.name)["metadata"]["uid"] == job["metadata"]["uid"]


def test_files_are_a_config_map_the_pod_mounts_and_go_with_the_workload(
    kc: Kubectl, namespace: str, owner: OwnerRef, executor: KubernetesExecutor
) -> None:
    large = json.dumps({f"p{i}": "v" * 4096 for i in range(40)})  # over the 128 KiB of one env value
    w = dataclasses.replace(workload(namespace, owner), files={"catalog.json": large})
    executor.submit(w)
    cm = json.loads(kc.run("get", "configmap", w.name, "-o", "json", "--show-managed-fields").stdout)
    assert cm["data"] == {"catalog.json": large}
    assert cm["metadata"]["ownerReferences"][0]["uid"] == owner.uid
    assert cm["metadata"]["labels"]["loom.dev/workload"] == w.name
    assert {m["manager"] for m in cm["metadata"]["managedFields"]} == {"loom-operator"}
    pod = kc.get("job", w.name)["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": "workload-files", "configMap": {"name": w.name, "defaultMode": 420}}]
    (container,) = pod["containers"]
    assert container["volumeMounts"] == [
        {"name": "workload-files", "mountPath": "/var/run/loom/workload", "readOnly": True}
    ]
    assert {"name": "LOOM_WORKLOAD_FILES", "value": "/var/run/loom/workload"} in container["env"]

    executor.delete(namespace, w.name)
    assert kc.run("get", "configmap", w.name, check=False).returncode != 0
    executor.delete(namespace, w.name)  # nothing left to delete is no error


def test_failed_run_reports_the_last_line_it_wrote(
    kc: Kubectl, namespace: str, owner: OwnerRef, executor: KubernetesExecutor
) -> None:
    w = workload(namespace, owner, retries=0)
    executor.submit(w)

    def pod() -> str:
        names = kc.run("get", "pods", "-l", f"batch.kubernetes.io/job-name={w.name}", "-o", "name").stdout.split()
        return names[0] if names else ""

    name = eventually(pod, what="the Job controller to create the pod")
    stamp = now()  # play the kubelet: the container ran and failed; the real Job controller does the rest
    message = "reading 1/2 file:///in/a.csv\ningest movies failed: file:///in/b.csv: column 'year' (string) cannot be read as int32"
    patch_status(kc, name, {
        "phase": "Failed",
        "containerStatuses": [{
            "name": "ingest", "image": IMAGE, "imageID": "", "ready": False, "restartCount": 0,
            "state": {"terminated": {"exitCode": 1, "reason": "Error", "message": message,
                                     "startedAt": stamp, "finishedAt": stamp}},
        }],
    })
    run = eventually(lambda: next((r for r in executor.runs(namespace, w.name) if r.finished), None),
                     what="the Job to be marked failed")
    assert (run.phase, run.exit_code) == (Phase.FAILED, 1)
    assert run.message == "ingest movies failed: file:///in/b.csv: column 'year' (string) cannot be read as int32"


def test_a_schedule_is_a_cronjob_whose_jobs_are_its_runs(
    kc: Kubectl, namespace: str, owner: OwnerRef, executor: KubernetesExecutor
) -> None:
    w = workload(namespace, owner, name="movielens-ingest-ratings-9f8e7d6c", schedule="*/5 * * * *",
                 ttl_seconds_after_finished=86400)
    executor.submit(w)
    assert executor.runs(namespace, w.name) == []
    executor.submit(dataclasses.replace(w, schedule="@hourly"))  # changed in place
    cron = kc.get("cronjob", w.name)
    assert cron["spec"]["schedule"] == "@hourly" and cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert cron["spec"]["jobTemplate"]["spec"]["ttlSecondsAfterFinished"] == 86400

    kc.run("create", "job", f"--from=cronjob/{w.name}", f"{w.name}-manual")  # what the CronJob controller does at a tick
    (run,) = executor.runs(namespace, w.name)
    assert (run.name, run.phase) == (f"{w.name}-manual", Phase.PENDING)
    once = workload(namespace, owner)
    executor.submit(once)
    assert executor.names(namespace, LABELS) == {w.name, once.name}
    assert executor.names(namespace, {**LABELS, "loom.dev/datalake": "other"}) == set()

    assert kc.get("configmap", w.name)["data"] == dict(w.files)
    executor.delete(namespace, w.name)
    assert executor.names(namespace, LABELS) == {once.name}
    assert kc.run("get", "cronjob", w.name, check=False).returncode != 0
    assert kc.run("get", "configmap", w.name, check=False).returncode != 0
    assert executor.runs(namespace, w.name) == []
