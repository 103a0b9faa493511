"""The local executor's long-running workloads (`Workload.service`): what a kubelet does for a
Deployment's pod, on the run and attempt records of `executors/local_runs.py`.

A service is a once-run that never finishes: each attempt is one process under the usual supervisor,
and when it exits (whatever its code) the executor's thread starts the next attempt after
`restart_delay`. While an attempt lives, the thread probes its readiness URL at each pass and records
the answer in the attempt (`ready.json`), so `runs()` reads it from the state directory like the rest.
Only the newest `KEPT_ATTEMPTS` attempts (their logs) are kept; the numbering goes on.
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

from loom.domain.workloads import Service, Workload
from loom.executors.local_runs import (
    READY_FILE,
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


def replaces(running: Workload, wanted: Workload) -> bool:
    """Whether a submitted service differs from the one running (command, environment, files, ports...),
    so that the running process has to be replaced."""
    return workload_to_json(running) != workload_to_json(wanted)
