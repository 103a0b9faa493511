"""The local executor: on one machine, what the Kubernetes Job and CronJob controllers do in a cluster.

Each attempt of a run is `components/<component>` under its environment's interpreter, as a detached
process in its own session, watched by a small supervisor (`executors/supervisor.py`) that writes the
pid and the exit code into the attempt's directory. `$(NAME)` in its arguments is expanded from the
attempt's environment as Kubernetes expands a container's args (`expand`). Everything the executor
knows lives in the state directory, so an operator that restarts (or was killed) finds every run as it is:

    <state>/schedules/<namespace>/<name>.json   the scheduled workload as submitted, and lastTick: the
                                                last tick a run was started for
    <state>/runs/<namespace>/<run>/run.json     the workload as submitted (owner, labels, retries;
                                                Secret references, never their values; a service's
                                                ports as given), its schedule
    <state>/runs/<namespace>/<run>/files/       the workload's files, written with the run (a
                                                service's rewritten in place when only they change);
                                                each attempt finds them in $LOOM_WORKLOAD_FILES
    <state>/runs/<namespace>/<run>/notified.json  the last change of the run reported to `on_change`
    <state>/runs/<namespace>/<run>/attempt-<n>/ pid.json, exit.json (written by the supervisor),
                                                output.log, failed.json (why the attempt failed when
                                                no exit code tells), retry.json (when the next is due),
                                                ready.json (a service's last readiness answer)
    <state>/locks/<namespace>/<workload>.lock   flock'ed while a run of the workload is checked and
                                                started, or the workload deleted

`submit` of a workload without a schedule starts its one run at once (a name stands for one run, so
submitting it again starts nothing). `submit` of a scheduled workload only stores it. The rest is done
by one background thread (`start`/`stop`), the local stand-in for the controllers:

- Schedules: at each tick (UTC cron) a run starts unless one of the schedule is still going (as with
  concurrencyPolicy Forbid); missed ticks collapse into one run; a new schedule's first run is at its
  next tick, as with a new CronJob; finished runs are pruned to the newest HISTORY_LIMIT per outcome.
- Retries: a failed attempt is started again after a backoff (`retry_delay`) while `Workload.retries`
  allows, like a Job's backoffLimit; meanwhile the run is Pending and says which attempt failed how.
- Notifications: `on_change` hears of each run that starts running and of each that finishes for good,
  once, also when it finished while no operator was running.
- No overlap: before any run or attempt of a workload starts, earlier runs of it whose supervisor died
  but whose component lives on (in the supervisor's process group) are ended and recorded as failed.

Training runs (`Workload.training` set) are once-runs whose command is `executors/torch_launch.py`
(Kubeflow's torch runtime on one machine: `numNodes` torchrun processes with the PET_* environment),
with the same supervisor, process group, locks and orphan rules. Besides:

- Retries: `Training.backoff_limit` is their retry budget (`Workload.retries` is not used).
- Suspend: submitting the workload with `training.suspend` ends the running attempt as `delete` does
  and records the run as suspended (`suspended.json`, also in the attempt it ended, which counts as
  no failure); submitting it with `suspend: false` resumes it with a new attempt.
- Deadline: a run going longer than `active_deadline_seconds` since its start (or its last resume)
  is ended by the thread and fails for good (`ended.json` says why).
- Replicas: the launcher's node files in the attempt (`nodes/node-<k>.json`) give the run's counts.
- The attempt's processes are its process group plus those carrying its `$LOOM_ATTEMPT` marker:
  torchrun starts each worker in a session of its own.

Service runs (`Workload.service` set) are long-running processes kept up as a Deployment's pods are
(`executors/local_services.py`): a once-run whose attempts are restarted whenever they exit, after a
capped doubling backoff (Failed, with the exit code and last line, while it waits), whose readiness URL
the thread probes at each pass while an attempt lives (Running once it answers, Pending before; the
probes of all services run at once in a small pool, each for at most a second, so a pass waits about a
second however many services are not ready). Its 0 ports are given
free ones when the run is created, kept by every attempt and reported in its status (`ports`).
Submitting the same service again does nothing (its 0 ports match those given); one that differs only
in its files has them rewritten in place, each atomically, and keeps its process (the router reloads
its table file); any other change (command, environment, a port) replaces the process: the old one is
ended as `delete` ends it, then the new one starts, with the ports the old one was given. An operator
that restarts finds the live attempt and keeps it, as for any run; one whose supervisor died is ended
before the restart.

The thread wakes at the next tick, at the next retry, and every `poll_seconds` while an attempt is live
(nothing tells it when a process ends). Ticks and backoffs are computed on the injected clock; times
reported in run statuses are wall-clock times written when things happened.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from loom.domain.workloads import Phase, PythonEnv, RunChange, Workload, WorkloadStatus
from loom.executors.local_launch import DEFAULT_COMPONENTS_DIR, Launcher, SecretReader, expand
from loom.executors.local_layout import StateDir, read_run
from loom.executors.local_processes import STOP_GRACE_SECONDS, Processes
from loom.executors.local_runs import (
    ENDED_FILE,
    NOTIFIED_FILE,
    RETRY_BASE,
    RETRY_FILE,
    RUN_FILE,
    SUSPENDED_FILE,
    Run,
    attempt_dirs,
    attempt_number,
    read_json,
    retry_delay,
    utcnow,
    write_json,
)
from loom.executors.local_schedules import Clock, Schedules
from loom.executors.local_services import (
    assign_ports,
    next_attempt,
    prune_attempts,
    record_readiness,
    replaces,
    restart_delay,
    update_files,
    with_ports,
)

log = logging.getLogger(__name__)

__all__ = ["LocalExecutor", "expand"]

OnChange = Callable[[RunChange], None]

POLL_SECONDS = 1.0
# The longest sleep: the wall clock may be set while the thread waits for a tick.
MAX_SLEEP_SECONDS = 60.0
# Readiness probes run at once (each waits up to PROBE_TIMEOUT_SECONDS); more wait for a free worker.
PROBE_WORKERS = 8
# After a run or schedule could not be looked at (a damaged file): look again, without flooding the log.
ERROR_RETRY = timedelta(seconds=30)


class LocalExecutor:
    def __init__(
        self,
        state_dir: Path,
        interpreters: Mapping[PythonEnv, str],
        secrets: SecretReader,
        components_dir: Path = DEFAULT_COMPONENTS_DIR,
        clock: Clock = utcnow,
        *,
        on_change: OnChange | None = None,
        retry_base: timedelta = RETRY_BASE,
        poll_seconds: float = POLL_SECONDS,
        stop_grace_seconds: float = STOP_GRACE_SECONDS,
    ) -> None:
        self._state = StateDir(state_dir)
        self.clock = clock
        self.on_change = on_change
        self.retry_base = retry_base
        self.poll_seconds = poll_seconds
        self._processes = Processes(stop_grace_seconds)
        self._launcher = Launcher(self._state, self._processes, interpreters, secrets, components_dir)
        self._schedules = Schedules(self._state, self._launcher, clock)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the Executor interface ----------------------------------------------------------------

    def submit(self, workload: Workload) -> None:
        if workload.training is not None:
            self._submit_training(workload)
        elif workload.service is not None:
            self._submit_service(workload)
        elif workload.schedule is None:
            self._submit_once(workload)
        else:
            self._schedules.submit(workload)
        self.wake()

    def runs(self, namespace: str, name: str) -> list[WorkloadStatus]:
        self._processes.reap()
        if self._state.schedule_path(namespace, name).exists():
            found = [read_run(d) for d in self._state.schedule_runs(namespace, name)]
            return [r.status() for r in found if r is not None]
        run = read_run(self._state.run_dir(namespace, name))
        return [run.status()] if run is not None else []

    def names(self, namespace: str, labels: Mapping[str, str]) -> set[str]:
        found: set[str] = set()
        for path in self._state.schedules(namespace):
            if _matches(((read_json(path) or {}).get("workload") or {}).get("labels", {}), labels):
                found.add(path.stem)
        for run_dir in self._state.run_dirs(namespace):
            run = read_json(run_dir / RUN_FILE) or {}
            if _matches((run.get("workload") or {}).get("labels", {}), labels):
                found.add(run.get("schedule") or run_dir.name)
        return found

    def delete(self, namespace: str, name: str) -> None:
        """Waits until the workload's processes are gone, so a run submitted next never overlaps them."""
        with self._state.lock(namespace, name):
            self._state.schedule_path(namespace, name).unlink(missing_ok=True)
            for run_dir in self._state.workload_runs(namespace, name):
                for attempt in attempt_dirs(run_dir):
                    self._processes.wait_for_supervisor(attempt)
                    self._processes.end_group(attempt)
                shutil.rmtree(run_dir, ignore_errors=True)
            self._processes.reap()  # before a run of the same name can reuse its attempts' paths
            self._state.lock_path(namespace, name).unlink(missing_ok=True)

    def start(self) -> None:
        """Start the thread that runs schedules and retries and reports run changes (one per executor)."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="loom-local-executor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it; runs that are going keep going (they are not its children
        in any way that matters: the next `start`, here or in a new process, picks them up)."""
        if self._thread is None:
            return
        self._stopping.set()
        self._wake.set()
        self._thread.join()
        self._thread = None

    def wake(self) -> None:
        """Have the thread look at the state now instead of at its next planned time (after a submit,
        or after a test moved the injected clock)."""
        self._wake.set()

    # --- submitting ------------------------------------------------------------------------------

    def _submit_once(self, workload: Workload) -> None:
        run_dir = self._state.run_dir(workload.namespace, workload.name)
        if run_dir.exists():
            return
        self._launcher.check(workload)  # a missing interpreter or Secret key raises here
        with self._state.lock(workload.namespace, workload.name):
            self._launcher.create_run(workload, workload.name, schedule=None)

    def _submit_service(self, workload: Workload) -> None:
        """Create the service's run (its 0 ports given free ones) unless the same one exists; one that
        differs only in its files has them updated in place; any other change replaces the running one
        (its processes are ended first, as `delete` ends them, so two never run at once), keeping the
        ports the old one was given."""
        self._launcher.check(workload)
        run_dir = self._state.run_dir(workload.namespace, workload.name)
        with self._state.lock(workload.namespace, workload.name):
            run = read_run(run_dir)
            if run is not None and run.workload.service is not None:
                if not replaces(run.workload, workload):
                    if run.workload.files != workload.files:
                        update_files(run, workload)
                    return
                workload = with_ports(workload, run.workload.service.ports)
            for attempt in attempt_dirs(run_dir):
                self._processes.wait_for_supervisor(attempt)
                self._processes.end_group(attempt)
            shutil.rmtree(run_dir, ignore_errors=True)
            self._processes.reap()  # before the new attempts reuse the old ones' paths, which a reap would write to
            self._launcher.create_run(assign_ports(workload, self._state.service_ports()), workload.name, schedule=None)

    def _submit_training(self, workload: Workload) -> None:
        """A training run is created like a once-run (suspended from the start if asked); submitting
        it again suspends or resumes it as `training.suspend` says, and does nothing else."""
        assert workload.training is not None
        run_dir = self._state.run_dir(workload.namespace, workload.name)
        if not run_dir.exists():
            self._launcher.check(workload)
        with self._state.lock(workload.namespace, workload.name):
            run = read_run(run_dir)
            if run is None:
                self._launcher.create_run(workload, workload.name, schedule=None, suspended=workload.training.suspend)
            elif workload.training.suspend:
                self._suspend(run)
            elif run.suspended is not None:
                self._resume(run)

    def _suspend(self, run: Run) -> None:
        """End the running attempt as `delete` does and keep the run, suspended; a finished run stays
        as it is. The attempt is marked first, so that it never counts as a failed one."""
        if run.suspended is not None or run.status().finished:
            return
        write_json(run.dir / SUSPENDED_FILE, {"at": utcnow().isoformat()})
        if run.attempts and run.last is not None and not run.last.finished:
            attempt = run.attempts[-1]
            write_json(attempt / SUSPENDED_FILE, {"at": utcnow().isoformat()})
            self._processes.wait_for_supervisor(attempt)
            self._processes.end_group(attempt)
        self._processes.reap()

    def _resume(self, run: Run) -> None:
        """Start a new attempt of a suspended run; the one the suspend ended is not counted."""
        (run.dir / SUSPENDED_FILE).unlink()
        self._processes.end_orphans(self._state.workload_runs(run.workload.namespace, run.workload_name))
        self._launcher.launch(run.dir, len(run.attempts) + 1, run.workload)

    # --- the controller thread -------------------------------------------------------------------

    def _loop(self) -> None:
        with ThreadPoolExecutor(PROBE_WORKERS, thread_name_prefix="loom-local-probe") as probes:
            while not self._stopping.is_set():
                self._wake.clear()
                try:
                    timeout = self._pass(probes)
                except Exception:  # a full disk, an unreadable state dir: try again, never die
                    log.exception("local executor: pass over the state directory failed")
                    timeout = self.poll_seconds
                self._wake.wait(timeout)

    def _pass(self, probes: ThreadPoolExecutor) -> float:
        """One look at every run and schedule; returns how long to sleep."""
        now = self.clock()
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
            timeout = min(timeout, self.poll_seconds)
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
        due = now + (restart_delay(run, service) if service is not None else retry_delay(len(run.counted), self.retry_base))
        write_json(path, {"at": due.isoformat()})
        return due

    def _notify(self, run: Run) -> None:
        """Report a run that started running (each attempt) or finished for good, once each."""
        if self.on_change is None:
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
            self.on_change(change)
        except Exception:  # the periodic resync covers a change that could not be reported
            log.exception("local executor: could not report %s of run %s", status.phase.value, status.name)
        write_json(path, mark)


def _matches(have: Mapping[str, str], want: Mapping[str, str]) -> bool:
    return all(have.get(k) == v for k, v in want.items())
