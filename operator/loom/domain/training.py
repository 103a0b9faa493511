"""A distributed training run as plain values: how many nodes and processes, what each node gets, and
how Kubeflow (or the local executor) is asked to run it. A `Workload` with `training` set is such a run:
its component is the trainer entrypoint every process runs, as torchrun would start it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from loom.api.trainingjob import Backend, RuntimeRef

# The environment Kubeflow's torch runtime gives every node (torchrun reads these as its defaults).
PET_NNODES = "PET_NNODES"
PET_NPROC_PER_NODE = "PET_NPROC_PER_NODE"
PET_NODE_RANK = "PET_NODE_RANK"
PET_MASTER_ADDR = "PET_MASTER_ADDR"
PET_MASTER_PORT = "PET_MASTER_PORT"
# Kubeflow Trainer's torch runtime uses 29500 (Training Operator 1.9: 23456); the local executor picks a free one.
DEFAULT_MASTER_PORT = 29500

# Set by a user (`kubectl loom retrain`) to ask for a new run of the current snapshot; its value tells
# one request from the next.
RETRAIN_ANNOTATION = "loom.dev/retrain"

# Kueue's labels on the training child (TrainJob is Kueue's first-class path).
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"


@dataclass(frozen=True)
class Toleration:
    key: str
    operator: str = "Exists"
    value: str | None = None
    effect: str | None = None

    def to_wire(self) -> dict[str, str]:
        wire = {"key": self.key, "operator": self.operator}
        if self.value is not None:
            wire["value"] = self.value
        if self.effect is not None:
            wire["effect"] = self.effect
        return wire


@dataclass(frozen=True)
class NodeShape:
    """What each node (pod) of a run gets, resolved from a GPU profile and the spec's cpu/memory:
    requests and limits (GPUs as an extended resource), placement, shared memory and NCCL env."""

    requests: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, str] = field(default_factory=dict)
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()
    shm_size: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    profile: str | None = None
    gpus: int = 0


@dataclass(frozen=True)
class Training:
    """The distributed shape of a training workload and the run policy Kubeflow applies to it.
    `backoff_limit` is a training run's retry budget for every executor (a PyTorchJob's
    runPolicy.backoffLimit; the local executor's retries of a training run), not `Workload.retries`.
    `suspend` is the one field that changes on a submitted run: true ends its processes and keeps it
    suspended, false resumes it (a suspended attempt counts as no failure)."""

    backend: Backend = Backend.TRAINJOB
    runtime_ref: RuntimeRef = field(default_factory=RuntimeRef)
    num_nodes: int = 1
    num_proc_per_node: int = 1
    node: NodeShape = field(default_factory=NodeShape)
    suspend: bool = False
    queue: str | None = None
    priority_class: str | None = None
    active_deadline_seconds: int | None = None
    backoff_limit: int = 0
    ttl_seconds_after_finished: int | None = None


@dataclass(frozen=True)
class Replicas:
    """Pods (or local node processes) of one run by state."""

    active: int = 0
    succeeded: int = 0
    failed: int = 0


@dataclass(frozen=True)
class TrainerProgress:
    """TrainJob's alpha `trainerStatus`, when the runtime reports it."""

    progress_percentage: int | None = None
    estimated_remaining_seconds: int | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
