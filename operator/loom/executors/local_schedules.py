"""The local executor's schedules, what the CronJob controller does: a scheduled workload is stored as
submitted, and at each tick (UTC cron) a run of it starts unless one is still going (concurrencyPolicy
Forbid); missed ticks collapse into one run, a new schedule's first run is at its next tick, and
finished runs are pruned to the newest HISTORY_LIMIT per outcome."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from loom.domain.schedules import latest_tick, next_tick, validate
from loom.domain.workloads import Phase, Workload
from loom.executors.local_launch import Launcher
from loom.executors.local_layout import StateDir, read_run
from loom.executors.local_runs import read_json, workload_from_json, workload_to_json, write_json

Clock = Callable[[], datetime]

HISTORY_LIMIT = 3


class Schedules:
    """Stores scheduled workloads and starts their runs at their ticks."""

    def __init__(self, state: StateDir, launcher: Launcher, clock: Clock) -> None:
        self._state = state
        self._launcher = launcher
        self._clock = clock

    def submit(self, workload: Workload) -> None:
        """Store the schedule (unless it is stored as it is); no run starts before its next tick."""
        assert workload.schedule is not None
        validate(workload.schedule)
        self._launcher.interpreter(workload)  # Secrets are read at each run's start
        wanted = workload_to_json(workload)
        path = self._state.schedule_path(workload.namespace, workload.name)
        with self._state.lock(workload.namespace, workload.name):
            state = read_json(path)
            if state is not None and state["workload"] == wanted:
                return
            # A new schedule starts from now, as a new CronJob does; a changed one keeps its lastTick.
            last = state["lastTick"] if state is not None else self._clock().isoformat()
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json(path, {"workload": wanted, "lastTick": last})

    def tick(self, path: Path, now: datetime, wakes: list[datetime]) -> bool:
        """Start the schedule's run for its latest tick if that is new and no run of it is going
        (missed ticks collapse into one run); prune its history. True if a run started."""
        state = read_json(path)
        if state is None:
            return False
        workload = workload_from_json(state["workload"])
        assert workload.schedule is not None
        wakes.append(next_tick(workload.schedule, now))
        started = False
        if latest_tick(workload.schedule, now) > datetime.fromisoformat(state["lastTick"]):
            with self._state.lock(workload.namespace, workload.name):
                started = self._start_tick(path, now)
        self._prune(workload.namespace, workload.name)
        return started

    def _start_tick(self, path: Path, now: datetime) -> bool:
        state = read_json(path)  # again, under the lock: deleted or changed meanwhile
        if state is None:
            return False
        workload = workload_from_json(state["workload"])
        assert workload.schedule is not None
        tick = latest_tick(workload.schedule, now)
        if tick <= datetime.fromisoformat(state["lastTick"]):
            return False
        runs = (read_run(d) for d in self._state.schedule_runs(workload.namespace, workload.name))
        if any(r is not None and not r.status().finished for r in runs):
            return False  # concurrencyPolicy Forbid: the tick waits for the run that is going
        started = self._launcher.create_run(workload, f"{workload.name}-{int(tick.timestamp()) // 60}", workload.name)
        write_json(path, {**state, "lastTick": tick.isoformat()})
        return started

    def _prune(self, namespace: str, name: str) -> None:
        kept = {Phase.SUCCEEDED: 0, Phase.FAILED: 0}
        for run_dir in self._state.schedule_runs(namespace, name):
            run = read_run(run_dir)
            phase = run.status().phase if run is not None else None
            if phase in kept:
                kept[phase] += 1
                if kept[phase] > HISTORY_LIMIT:
                    shutil.rmtree(run_dir, ignore_errors=True)
