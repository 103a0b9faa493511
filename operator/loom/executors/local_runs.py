"""The local executor's records of a run on disk (the layout is described in `executors/local.py`):
the workload it runs, its attempts, and the status they add up to, as a Job's pods add up to the Job's.
Everything here only reads and writes files; starting and ending processes is the executor's."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from loom.api.trainingjob import Backend, RuntimeKind, RuntimeRef
from loom.domain.training import NodeShape, Replicas, Toleration, Training
from loom.domain.workloads import (
    EXIT_INPUT_ERROR,
    OwnerRef,
    Phase,
    PythonEnv,
    SecretEnv,
    Service,
    Workload,
    WorkloadStatus,
)
from loom.executors.procfs import alive
from loom.executors.supervisor import EXIT_FILE, PID_FILE
from loom.executors.torch_launch import NODES_DIR

RUN_FILE = "run.json"
NOTIFIED_FILE = "notified.json"
ATTEMPT_PREFIX = "attempt-"
LOG_FILE = "output.log"
FAILED_FILE = "failed.json"
RETRY_FILE = "retry.json"
FILES_DIR = "files"
# Training runs: in the run directory while it is suspended; in an attempt that a suspend ended (such
# an attempt is not a failure and uses none of the retries).
SUSPENDED_FILE = "suspended.json"
# Training runs: in the run directory once it failed for good for a reason no attempt tells (its
# active deadline passed).
ENDED_FILE = "ended.json"
# Service runs: in an attempt, whether its readiness probe last answered (written when that changes).
READY_FILE = "ready.json"
# An attempt whose supervisor never wrote its pid within this (wall-clock) time never started.
START_GRACE = timedelta(seconds=60)
MESSAGE_BYTES = 2048
RETRY_BASE = timedelta(seconds=10)
RETRY_CAP = timedelta(minutes=5)


def retry_delay(failed_attempts: int, base: timedelta = RETRY_BASE, cap: timedelta = RETRY_CAP) -> timedelta:
    """How long to wait after the n-th failed attempt: base, doubling each time, capped (a Job's backoff,
    and a crashing service's restarts)."""
    return min(cap, base * 2 ** max(0, failed_attempts - 1))


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Atomically; the temporary name is per thread, since the thread and callers may write at once."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    os.replace(tmp, path)


def last_line(path: Path) -> str:
    """The last non-empty line of an attempt's log: components end with their verdict."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - MESSAGE_BYTES))
            text = f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def workload_to_json(workload: Workload) -> dict[str, Any]:
    """Everything needed to start the workload again later; Secret values are read at each start."""
    owner = workload.owner
    return {
        "name": workload.name,
        "namespace": workload.namespace,
        "component": workload.component,
        "args": list(workload.args),
        "env": dict(workload.env),
        "secretEnv": [{"name": s.name, "secret": s.secret, "key": s.key} for s in workload.secret_env],
        "python": PythonEnv(workload.python).value,
        "owner": None if owner is None else {
            "apiVersion": owner.api_version, "kind": owner.kind, "name": owner.name, "uid": owner.uid,
        },
        "labels": dict(workload.labels),
        "schedule": workload.schedule,
        "retries": workload.retries,
        "ttlSecondsAfterFinished": workload.ttl_seconds_after_finished,
        "files": dict(workload.files),
        "training": None if workload.training is None else training_to_json(workload.training),
        "service": None if workload.service is None else service_to_json(workload.service),
    }


def workload_from_json(data: Mapping[str, Any]) -> Workload:
    owner = data["owner"]
    return Workload(
        name=data["name"],
        namespace=data["namespace"],
        component=data["component"],
        args=tuple(data["args"]),
        env=dict(data["env"]),
        secret_env=tuple(SecretEnv(s["name"], s["secret"], s["key"]) for s in data["secretEnv"]),
        python=PythonEnv(data["python"]),
        owner=None if owner is None else OwnerRef(owner["apiVersion"], owner["kind"], owner["name"], owner["uid"]),
        labels=dict(data["labels"]),
        schedule=data["schedule"],
        retries=data["retries"],
        ttl_seconds_after_finished=data["ttlSecondsAfterFinished"],
        files=dict(data.get("files", {})),  # absent from state written before workloads had files
        training=None if data.get("training") is None else training_from_json(data["training"]),
        service=None if data.get("service") is None else service_from_json(data["service"]),
    )


def service_to_json(service: Service) -> dict[str, Any]:
    return {
        "ports": dict(service.ports), "readyPort": service.ready_port, "readyPath": service.ready_path,
        "backoffBaseSeconds": service.backoff_base_seconds, "backoffCapSeconds": service.backoff_cap_seconds,
    }


def service_from_json(data: Mapping[str, Any]) -> Service:
    return Service(dict(data["ports"]), data["readyPort"], data["readyPath"],
                   data["backoffBaseSeconds"], data["backoffCapSeconds"])


def training_to_json(training: Training) -> dict[str, Any]:
    node = training.node
    return {
        "backend": Backend(training.backend).value,
        "runtimeRef": {"name": training.runtime_ref.name, "kind": RuntimeKind(training.runtime_ref.kind).value,
                       "apiGroup": training.runtime_ref.api_group},
        "numNodes": training.num_nodes,
        "numProcPerNode": training.num_proc_per_node,
        "node": {
            "requests": dict(node.requests), "limits": dict(node.limits), "nodeSelector": dict(node.node_selector),
            "tolerations": [t.to_wire() for t in node.tolerations], "shmSize": node.shm_size,
            "env": dict(node.env), "profile": node.profile, "gpus": node.gpus,
        },
        "suspend": training.suspend,
        "queue": training.queue,
        "priorityClass": training.priority_class,
        "activeDeadlineSeconds": training.active_deadline_seconds,
        "backoffLimit": training.backoff_limit,
        "ttlSecondsAfterFinished": training.ttl_seconds_after_finished,
    }


def training_from_json(data: Mapping[str, Any]) -> Training:
    node = data["node"]
    return Training(
        backend=Backend(data["backend"]),
        runtime_ref=RuntimeRef.model_validate(data["runtimeRef"]),
        num_nodes=data["numNodes"],
        num_proc_per_node=data["numProcPerNode"],
        node=NodeShape(
            requests=dict(node["requests"]), limits=dict(node["limits"]), node_selector=dict(node["nodeSelector"]),
            tolerations=tuple(Toleration(t["key"], t["operator"], t.get("value"), t.get("effect"))
                              for t in node["tolerations"]),
            shm_size=node["shmSize"], env=dict(node["env"]), profile=node["profile"], gpus=node["gpus"],
        ),
        suspend=data["suspend"],
        queue=data["queue"],
        priority_class=data["priorityClass"],
        active_deadline_seconds=data["activeDeadlineSeconds"],
        backoff_limit=data["backoffLimit"],
        ttl_seconds_after_finished=data["ttlSecondsAfterFinished"],
    )


def attempt_number(path: Path) -> int:
    return int(path.name[len(ATTEMPT_PREFIX):])


def attempt_dirs(run_dir: Path) -> list[Path]:
    found = [p for p in run_dir.glob(f"{ATTEMPT_PREFIX}*") if p.is_dir()]
    return sorted(found, key=attempt_number)


def attempt_status(attempt: Path) -> WorkloadStatus:
    """One attempt as its files tell it (the name is set by the caller)."""
    pid = read_json(attempt / PID_FILE)
    started = datetime.fromisoformat(pid["startedAt"]) if pid else None
    failed = read_json(attempt / FAILED_FILE)
    if failed is not None:
        return WorkloadStatus("", Phase.FAILED, failed["message"], started, datetime.fromisoformat(failed["at"]))
    done = read_json(attempt / EXIT_FILE)
    if done is not None:
        code = int(done["code"])
        return WorkloadStatus(
            "", Phase.SUCCEEDED if code == 0 else Phase.FAILED, last_line(attempt / LOG_FILE),
            started, datetime.fromisoformat(done["finishedAt"]), code,
        )
    if pid is not None:
        if alive(pid["pid"], pid["startTicks"], pid["bootId"]):
            return WorkloadStatus("", Phase.RUNNING, "", started)
        return WorkloadStatus(
            "", Phase.FAILED,
            f"the run's supervisor (pid {pid['pid']}) ended without recording an exit code "
            "(killed, or the machine restarted)", started,
        )
    try:
        age = time.time() - attempt.stat().st_mtime  # the directory got its log just before the start
    except FileNotFoundError:
        age = 0.0
    if age < START_GRACE.total_seconds():
        return WorkloadStatus("", Phase.PENDING, "starting")
    return WorkloadStatus(
        "", Phase.FAILED, last_line(attempt / LOG_FILE) or "the run never started (the operator stopped while starting it)"
    )


def node_replicas(attempt: Path) -> Replicas:
    """A training attempt's node processes by state, from the launcher's node files: a node without an
    exit code is active while its process lives (also when its supervisor was killed)."""
    active = succeeded = failed = 0
    for path in (attempt / NODES_DIR).glob("node-*.json"):
        node = read_json(path)
        if node is None:
            continue
        if node["code"] is None:
            if alive(node["pid"], node["startTicks"], node["bootId"]):
                active += 1
            else:
                failed += 1
        elif node["code"] == 0:
            succeeded += 1
        else:
            failed += 1
    return Replicas(active, succeeded, failed)


@dataclass(frozen=True)
class Run:
    """A run directory read at one moment: the workload it runs, its attempts and what they add up to.
    A training run may also be suspended (`suspended`: since when) or ended by its deadline (`ended`)."""

    dir: Path
    workload: Workload
    schedule: str | None
    attempts: tuple[Path, ...]
    last: WorkloadStatus | None  # the newest attempt's own status
    suspended: Mapping[str, Any] | None = None
    ended: Mapping[str, Any] | None = None

    @property
    def workload_name(self) -> str:
        return self.schedule or self.dir.name

    @property
    def limit(self) -> int:
        """Attempts allowed: a training run's `Training.backoff_limit` retries, else `Workload.retries`."""
        training = self.workload.training
        return (training.backoff_limit if training is not None else self.workload.retries) + 1

    @property
    def counted(self) -> tuple[Path, ...]:
        """The attempts that count against the limit: all but those a suspend ended."""
        return tuple(a for a in self.attempts if not (a / SUSPENDED_FILE).exists())

    @property
    def interrupted(self) -> bool:
        """The newest attempt was ended by a suspend (and, when the run is not suspended, it resumes)."""
        return bool(self.attempts) and (self.attempts[-1] / SUSPENDED_FILE).exists()

    @property
    def needs_attempt(self) -> bool:
        """No attempt yet (its starter died), a resume whose attempt did not start, or the newest
        failed and the retries allow another; never while suspended or after the deadline. A
        service's newest attempt that ended, however, always needs another."""
        if self.suspended is not None or self.ended is not None:
            return False
        if self.workload.service is not None:
            return self.last is None or self.last.finished
        return self.last is None or self.interrupted or self.retrying

    @property
    def retrying(self) -> bool:
        """The newest attempt failed and another is allowed: retries left and an error that may heal."""
        last = self.last
        return (self.suspended is None and self.ended is None and not self.interrupted
                and last is not None and last.phase == Phase.FAILED and last.exit_code != EXIT_INPUT_ERROR
                and len(self.counted) < self.limit)

    @property
    def live(self) -> bool:
        return self.last is not None and not self.last.finished

    def started_at(self) -> datetime | None:
        """When the first attempt started (the run's start, as a Job's startTime)."""
        pid = read_json(self.attempts[0] / PID_FILE) if self.attempts else None
        return datetime.fromisoformat(pid["startedAt"]) if pid else None

    def deadline(self) -> datetime | None:
        """When a training run with an active deadline must have finished: counted from the start of
        its first attempt after its last resume (a resume restarts the clock, as for a Job)."""
        training = self.workload.training
        if training is None or training.active_deadline_seconds is None:
            return None
        interrupted = [i for i, a in enumerate(self.attempts) if (a / SUSPENDED_FILE).exists()]
        since = self.attempts[interrupted[-1] + 1:] if interrupted else self.attempts
        pid = read_json(since[0] / PID_FILE) if since else None
        if pid is None:
            return None
        return datetime.fromisoformat(pid["startedAt"]) + timedelta(seconds=training.active_deadline_seconds)

    def status(self) -> WorkloadStatus:
        """The run as a Job (or a TrainJob) reports it: started with its first attempt, ended with its last."""
        if self.workload.service is not None:
            return self._service_status()
        status = self._status()
        if self.workload.training is None:
            return status
        replicas = node_replicas(self.attempts[-1]) if self.attempts else Replicas()
        if self.suspended is not None or self.interrupted:
            replicas = Replicas(active=replicas.active)  # the ended attempt's nodes are gone, not failed
        return replace(status, replicas=replicas)

    def _service_status(self) -> WorkloadStatus:
        """A service as a Deployment's pod: Running while its newest attempt lives and answered its
        readiness probe, Pending while it starts or is not ready, Failed (exit code and last line kept)
        while it waits to be restarted; `started_at` is the newest attempt's start. In every phase
        `ports` are the run's, those given for its 0s included."""
        name, last, service = self.dir.name, self.last, self.workload.service
        assert service is not None
        ports = dict(service.ports)
        if last is None:
            return WorkloadStatus(name, Phase.PENDING, "starting", ports=ports)
        restarts = attempt_number(self.attempts[-1]) - 1
        if last.finished:
            retry = read_json(self.attempts[-1] / RETRY_FILE)
            when = f" at {retry['at']}" if retry else " after a backoff"
            how = f"exited with code {last.exit_code}" if last.exit_code is not None else "ended"
            message = f"{how} ({restarts} restarts so far), restarting{when}: {last.message}"
            return WorkloadStatus(name, Phase.FAILED, message, last.started_at, last.finished_at, last.exit_code,
                                  ports=ports)
        if last.phase == Phase.RUNNING and (read_json(self.attempts[-1] / READY_FILE) or {}).get("ready"):
            return WorkloadStatus(name, Phase.RUNNING, f"ready ({restarts} restarts)", last.started_at, ports=ports)
        return WorkloadStatus(name, Phase.PENDING, f"not ready yet: GET http://127.0.0.1:{ports[service.ready_port]}"
                              f"{service.ready_path} ({restarts} restarts)", last.started_at, ports=ports)

    def _status(self) -> WorkloadStatus:
        name, last = self.dir.name, self.last
        started = self.started_at() or (last.started_at if last is not None else None)
        if self.ended is not None:
            return WorkloadStatus(name, Phase.FAILED, self.ended["message"], started,
                                  datetime.fromisoformat(self.ended["at"]))
        if self.suspended is not None:
            return WorkloadStatus(name, Phase.SUSPENDED, f"suspended at {self.suspended['at']}: its processes "
                                  "were ended; it starts again when resumed (suspend: false)", started)
        if last is None:
            return WorkloadStatus(name, Phase.PENDING, "starting")
        tried = len(self.counted)
        if self.interrupted:
            return WorkloadStatus(name, Phase.PENDING, "resuming", started)
        if self.retrying:
            retry = read_json(self.attempts[-1] / RETRY_FILE)
            when = f" at {retry['at']}" if retry else " after a backoff"
            message = f"attempt {tried} of {self.limit} failed, retrying{when}: {last.message}"
            return WorkloadStatus(name, Phase.PENDING, message, started)
        message = last.message
        if last.phase == Phase.PENDING and len(self.attempts) > 1:
            message = f"attempt {tried} of {self.limit} starting"
        return WorkloadStatus(name, last.phase, message, started, last.finished_at, last.exit_code)
