"""The local executor's records of a run on disk (the layout is described in `executors/local.py`):
the workload it runs, its attempts, and the status they add up to, as a Job's pods add up to the Job's.
Everything here only reads and writes files; starting and ending processes is the executor's."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from loom.domain.workloads import EXIT_INPUT_ERROR, OwnerRef, Phase, PythonEnv, SecretEnv, Workload, WorkloadStatus
from loom.executors.procfs import alive
from loom.executors.supervisor import EXIT_FILE, PID_FILE

RUN_FILE = "run.json"
NOTIFIED_FILE = "notified.json"
ATTEMPT_PREFIX = "attempt-"
LOG_FILE = "output.log"
FAILED_FILE = "failed.json"
RETRY_FILE = "retry.json"
FILES_DIR = "files"
# An attempt whose supervisor never wrote its pid within this (wall-clock) time never started.
START_GRACE = timedelta(seconds=60)
MESSAGE_BYTES = 2048


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


@dataclass(frozen=True)
class Run:
    """A run directory read at one moment: the workload it runs, its attempts and what they add up to."""

    dir: Path
    workload: Workload
    schedule: str | None
    attempts: tuple[Path, ...]
    last: WorkloadStatus | None  # the newest attempt's own status

    @property
    def workload_name(self) -> str:
        return self.schedule or self.dir.name

    @property
    def limit(self) -> int:
        return self.workload.retries + 1

    @property
    def needs_attempt(self) -> bool:
        """No attempt yet (its starter died), or the newest failed and the retries allow another."""
        return self.last is None or self.retrying

    @property
    def retrying(self) -> bool:
        """The newest attempt failed and another is allowed: retries left and an error that may heal."""
        last = self.last
        return (last is not None and last.phase == Phase.FAILED and last.exit_code != EXIT_INPUT_ERROR
                and len(self.attempts) < self.limit)

    @property
    def live(self) -> bool:
        return self.last is not None and not self.last.finished

    def status(self) -> WorkloadStatus:
        """The run as a Job reports it: started with its first attempt, ended with its last."""
        name, last = self.dir.name, self.last
        if last is None:
            return WorkloadStatus(name, Phase.PENDING, "starting")
        first = read_json(self.attempts[0] / PID_FILE) if len(self.attempts) > 1 else None
        started = datetime.fromisoformat(first["startedAt"]) if first else last.started_at
        if self.retrying:
            retry = read_json(self.attempts[-1] / RETRY_FILE)
            when = f" at {retry['at']}" if retry else " after a backoff"
            message = f"attempt {len(self.attempts)} of {self.limit} failed, retrying{when}: {last.message}"
            return WorkloadStatus(name, Phase.PENDING, message, started)
        message = last.message
        if last.phase == Phase.PENDING and len(self.attempts) > 1:
            message = f"attempt {len(self.attempts)} of {self.limit} starting"
        return WorkloadStatus(name, last.phase, message, started, last.finished_at, last.exit_code)
