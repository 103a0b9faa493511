"""The local executor's long-running workloads (`Workload.service`): what a kubelet does for a
Deployment's pod, on the run and attempt records of `executors/local_runs.py`.

A service is a once-run that never finishes: each attempt is one process under the usual supervisor,
and when it exits (whatever its code) the executor's thread starts the next attempt after
`restart_delay`. While an attempt lives, the thread probes its readiness URL at each pass and records
the answer in the attempt (`ready.json`), so `runs()` reads it from the state directory like the rest.
Only the newest `KEPT_ATTEMPTS` attempts (their logs) are kept; the numbering goes on.

Ports: a service's 0 ports are given free loopback ports when its run is created (`assign_ports`),
distinct from each other and from every other service run's, and written with the run's workload in
run.json, so each attempt, and an operator that restarts, finds the same ones. A run that replaces
another keeps the ports it was given. Comparing a submitted service with the running one
(`replaces`) takes a wanted 0 as matching whatever the run was given.

Files: a service submitted again that differs from the running one only in its files keeps its
process: `update_files` rewrites each changed file in the run's files/ (a temporary file beside it,
then os.replace, as a kubelet updates a mounted ConfigMap), removes those no longer listed, then
records the new workload in run.json; the process reads them again when it likes (the router reloads
its table when the file changes). That holds while the service had files and still has: otherwise
the process's environment ($LOOM_WORKLOAD_FILES) changes too, and it is replaced.
"""

from __future__ import annotations

import os
import shutil
import socket
import urllib.error
import urllib.request
from collections.abc import Collection, Mapping
from contextlib import ExitStack
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from loom.domain.workloads import Service, Workload
from loom.executors.local_runs import (
    FILES_DIR,
    READY_FILE,
    RUN_FILE,
    Run,
    attempt_dirs,
    attempt_number,
    read_json,
    retry_delay,
    utcnow,
    workload_to_json,
    write_json,
)
from loom.executors.supervisor import EXIT_FILE, PID_FILE

KEPT_ATTEMPTS = 5
# A probe slower than this counts as not ready (a kubelet's default timeoutSeconds is 1).
PROBE_TIMEOUT_SECONDS = 1.0


def service_environment(service: Service) -> dict[str, str]:
    """The ports the process listens on, as the environment variables the service names."""
    return {name: str(port) for name, port in service.ports.items()}


def ready_url(service: Service) -> str:
    return f"http://127.0.0.1:{service.ports[service.ready_port]}{service.ready_path}"


def probe(service: Service) -> bool:
    """True when the readiness URL answers 2xx within the timeout."""
    try:
        with urllib.request.urlopen(ready_url(service), timeout=PROBE_TIMEOUT_SECONDS) as answer:
            return 200 <= answer.status < 300
    except (OSError, urllib.error.URLError, ValueError):  # refused, reset, timed out, HTTP 4xx/5xx
        return False


def record_readiness(run: Run, service: Service) -> None:
    """Probe the live newest attempt and record the answer when it changed (a readiness flip)."""
    attempt = run.attempts[-1]
    ready = probe(service)
    if (read_json(attempt / READY_FILE) or {}).get("ready") != ready:
        write_json(attempt / READY_FILE, {"ready": ready, "at": utcnow().isoformat()})


def restart_delay(run: Run, service: Service) -> timedelta:
    """The backoff before the next attempt: base, doubled for each consecutive attempt before the
    newest that also ended soon (lived less than twice the cap), capped."""
    crashes = 0
    for attempt in reversed(run.attempts):
        if _lifetime(attempt) >= 2 * service.backoff_cap_seconds:
            break
        crashes += 1
    return retry_delay(crashes, timedelta(seconds=service.backoff_base_seconds),
                       timedelta(seconds=service.backoff_cap_seconds))


def _lifetime(attempt: Path) -> float:
    """Seconds from the attempt's start to its exit; 0 when it never started or has no exit code (its
    supervisor was killed: a crash of unknown length)."""
    pid = read_json(attempt / PID_FILE)
    done = read_json(attempt / EXIT_FILE)
    if pid is None or done is None:
        return 0.0
    return (datetime.fromisoformat(done["finishedAt"]) - datetime.fromisoformat(pid["startedAt"])).total_seconds()


def prune_attempts(run_dir: Path) -> None:
    """Keep the newest KEPT_ATTEMPTS attempts of a service (a crash loop would fill the disk)."""
    for attempt in attempt_dirs(run_dir)[:-KEPT_ATTEMPTS]:
        shutil.rmtree(attempt, ignore_errors=True)


def next_attempt(run: Run) -> int:
    """The number of the next attempt: one past the newest, pruned or not."""
    return attempt_number(run.attempts[-1]) + 1 if run.attempts else 1


def with_ports(workload: Workload, given: Mapping[str, int]) -> Workload:
    """The service workload with each of its 0 ports that `given` names replaced by that port."""
    service = workload.service
    assert service is not None
    ports = {name: port or given.get(name, 0) for name, port in service.ports.items()}
    return replace(workload, service=replace(service, ports=ports))


def assign_ports(workload: Workload, taken: Collection[int]) -> Workload:
    """The service workload with each 0 port replaced by a free loopback port, none of `taken` (other
    services' ports, which may be free for the moment, between two attempts)."""
    service = workload.service
    assert service is not None
    wanted = [name for name, port in service.ports.items() if port == 0]
    return with_ports(workload, dict(zip(wanted, free_ports(len(wanted), taken), strict=True)))


def free_ports(count: int, taken: Collection[int]) -> list[int]:
    """`count` distinct free loopback ports, none of `taken`: every socket stays bound until all are
    picked, so the system never hands out one twice."""
    found: list[int] = []
    with ExitStack() as stack:
        while len(found) < count:
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
            if port not in taken:
                found.append(port)
    return found


def replaces(running: Workload, wanted: Workload) -> bool:
    """Whether a submitted service differs from the running one so that its process has to be
    replaced: in anything but its files (command, environment, a non-zero port...), or in files when
    it has none before or after. Wanted 0 ports match whatever the run was given."""
    assert running.service is not None
    old, new = workload_to_json(running), workload_to_json(with_ports(wanted, running.service.ports))
    if old == new:
        return False
    return {**old, "files": {}} != {**new, "files": {}} or not (running.files and wanted.files)


def update_files(run: Run, wanted: Workload) -> None:
    """Bring the run's files/ to the wanted workload's files without a restart (callers hold the
    workload's lock): each changed file is replaced whole (the process never reads half of one), the
    ones no longer listed are removed, then run.json records the wanted workload, its ports the run's.
    A temporary name starts with `..`, which no workload file's may."""
    assert run.workload.service is not None
    files = run.dir / FILES_DIR
    tmp = files / "..tmp"
    for name, text in wanted.files.items():
        if run.workload.files.get(name) != text or not (files / name).is_file():
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, files / name)
    for path in files.iterdir():
        if path.name not in wanted.files:
            path.unlink()
    record = read_json(run.dir / RUN_FILE)
    assert record is not None  # read under the same lock as `run`
    write_json(run.dir / RUN_FILE, {**record, "workload": workload_to_json(with_ports(wanted, run.workload.service.ports))})
