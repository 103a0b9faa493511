"""The training builders: a NodeShape from a GPU profile and the spec's cpu/memory, and the TrainJob
(Trainer v2) and PyTorchJob (Training Operator 1.9) of a training run, against golden YAML for every
shipped GPU profile and both backends (LOOM_UPDATE_GOLDEN=1 rewrites the files after an intended
change; review the diff)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from loom.api.gpuprofile import GpuProfile
from loom.api.trainingjob import Backend, RuntimeKind, RuntimeRef
from loom.builders import training as builder
from loom.domain.training import NodeShape, Toleration, Training
from loom.domain.workloads import OwnerRef, SecretEnv, Workload
from loom.gpuprofiles import load_profiles

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden" / "training"
PROFILES = load_profiles(ROOT / "gpu-profiles")
OWNER = OwnerRef("loom.dev/v1alpha1", "TrainingJob", "recommender", "6f1c2a3e-0000-4000-8000-000000000003")
IMAGE = "registry.example.com/loom/main:0.1.0"
COMPONENTS = "/opt/loom/components"
BUILDERS: dict[str, Callable[[Workload, str, str], dict[str, Any]]] = {
    "trainjob": builder.trainjob,
    "pytorchjob": builder.pytorchjob,
}
GPU_TOLERATION = Toleration("nvidia.com/gpu", "Exists", None, "NoSchedule")


def run(node: NodeShape, **training: Any) -> Workload:
    """A two-tower training run as the TrainingJob service would submit it."""
    settings: dict[str, Any] = {
        "num_proc_per_node": max(1, node.gpus), "backoff_limit": 2, "queue": "team-recsys",
        "priority_class": "batch-high", "active_deadline_seconds": 21600, "ttl_seconds_after_finished": 86400,
    }
    settings.update(training)
    return Workload(
        name="recommender-run-3f2a9c1d",
        namespace="ml",
        component="train",
        args=("--config-file", "train.json"),
        env={"MLFLOW_TRACKING_URI": "http://mlflow.ml:5000", "NCCL_DEBUG": "INFO"},
        secret_env=(SecretEnv("AWS_SECRET_ACCESS_KEY", "lake-credentials", "s3.secret-access-key"),),
        owner=OWNER,
        labels={"loom.dev/trainingjob": "recommender"},
        retries=0,
        files={"train.json": '{"epochs": 20}'},
        training=Training(node=node, **settings),
    )


def _golden(name: str, manifest: dict[str, Any]) -> None:
    path = GOLDEN / name
    text = yaml.safe_dump(manifest, sort_keys=False)
    if os.environ.get("LOOM_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from the builder's output (LOOM_UPDATE_GOLDEN=1 to accept)"


@pytest.mark.parametrize("backend", sorted(BUILDERS))
@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_for_every_backend(backend: str, profile: str) -> None:
    work = run(builder.node_shape(PROFILES[profile], None, None))
    _golden(f"{backend}-{profile}.yaml", BUILDERS[backend](work, IMAGE, COMPONENTS))


@pytest.mark.parametrize("backend", sorted(BUILDERS))
def test_no_profile_only_cpu_and_memory(backend: str) -> None:
    work = run(builder.node_shape(None, "2", "4Gi"), queue=None, priority_class=None,
               active_deadline_seconds=None, ttl_seconds_after_finished=None)
    _golden(f"{backend}-no-profile.yaml", BUILDERS[backend](work, IMAGE, COMPONENTS))


@pytest.mark.parametrize("backend", sorted(BUILDERS))
def test_two_nodes(backend: str) -> None:
    work = run(builder.node_shape(PROFILES["nvidia-a100-40gb"], None, None), num_nodes=2)
    _golden(f"{backend}-2-nodes.yaml", BUILDERS[backend](work, IMAGE, COMPONENTS))


def test_golden_files_cover_exactly_the_shipped_profiles() -> None:
    cases = [*PROFILES, "no-profile", "2-nodes"]
    expected = {f"{backend}-{case}.yaml" for backend in BUILDERS for case in cases}
    assert {p.name for p in GOLDEN.glob("*.yaml")} == expected


def _profile(name: str) -> GpuProfile:
    return PROFILES[name]


@pytest.mark.parametrize(
    ("profile", "cpu", "memory", "requests", "limits"),
    [
        # the profile as it is, its GPUs in requests and limits alike
        ("nvidia-t4", None, None,
         {"cpu": "3", "memory": "12Gi", "nvidia.com/gpu": "1"}, {"cpu": "4", "memory": "14Gi", "nvidia.com/gpu": "1"}),
        # the spec's requests below the limits leave the limits alone
        ("nvidia-t4", "1", "8Gi",
         {"cpu": "1", "memory": "8Gi", "nvidia.com/gpu": "1"}, {"cpu": "4", "memory": "14Gi", "nvidia.com/gpu": "1"}),
        ("nvidia-t4", "3500m", "14Gi",
         {"cpu": "3500m", "memory": "14Gi", "nvidia.com/gpu": "1"}, {"cpu": "4", "memory": "14Gi", "nvidia.com/gpu": "1"}),
        # above them, the limits are raised to the request
        ("nvidia-t4", "4500m", "20Gi",
         {"cpu": "4500m", "memory": "20Gi", "nvidia.com/gpu": "1"},
         {"cpu": "4500m", "memory": "20Gi", "nvidia.com/gpu": "1"}),
        ("nvidia-t4", "6", "15000Mi",
         {"cpu": "6", "memory": "15000Mi", "nvidia.com/gpu": "1"},
         {"cpu": "6", "memory": "15000Mi", "nvidia.com/gpu": "1"}),
        # a MIG slice is its own extended resource, never nvidia.com/gpu
        ("nvidia-a100-80gb-mig-1g-10gb", None, None,
         {"cpu": "2", "memory": "12Gi", "nvidia.com/mig-1g.10gb": "1"},
         {"cpu": "2", "memory": "16Gi", "nvidia.com/mig-1g.10gb": "1"}),
        ("nvidia-h100-80gb-mig-1g-20gb", "8", None,
         {"cpu": "8", "memory": "32Gi", "nvidia.com/mig-1g.20gb": "1"},
         {"cpu": "8", "memory": "40Gi", "nvidia.com/mig-1g.20gb": "1"}),
        ("nvidia-h200-141gb", None, None,
         {"cpu": "176", "memory": "1700Gi", "nvidia.com/gpu": "8"},
         {"cpu": "188", "memory": "1900Gi", "nvidia.com/gpu": "8"}),
        # CPU only: no extended resource at all
        ("cpu", None, "8Gi", {"cpu": "2", "memory": "8Gi"}, {"cpu": "2", "memory": "8Gi"}),
        # no profile: the spec's requests only
        (None, "2", "4Gi", {"cpu": "2", "memory": "4Gi"}, {}),
        (None, None, "1G", {"memory": "1G"}, {}),
        (None, None, None, {}, {}),
    ],
)
def test_node_shape_resources(
    profile: str | None, cpu: str | None, memory: str | None, requests: dict[str, str], limits: dict[str, str]
) -> None:
    shape = builder.node_shape(PROFILES[profile] if profile else None, cpu, memory)
    assert (dict(shape.requests), dict(shape.limits)) == (requests, limits)


def test_node_shape_carries_the_profile() -> None:
    shape = builder.node_shape(_profile("nvidia-a100-80gb-mig-3g-40gb"), None, None)
    assert shape.profile == "nvidia-a100-80gb-mig-3g-40gb" and shape.gpus == 1
    assert shape.node_selector == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB", "nvidia.com/mig.strategy": "mixed"}
    assert shape.tolerations == (GPU_TOLERATION,)
    assert shape.shm_size == "16Gi"
    assert shape.env["NCCL_P2P_DISABLE"] == "1" and list(shape.env) == sorted(shape.env)
    assert builder.node_shape(_profile("nvidia-h100-80gb"), None, None).gpus == 8
    cpu = builder.node_shape(_profile("cpu"), None, None)
    assert (cpu.gpus, cpu.profile, cpu.node_selector, cpu.tolerations) == (0, "cpu", {}, ())


def test_tolerations_with_defaults_are_plain_wire_values() -> None:
    profile = GpuProfile.model_validate({
        "name": "x", "description": "d", "shmSize": "1Gi", "tolerations": [{"key": "example.com/pool"}],
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}},
    })
    (toleration,) = builder.node_shape(profile, None, None).tolerations
    assert yaml.safe_dump(toleration.to_wire()) == "key: example.com/pool\noperator: Exists\n"


def test_no_profile_is_an_empty_shape() -> None:
    assert builder.node_shape(None, None, None) == NodeShape()
    shape = builder.node_shape(None, "500m", None)
    assert (shape.profile, shape.gpus, shape.shm_size, shape.node_selector, shape.env) == (None, 0, None, {}, {})


def _trainjob(**training: Any) -> dict[str, Any]:
    return builder.trainjob(run(builder.node_shape(_profile("nvidia-h100-80gb"), None, None), **training),
                            IMAGE, COMPONENTS)


def test_trainjob_runs_the_entrypoint_under_torchrun() -> None:
    spec = _trainjob()["spec"]
    trainer = spec["trainer"]
    assert trainer["command"] == ["torchrun", "/opt/loom/components/train"]
    assert trainer["args"] == ["--config-file", "train.json"]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (1, 8)
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "8"
    assert spec["runtimeRef"] == {
        "name": "torch-distributed", "kind": "ClusterTrainingRuntime", "apiGroup": "trainer.kubeflow.org",
    }


def test_trainjob_env_merges_profile_and_workload_and_names_the_files() -> None:
    env = _trainjob()["spec"]["trainer"]["env"]
    plain = [e["name"] for e in env if "value" in e]
    assert plain == sorted(plain)
    values = {e["name"]: e.get("value") for e in env}
    assert values["NCCL_DEBUG"] == "INFO", "the workload's env wins over the profile's"
    assert values["NCCL_IB_DISABLE"] == "0" and values["LOOM_WORKLOAD_FILES"] == builder.FILES_DIR
    assert env[-1] == {"name": "AWS_SECRET_ACCESS_KEY",
                       "valueFrom": {"secretKeyRef": {"name": "lake-credentials", "key": "s3.secret-access-key"}}}
    assert not any(name.startswith("PET_") for name in values)


def test_trainjob_pod_settings_are_one_runtime_patch_of_the_node_job() -> None:
    (patch,) = _trainjob()["spec"]["runtimePatches"]
    assert patch["manager"] == "loom.dev/loom-operator"
    (job,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert job["name"] == "node"
    pod = job["template"]["spec"]["template"]
    assert pod["metadata"]["labels"]["loom.dev/workload"] == "recommender-run-3f2a9c1d"
    spec = pod["spec"]
    assert spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert spec["tolerations"] == [GPU_TOLERATION.to_wire()]
    assert spec["volumes"] == [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "128Gi"}},
        {"name": "workload-files", "configMap": {"name": "recommender-run-3f2a9c1d"}},
    ]
    # Trainer refuses env in a patch of the `node` container; mounts are allowed.
    assert spec["containers"] == [{"name": "node", "volumeMounts": [
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "workload-files", "mountPath": builder.FILES_DIR, "readOnly": True},
    ]}]


def test_trainjob_run_policy_and_kueue_labels() -> None:
    manifest = _trainjob(suspend=True, runtime_ref=RuntimeRef(name="torch-gpu", kind=RuntimeKind.NAMESPACED))
    meta, spec = manifest["metadata"], manifest["spec"]
    assert meta["labels"]["kueue.x-k8s.io/queue-name"] == "team-recsys"
    assert meta["labels"]["kueue.x-k8s.io/priority-class"] == "batch-high"
    assert meta["labels"]["loom.dev/trainingjob"] == "recommender"
    assert meta["ownerReferences"] == [OWNER.to_wire()]
    assert (spec["suspend"], spec["activeDeadlineSeconds"]) == (True, 21600)
    assert spec["runtimeRef"]["kind"] == "TrainingRuntime" and spec["runtimeRef"]["name"] == "torch-gpu"
    assert "managedBy" not in spec and "backoffLimit" not in spec
    plain = _trainjob(queue=None, priority_class=None, active_deadline_seconds=None)
    assert not any(k.startswith("kueue.x-k8s.io/") for k in plain["metadata"]["labels"])
    assert plain["spec"]["suspend"] is False and "activeDeadlineSeconds" not in plain["spec"]


def test_trainjob_without_files_or_profile_patches_only_pod_labels() -> None:
    work = dataclasses.replace(run(builder.node_shape(None, None, None)), files={}, env={}, secret_env=())
    manifest = builder.trainjob(work, IMAGE, COMPONENTS)
    (patch,) = manifest["spec"]["runtimePatches"]
    pod = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]
    assert set(pod) == {"metadata"}
    assert "env" not in manifest["spec"]["trainer"] and "resourcesPerNode" not in manifest["spec"]["trainer"]


def _pytorchjob(**training: Any) -> dict[str, Any]:
    return builder.pytorchjob(run(builder.node_shape(_profile("nvidia-a10g"), None, None), **training),
                              IMAGE, COMPONENTS)


def test_pytorchjob_has_a_master_and_one_worker_per_further_node() -> None:
    single = _pytorchjob()["spec"]["pytorchReplicaSpecs"]
    assert list(single) == ["Master"] and single["Master"]["replicas"] == 1
    four = _pytorchjob(num_nodes=4)["spec"]["pytorchReplicaSpecs"]
    assert (four["Master"]["replicas"], four["Worker"]["replicas"]) == (1, 3)
    assert four["Master"]["template"] == four["Worker"]["template"]
    assert four["Master"]["restartPolicy"] == four["Worker"]["restartPolicy"] == "OnFailure"


def test_pytorchjob_pod_shape() -> None:
    pod = _pytorchjob()["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["name"] == "pytorch"
    assert container["command"] == ["torchrun", "/opt/loom/components/train"]
    assert container["resources"]["requests"]["nvidia.com/gpu"] == container["resources"]["limits"]["nvidia.com/gpu"]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A10G"}
    assert pod["tolerations"] == [GPU_TOLERATION.to_wire()]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}} in pod["volumes"]


def test_pytorchjob_run_policy() -> None:
    spec = _pytorchjob(suspend=True, num_proc_per_node=4)["spec"]
    assert spec["nprocPerNode"] == "4"
    assert spec["runPolicy"] == {
        "backoffLimit": 2, "activeDeadlineSeconds": 21600, "ttlSecondsAfterFinished": 86400, "suspend": True,
        "schedulingPolicy": {"queue": "team-recsys", "priorityClass": "batch-high"},
    }
    bare = _pytorchjob(queue=None, priority_class=None, active_deadline_seconds=None, ttl_seconds_after_finished=None)
    assert bare["spec"]["runPolicy"] == {"backoffLimit": 2, "suspend": False}


@pytest.mark.parametrize("backend", sorted(BUILDERS))
def test_refused_runs(backend: str) -> None:
    build = BUILDERS[backend]
    work = run(builder.node_shape(None, None, None))
    with pytest.raises(ValueError, match="not a training run"):
        build(dataclasses.replace(work, training=None), IMAGE, COMPONENTS)
    with pytest.raises(ValueError, match="scheduled"):
        build(dataclasses.replace(work, name="scheduled", schedule="@daily"), IMAGE, COMPONENTS)
    with pytest.raises(ValueError, match="PET_MASTER_PORT, PET_NNODES, which Kubeflow sets"):
        build(dataclasses.replace(work, env={"PET_NNODES": "2", "PET_MASTER_PORT": "1"}), IMAGE, COMPONENTS)


def test_trainjob_names_start_with_a_letter() -> None:
    work = dataclasses.replace(run(NodeShape()), name="3f2a9c1d-recommender")
    with pytest.raises(ValueError, match="must start with a letter"):
        builder.trainjob(work, IMAGE, COMPONENTS)
    assert builder.pytorchjob(work, IMAGE, COMPONENTS)["metadata"]["name"] == "3f2a9c1d-recommender"


def test_backend_names_are_kubeflow_kinds() -> None:
    work = run(NodeShape())
    assert builder.trainjob(work, IMAGE, COMPONENTS)["kind"] == Backend.TRAINJOB.value
    assert builder.pytorchjob(work, IMAGE, COMPONENTS)["kind"] == Backend.PYTORCHJOB.value
