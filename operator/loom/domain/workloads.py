"""What a workload is and how its runs are reported, as plain values shared by the services that
build workloads, the builders that turn them into manifests and the executors that run them.

A workload either runs once (`schedule` unset: one run, named like the workload) or on a cron
schedule (a Kubernetes CronJob, or the local executor's own scheduler). Either way submitting it again
with the same name never starts a second run of the same thing. A service workload (`service` set)
is a long-running process kept up like a Deployment's pod: restarted whenever it exits."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from loom.domain.training import Replicas, TrainerProgress, Training

# Re-exported: the services, builders and executors name them with the rest of the workload.
from loom.domain.workload_contract import EXIT_INPUT_ERROR as EXIT_INPUT_ERROR
from loom.domain.workload_contract import FILES_ENV as FILES_ENV

WORKLOAD_LABEL = "loom.dev/workload"


def owner_label(kind: str) -> str:
    """The label naming the Loom object a workload belongs to (`loom.dev/datalake: movielens`): how
    runs are traced to their owner even where ownerReferences point elsewhere (a CronJob's Jobs)."""
    return f"loom.dev/{kind.lower()}"

# A CronJob's name gets 11 characters appended for its Jobs, and a Job's name becomes a label value.
MAX_SCHEDULED_NAME = 52
MAX_NAME = 63
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# A plain file name that is also a ConfigMap key (which may not be `.`, `..` or start with `..`).
_FILE_NAME = re.compile(r"(?!\.\.)(?!\.\Z)[A-Za-z0-9._-]{1,253}")


class PythonEnv(str, Enum):
    """Which Python environment (in a cluster: which image) runs the component: `main` has the data
    and training stack, `serve` the model-serving one, whose pins conflict with it."""

    MAIN = "main"
    SERVE = "serve"


class Phase(str, Enum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    # A training run whose pods were removed on request (suspend: true); resuming starts them again.
    SUSPENDED = "Suspended"


@dataclass(frozen=True)
class OwnerRef:
    """The Loom object a workload belongs to; Kubernetes garbage-collects the workload with it."""

    api_version: str
    kind: str
    name: str
    uid: str

    def to_wire(self) -> dict[str, object]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


@dataclass(frozen=True)
class SecretEnv:
    """An environment variable whose value stays in a Secret (secretKeyRef); never copied inline."""

    name: str
    secret: str
    key: str


@dataclass(frozen=True)
class Service:
    """What makes a workload long-running (a model server, the router): the executor keeps one process
    of it up, restarting it after it exits with a capped doubling backoff (as a kubelet does in
    CrashLoopBackOff; an attempt that stayed up twice the cap resets it), and reports it Running only
    while `GET http://127.0.0.1:<port>/<ready_path>` answers 2xx. `ports` (environment variable ->
    port) reach the process through its environment; `ready_port` names the one probed. A port of 0
    is the executor's to pick (as a Kubernetes Service's nodePort left empty): a free one, assigned
    when the run is created and kept by all its attempts; the run's status says which
    (`WorkloadStatus.ports`), and submitting the service again with its 0s is no change."""

    ports: Mapping[str, int]
    ready_port: str
    ready_path: str = "/"
    backoff_base_seconds: float = 10.0
    backoff_cap_seconds: float = 300.0

    def __post_init__(self) -> None:
        for name, port in self.ports.items():
            if not 0 <= port <= 65535:
                raise ValueError(f"port {name}={port} is not in 0..65535 (0: the executor picks one)")
        if self.ready_port not in self.ports:
            raise ValueError(f"ready_port {self.ready_port!r} is not one of the service's ports {sorted(self.ports)}")
        if not self.ready_path.startswith("/"):
            raise ValueError(f"ready_path {self.ready_path!r} must start with /")
        if not 0 < self.backoff_base_seconds <= self.backoff_cap_seconds:
            raise ValueError("a service's backoff needs 0 < backoff_base_seconds <= backoff_cap_seconds")


@dataclass(frozen=True)
class Workload:
    """One component run (or schedule of runs): `python components/<component> <args>`. `files` (name ->
    text) are what the component reads from the directory in $LOOM_WORKLOAD_FILES: anything that may
    be large, so that argv and the environment stay short."""

    name: str
    namespace: str
    component: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: tuple[SecretEnv, ...] = ()
    python: PythonEnv = PythonEnv.MAIN
    owner: OwnerRef | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    schedule: str | None = None
    retries: int = 2
    ttl_seconds_after_finished: int | None = None
    files: Mapping[str, str] = field(default_factory=dict)
    # Set for a distributed training run: the executor runs `component` in every process of it (as a
    # Kubeflow TrainJob or PyTorchJob, or local torchrun processes), never as a plain Job.
    training: Training | None = None
    # Set for a long-running process (no schedule, no training, `retries` unused: it always restarts).
    service: Service | None = None

    def __post_init__(self) -> None:
        if self.service is not None and (self.schedule is not None or self.training is not None):
            raise ValueError(f"workload {self.name!r}: a service has neither a schedule nor a training")
        limit = MAX_SCHEDULED_NAME if self.schedule else MAX_NAME
        if len(self.name) > limit or not _DNS_LABEL.match(self.name):
            raise ValueError(f"workload name {self.name!r} is not a DNS label of at most {limit} characters")
        for name in self.files:
            if not _FILE_NAME.fullmatch(name):
                raise ValueError(f"workload file {name!r} is not a plain file name ([A-Za-z0-9._-], not . or ..)")


@dataclass(frozen=True)
class WorkloadStatus:
    """One run as the executor sees it; `name` is the run's own name (a scheduled workload's runs
    are named after it with a suffix). `message` is the last line the run wrote: components end with
    their verdict (a failure names what failed). `ports` (service runs only) are the ports the process
    is given, those the executor picked for the service's 0s included: where a caller finds it."""

    name: str
    phase: Phase
    message: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    # Training runs only: their pods by state, and the trainer's own progress report when there is one.
    replicas: Replicas | None = None
    trainer: TrainerProgress | None = None
    ports: Mapping[str, int] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.phase in (Phase.SUCCEEDED, Phase.FAILED)


def dns_name(base: str, suffix: str, max_length: int = MAX_SCHEDULED_NAME) -> str:
    """`<base>-<suffix>` as a DNS label, `base` cut to fit; the suffix (a hash) keeps it unique."""
    clean = re.sub(r"[^a-z0-9-]+", "-", base.lower()).strip("-")
    head = clean[: max_length - len(suffix) - 1].rstrip("-")
    return f"{head}-{suffix}" if head else suffix


def digest(*parts: str, length: int = 8) -> str:
    """A short stable hash of the parts, for names that must change exactly when their input does."""
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:length]


@dataclass(frozen=True)
class RunChange:
    """A run of a workload started or finished: what an executor reports so that the owner is
    reconciled at once (nothing polls runs). `owner` is None for a workload nobody owns."""

    namespace: str
    workload: str
    owner: OwnerRef | None
    run: WorkloadStatus
