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

import shutil
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from loom.domain.workloads import PythonEnv, Workload, WorkloadStatus
from loom.executors.local_launch import DEFAULT_COMPONENTS_DIR, Launcher, SecretReader, expand
from loom.executors.local_layout import StateDir, read_run
from loom.executors.local_processes import STOP_GRACE_SECONDS, Processes
from loom.executors.local_runs import RETRY_BASE, RUN_FILE, attempt_dirs, read_json, utcnow
from loom.executors.local_schedules import Clock, Schedules
from loom.executors.local_submit import RunSubmitter
from loom.executors.local_supervision import POLL_SECONDS, OnChange, Supervision

__all__ = ["LocalExecutor", "expand"]


class LocalExecutor:
    """The Executor on this machine, over its parts: the state directory (`local_layout`), starting
    runs and attempts (`local_launch`) and ending their processes (`local_processes`), submitting runs
    (`local_submit`) and schedules (`local_schedules`), and the thread (`local_supervision`)."""

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
        self._processes = Processes(stop_grace_seconds)
        self._launcher = Launcher(self._state, self._processes, interpreters, secrets, components_dir)
        self._runs = RunSubmitter(self._state, self._processes, self._launcher)
        self._schedules = Schedules(self._state, self._launcher, clock)
        self._supervision = Supervision(self._state, self._processes, self._launcher, self._schedules, clock,
                                        on_change, retry_base, poll_seconds)

    def submit(self, workload: Workload) -> None:
        if workload.training is not None:
            self._runs.submit_training(workload)
        elif workload.service is not None:
            self._runs.submit_service(workload)
        elif workload.schedule is None:
            self._runs.submit_once(workload)
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
        self._supervision.start()

    def stop(self) -> None:
        """Stop the thread and wait for it; runs that are going keep going (they are not its children
        in any way that matters: the next `start`, here or in a new process, picks them up)."""
        self._supervision.stop()

    def wake(self) -> None:
        """Have the thread look at the state now instead of at its next planned time (after a submit,
        or after a test moved the injected clock)."""
        self._supervision.wake()


def _matches(have: Mapping[str, str], want: Mapping[str, str]) -> bool:
    return all(have.get(k) == v for k, v in want.items())
