"""Training workloads -> Kubeflow manifests (pure; the Kubernetes executor applies them): Trainer v2's
TrainJob (`trainer.kubeflow.org/v1alpha1`, shapes of v2.2 and v2.3) and Training Operator 1.9's PyTorchJob
(`kubeflow.org/v1`), each shaped by the run's NodeShape (a GPU profile plus the spec's cpu/memory).

Every node runs `torchrun <components_dir>/<component> <args>`. Both Kubeflow controllers give every
node's container the PET_* variables (nodes, processes per node, node rank, master address and port),
which torchrun reads as the defaults of its own flags, so the command names no topology and the same
entrypoint runs unchanged under the local executor's torchrun. The trainer entrypoint is never wrapped
by the runtime: the torch runtime only injects the environment and runs the command it is given.

The pod carries what `builders.job` gives a Job's pod: the workload's files as a ConfigMap named like the
workload mounted at FILES_DIR and named by $LOOM_WORKLOAD_FILES, secrets as secretKeyRefs; and what a
GPU profile asks for: resources, nodeSelector, tolerations, a memory-backed /dev/shm and NCCL env.
"""

from __future__ import annotations

from typing import Any

from loom.api.gpuprofile import GpuProfile, TaintEffect, TolerationOperator, cpu_cores, memory_bytes
from loom.api.gpuprofile import Toleration as GpuProfileToleration
from loom.api.trainingjob import RuntimeKind
from loom.builders import pods
from loom.builders.job import FILES_DIR, FILES_VOLUME, labels
from loom.builders.labels import MANAGER
from loom.domain.training import (
    PET_MASTER_ADDR,
    PET_MASTER_PORT,
    PET_NNODES,
    PET_NODE_RANK,
    PET_NPROC_PER_NODE,
    PRIORITY_LABEL,
    QUEUE_LABEL,
    NodeShape,
    Toleration,
    Training,
)
from loom.domain.workloads import FILES_ENV, Workload

TRAINJOB_API_VERSION = "trainer.kubeflow.org/v1alpha1"
PYTORCHJOB_API_VERSION = "kubeflow.org/v1"
# The torch runtime's replicated job and its trainer container are both named `node`.
TRAINER_NODE = "node"
# The Training Operator finds the training container of a PyTorchJob by this name.
PYTORCH_CONTAINER = "pytorch"
# A runtime patch is keyed by its manager, which Trainer's webhook requires to be a domain-prefixed path.
PATCH_MANAGER = f"loom.dev/{MANAGER}"
SHM_VOLUME = "dshm"
SHM_DIR = "/dev/shm"
# Set by the Kubeflow controllers; Trainer's webhook refuses a TrainJob whose trainer env has any of them.
RESERVED_ENV = frozenset({PET_NNODES, PET_NPROC_PER_NODE, PET_NODE_RANK, PET_MASTER_ADDR, PET_MASTER_PORT})


def node_shape(profile: GpuProfile | None, cpu: str | None, memory: str | None) -> NodeShape:
    """What each node gets: the profile's requests and limits with its GPUs as an extended resource
    (requests = limits = count, as the device plugin demands), and the spec's cpu/memory as requests
    that override the profile's, a limit raised to at least its request so the pod stays valid.
    Without a profile, only the spec's cpu/memory requests: no placement, no GPUs, no limits."""
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if profile is not None:
        requests = {"cpu": profile.resources.requests.cpu, "memory": profile.resources.requests.memory}
        limits = {"cpu": profile.resources.limits.cpu, "memory": profile.resources.limits.memory}
    if cpu is not None:
        requests["cpu"] = cpu
        if "cpu" in limits and cpu_cores(limits["cpu"]) < cpu_cores(cpu):
            limits["cpu"] = cpu
    if memory is not None:
        requests["memory"] = memory
        if "memory" in limits and memory_bytes(limits["memory"]) < memory_bytes(memory):
            limits["memory"] = memory
    if profile is None:
        return NodeShape(requests=requests)
    gpus = 0
    if profile.gpu is not None:
        gpus = profile.gpu.count
        requests[profile.gpu.resource_name] = limits[profile.gpu.resource_name] = str(gpus)
    return NodeShape(
        requests=dict(sorted(requests.items())),
        limits=dict(sorted(limits.items())),
        node_selector=dict(sorted(profile.node_selector.items())),
        tolerations=tuple(_toleration(t) for t in profile.tolerations),
        shm_size=profile.shm_size,
        env=dict(sorted(profile.env.items())),
        profile=profile.name,
        gpus=gpus,
    )


def _toleration(toleration: GpuProfileToleration) -> Toleration:
    # Defaults of a pydantic model are not validated, so an unset operator is still an enum member.
    effect = None if toleration.effect is None else TaintEffect(toleration.effect).value
    return Toleration(toleration.key, TolerationOperator(toleration.operator).value, toleration.value, effect)


def _training(workload: Workload) -> Training:
    if workload.training is None:
        raise ValueError(f"workload {workload.name} is not a training run; build a Job")
    if workload.schedule is not None:
        raise ValueError(f"workload {workload.name} is scheduled; a training run runs once")
    return workload.training


def _metadata(workload: Workload, training: Training) -> dict[str, Any]:
    """The child's metadata: Loom's labels, and Kueue's, which Kueue reads on the job object only."""
    meta_labels = labels(workload)
    if training.queue is not None:
        meta_labels[QUEUE_LABEL] = training.queue
    if training.priority_class is not None:
        meta_labels[PRIORITY_LABEL] = training.priority_class
    meta: dict[str, Any] = {"name": workload.name, "namespace": workload.namespace, "labels": meta_labels}
    if workload.owner is not None:
        meta["ownerReferences"] = [workload.owner.to_wire()]
    return meta


def _command(workload: Workload, components_dir: str) -> list[str]:
    return ["torchrun", f"{components_dir}/{workload.component}"]


def _env(workload: Workload, node: NodeShape) -> list[dict[str, Any]]:
    """The profile's env under the workload's own (which wins), sorted, then the secret references."""
    values: dict[str, str] = {**node.env, **workload.env}
    if workload.files:
        values[FILES_ENV] = FILES_DIR
    reserved = sorted((values.keys() | {s.name for s in workload.secret_env}) & RESERVED_ENV)
    if reserved:
        raise ValueError(f"workload {workload.name} sets {', '.join(reserved)}, which Kubeflow sets for torchrun")
    plain: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(values.items())]
    return plain + pods.secret_env(workload.secret_env)


def _volumes(workload: Workload, node: NodeShape) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = []
    if node.shm_size is not None:
        # PyTorch DataLoader workers pass batches through /dev/shm, which is 64 MiB in a container.
        volumes.append({"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": node.shm_size}})
    if workload.files:
        volumes.append({"name": FILES_VOLUME, "configMap": {"name": workload.name}})
    return volumes


def _volume_mounts(workload: Workload, node: NodeShape) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = []
    if node.shm_size is not None:
        mounts.append({"name": SHM_VOLUME, "mountPath": SHM_DIR})
    if workload.files:
        mounts.append({"name": FILES_VOLUME, "mountPath": FILES_DIR, "readOnly": True})
    return mounts


def _runtime_patch(workload: Workload, node: NodeShape) -> dict[str, Any]:
    """The pod-level part of the shape, as one TrainJob runtime patch of the `node` replicated job.
    The trainer's env cannot travel here (the webhook refuses env for the `node` container), so it
    is `trainer.env`; its volume mounts can."""
    pod: dict[str, Any] = pods.placement(node)
    volumes = _volumes(workload, node)
    if volumes:
        pod["volumes"] = volumes
        pod["containers"] = [{"name": TRAINER_NODE, "volumeMounts": _volume_mounts(workload, node)}]
    template: dict[str, Any] = {"metadata": {"labels": labels(workload)}}
    if pod:
        template["spec"] = pod
    job = {"name": TRAINER_NODE, "template": {"spec": {"template": template}}}
    return {
        "manager": PATCH_MANAGER,
        "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [job]}}},
    }


def trainjob(workload: Workload, image: str, components_dir: str) -> dict[str, Any]:
    """The Kubeflow Trainer v2 TrainJob of a training run.

    Field names are those of `trainer.kubeflow.org/v1alpha1` in Trainer v2.2 and v2.3:
    `numProcPerNode` is an integer (v2.1 took an int-or-string), pod-level settings are
    `runtimePatches` (v2.2 replaced `podTemplateOverrides`), and `activeDeadlineSeconds` is a field of
    the TrainJob's own spec (since v2.2; a run past it fails with reason DeadlineExceeded), so it is set
    there rather than on the JobSet, which a runtime patch cannot reach. A TrainJob has no retry count
    or TTL of its own: `backoffLimit` and `ttlSecondsAfterFinished` are the runtime's business, so the
    executor retries a failed run and deletes a finished child itself. `managedBy` stays unset (the
    Trainer's own controller; MultiKueue sets it). `suspend` is always written so that resuming is an
    apply like suspending. Kubeflow requires a TrainJob's name to start with a letter (RFC 1035)."""
    training = _training(workload)
    if not workload.name[0].isalpha():
        raise ValueError(f"TrainJob name {workload.name!r} must start with a letter (RFC 1035)")
    node = training.node
    trainer: dict[str, Any] = {
        "image": image,
        "command": _command(workload, components_dir),
        "args": list(workload.args),
    }
    env = _env(workload, node)
    if env:
        trainer["env"] = env
    trainer["numNodes"] = training.num_nodes
    trainer["numProcPerNode"] = training.num_proc_per_node
    resources = pods.resources(node)
    if resources:
        trainer["resourcesPerNode"] = resources
    ref = training.runtime_ref
    spec: dict[str, Any] = {
        "runtimeRef": {"name": ref.name, "kind": RuntimeKind(ref.kind).value, "apiGroup": ref.api_group},
        "trainer": trainer,
        "runtimePatches": [_runtime_patch(workload, node)],
        "suspend": training.suspend,
    }
    if training.active_deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = training.active_deadline_seconds
    return {
        "apiVersion": TRAINJOB_API_VERSION,
        "kind": "TrainJob",
        "metadata": _metadata(workload, training),
        "spec": spec,
    }


def _replica(workload: Workload, node: NodeShape, image: str, components_dir: str, replicas: int) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": PYTORCH_CONTAINER,
        "image": image,
        "command": _command(workload, components_dir),
        "args": list(workload.args),
    }
    env = _env(workload, node)
    if env:
        container["env"] = env
    resources = pods.resources(node)
    if resources:
        container["resources"] = resources
    mounts = _volume_mounts(workload, node)
    if mounts:
        container["volumeMounts"] = mounts
    container["terminationMessagePolicy"] = "FallbackToLogsOnError"
    pod: dict[str, Any] = {"containers": [container], **pods.placement(node)}
    volumes = _volumes(workload, node)
    if volumes:
        pod["volumes"] = volumes
    return {
        "replicas": replicas,
        "restartPolicy": "OnFailure",
        "template": {"metadata": {"labels": labels(workload)}, "spec": pod},
    }


def _run_policy(training: Training) -> dict[str, Any]:
    policy: dict[str, Any] = {"backoffLimit": training.backoff_limit}
    if training.active_deadline_seconds is not None:
        policy["activeDeadlineSeconds"] = training.active_deadline_seconds
    if training.ttl_seconds_after_finished is not None:
        policy["ttlSecondsAfterFinished"] = training.ttl_seconds_after_finished
    policy["suspend"] = training.suspend
    scheduling = {"queue": training.queue, "priorityClass": training.priority_class}
    if any(scheduling.values()):
        policy["schedulingPolicy"] = {k: v for k, v in scheduling.items() if v is not None}
    return policy


def pytorchjob(workload: Workload, image: str, components_dir: str) -> dict[str, Any]:
    """The Training Operator 1.9 PyTorchJob of a training run: one Master and numNodes-1 Workers (no
    Worker entry for one node), each a `pytorch` container restarted OnFailure up to
    `runPolicy.backoffLimit`. `nprocPerNode` is a string in v1.9's types. The queue and priority
    class are Kueue's labels on the job, and also `runPolicy.schedulingPolicy`, which only the
    operator's gang scheduling (Volcano, scheduler-plugins) reads."""
    training = _training(workload)
    replicas = {"Master": _replica(workload, training.node, image, components_dir, 1)}
    if training.num_nodes > 1:
        replicas["Worker"] = _replica(workload, training.node, image, components_dir, training.num_nodes - 1)
    return {
        "apiVersion": PYTORCHJOB_API_VERSION,
        "kind": "PyTorchJob",
        "metadata": _metadata(workload, training),
        "spec": {
            "runPolicy": _run_policy(training),
            "nprocPerNode": str(training.num_proc_per_node),
            "pytorchReplicaSpecs": replicas,
        },
    }
