"""Submitting the local executor's workloads that run at once (no schedule): a once-run starts when
first submitted and never again under its name; a service's run is kept, updated in place or replaced;
a training run is created, suspended or resumed as `training.suspend` says."""

from __future__ import annotations

import shutil

from loom.domain.workloads import Workload
from loom.executors.local_launch import Launcher
from loom.executors.local_layout import StateDir, read_run
from loom.executors.local_processes import Processes
from loom.executors.local_runs import SUSPENDED_FILE, Run, attempt_dirs, utcnow, write_json
from loom.executors.local_services import assign_ports, replaces, update_files, with_ports


class RunSubmitter:
    """Creates, replaces, suspends and resumes the runs of workloads without a schedule."""

    def __init__(self, state: StateDir, processes: Processes, launcher: Launcher) -> None:
        self._state = state
        self._processes = processes
        self._launcher = launcher

    def submit_once(self, workload: Workload) -> None:
        run_dir = self._state.run_dir(workload.namespace, workload.name)
        if run_dir.exists():
            return
        self._launcher.check(workload)  # a missing interpreter or Secret key raises here
        with self._state.lock(workload.namespace, workload.name):
            self._launcher.create_run(workload, workload.name, schedule=None)

    def submit_service(self, workload: Workload) -> None:
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

    def submit_training(self, workload: Workload) -> None:
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
