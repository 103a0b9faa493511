"""The local executor's one background thread, its stand-in for the Job and CronJob controllers: each
pass probes the services, follows every run (reports its changes, ends a training run past its
deadline, starts a failed attempt's retry when due) and ticks every schedule, then sleeps until the
next tick or retry, or `poll_seconds` while an attempt is live (nothing tells it when a process ends)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from loom.domain.workloads import Phase, RunChange
from loom.executors.local_launch import Launcher
from loom.executors.local_layout import StateDir, read_run
from loom.executors.local_processes import Processes
from loom.executors.local_runs import (
    ENDED_FILE,
    NOTIFIED_FILE,
    RETRY_FILE,
    Run,
    attempt_number,
    read_json,
    retry_delay,
    utcnow,
    write_json,
)
from loom.executors.local_schedules import Clock, Schedules
from loom.executors.local_services import next_attempt, prune_attempts, record_readiness, restart_delay

log = logging.getLogger(__name__)

OnChange = Callable[[RunChange], None]

POLL_SECONDS = 1.0
# The longest sleep: the wall clock may be set while the thread waits for a tick.
MAX_SLEEP_SECONDS = 60.0
# Readiness probes run at once (each waits up to PROBE_TIMEOUT_SECONDS); more wait for a free worker.
PROBE_WORKERS = 8
# After a run or schedule could not be looked at (a damaged file): look again, without flooding the log.
ERROR_RETRY = timedelta(seconds=30)


class Supervision:
    """The thread that runs schedules and retries and reports run changes."""

    def __init__(self, state: StateDir, processes: Processes, launcher: Launcher, schedules: Schedules,
                 clock: Clock, on_change: OnChange | None, retry_base: timedelta, poll_seconds: float) -> None:
        self._state = state
        self._processes = processes
        self._launcher = launcher
        self._schedules = schedules
        self._clock = clock
        self._on_change = on_change
        self._retry_base = retry_base
        self._poll_seconds = poll_seconds
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="loom-local-executor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stopping.set()
        self._wake.set()
        self._thread.join()
        self._thread = None

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        with ThreadPoolExecutor(PROBE_WORKERS, thread_name_prefix="loom-local-probe") as probes:
            while not self._stopping.is_set():
                self._wake.clear()
                try:
                    timeout = self._pass(probes)
                except Exception:  # a full disk, an unreadable state dir: try again, never die
                    log.exception("local executor: pass over the state directory failed")
                    timeout = self._poll_seconds
                self._wake.wait(timeout)

    def _pass(self, probes: ThreadPoolExecutor) -> float:
        """One look at every run and schedule; returns how long to sleep."""
        now = self._clock()
        self._processes.reap()
        wakes: list[datetime] = []
        live = False
        run_dirs = self._state.all_run_dirs()
        self._probe(run_dirs, probes)
        for run_dir in run_dirs:
            if self._stopping.is_set():
                return 0.0
            try:
                live |= self._follow(run_dir, now, wakes)
            except Exception:
                if run_dir.is_dir():  # else it was deleted while we looked
                    log.exception("local executor: could not follow run %s", run_dir)
                    wakes.append(now + ERROR_RETRY)
        for path in self._state.all_schedules():
            if self._stopping.is_set():
                return 0.0
            try:
                live |= self._schedules.tick(path, now, wakes)
            except Exception:
                if path.exists():
                    log.exception("local executor: could not run schedule %s", path)
                    wakes.append(now + ERROR_RETRY)
        timeout = MAX_SLEEP_SECONDS
        if wakes:
            timeout = min(timeout, (min(wakes) - now).total_seconds())
        if live:
            timeout = min(timeout, self._poll_seconds)
        return max(0.0, timeout)

    def _probe(self, run_dirs: list[Path], probes: ThreadPoolExecutor) -> None:
        """Probe the live attempt of every service at once and record the answers, before the runs are
        followed (which reads them)."""
        asked: list[tuple[Path, Future[None]]] = []
        for run_dir in run_dirs:
            try:
                run = read_run(run_dir)
            except Exception:  # a damaged run: following it reports it
                continue
            service = run.workload.service if run is not None else None
            if run is not None and service is not None and run.last is not None and run.last.phase == Phase.RUNNING:
                asked.append((run_dir, probes.submit(record_readiness, run, service)))
        for run_dir, answer in asked:
            try:
                answer.result()
            except Exception:
                if run_dir.is_dir():  # else it was deleted while it was probed
                    log.exception("local executor: could not record the readiness of %s", run_dir)

    def _follow(self, run_dir: Path, now: datetime, wakes: list[datetime]) -> bool:
        """Report the run's change, start its next attempt when due; True while an attempt is live."""
        run = read_run(run_dir)
        if run is None:
            return False
        deadline = run.deadline()
        if deadline is not None and utcnow() >= deadline and not run.status().finished and run.suspended is None:
            with self._state.lock(run.workload.namespace, run.workload_name):
                run = self._end_overdue(run_dir)
            if run is None:
                return False
        self._notify(run)
        if not run.needs_attempt:
            return run.live
        due = self._retry_at(run, now)
        if due > now:
            wakes.append(due)
            return False
        with self._state.lock(run.workload.namespace, run.workload_name):
            run = read_run(run_dir)  # again, under the lock: another thread or process may have acted
            if run is None or not run.needs_attempt:
                return run is not None and run.live
            self._processes.end_orphans(self._state.workload_runs(run.workload.namespace, run.workload_name))
            if run.workload.service is not None and run.attempts:
                self._processes.end_group(run.attempts[-1])  # failed but not gone (a failed.json): never two at once
            self._launcher.launch(run_dir, next_attempt(run), run.workload)
            if run.workload.service is not None:
                prune_attempts(run_dir)
        return True

    def _end_overdue(self, run_dir: Path) -> Run | None:
        """Fail a training run past its active deadline for good (under the workload's lock, so no
        retry starts meanwhile): its processes are ended, then the run is recorded as failed, so it
        is reported failed only once nothing of it runs. Should the operator die in between, the
        next pass finds the deadline still passed."""
        run = read_run(run_dir)
        if run is None or run.suspended is not None or run.status().finished:
            return run
        training = run.workload.training
        assert training is not None
        if run.attempts:
            self._processes.wait_for_supervisor(run.attempts[-1])
            self._processes.end_group(run.attempts[-1])
        write_json(run_dir / ENDED_FILE, {
            "message": f"the run exceeded its active deadline of {training.active_deadline_seconds}s and was ended",
            "at": utcnow().isoformat(),
        })
        return read_run(run_dir)

    def _retry_at(self, run: Run, now: datetime) -> datetime:
        """When the next attempt is due: recorded the first time the thread sees the failure (a resume
        whose attempt did not start is due at once)."""
        if not run.attempts or run.interrupted:
            return now
        path = run.attempts[-1] / RETRY_FILE
        recorded = read_json(path)
        if recorded is not None:
            return datetime.fromisoformat(recorded["at"])
        service = run.workload.service
        due = now + (restart_delay(run, service) if service is not None else retry_delay(len(run.counted), self._retry_base))
        write_json(path, {"at": due.isoformat()})
        return due

    def _notify(self, run: Run) -> None:
        """Report a run that started running (each attempt) or finished for good, once each."""
        if self._on_change is None:
            return
        status = run.status()
        if status.finished and run.workload.service is None:
            mark: dict[str, Any] = {"phase": status.phase.value}
        elif status.phase in (Phase.RUNNING, Phase.SUSPENDED) or status.finished:  # a service's each exit
            mark = {"phase": status.phase.value, "attempt": attempt_number(run.attempts[-1])}
        else:
            return
        path = run.dir / NOTIFIED_FILE
        if read_json(path) == mark:
            return
        change = RunChange(run.workload.namespace, run.workload_name, run.workload.owner, status)
        try:
            self._on_change(change)
        except Exception:  # the periodic resync covers a change that could not be reported
            log.exception("local executor: could not report %s of run %s", status.phase.value, status.name)
        write_json(path, mark)
