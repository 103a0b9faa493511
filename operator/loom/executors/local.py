"""The local executor: each run is `components/<component>` under its environment's interpreter, as a
detached process in its own session, watched by a small supervisor (`executors/supervisor.py`) that
writes the pid and the exit code into the run's directory. Everything the executor knows lives in the
state directory, so an operator that restarts (or was killed) finds every run as it is:

    <state>/runs/<namespace>/<run>/       run.json (labels, schedule), pid.json, exit.json, output.log
    <state>/schedules/<namespace>/<name>.json   cron, labels and the last tick a run was started for

Schedules have no timer of their own: each `submit` (the operator's periodic reconcile) starts the run
for the latest tick not yet started, unless a run of the schedule is still going (as a CronJob with
concurrencyPolicy Forbid would). Missed ticks collapse into one run. Finished runs of a schedule are
pruned to the newest few, like a CronJob's history limits.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from loom.domain.schedules import latest_tick
from loom.domain.workloads import Phase, PythonEnv, Workload, WorkloadStatus
from loom.executors.procfs import alive
from loom.executors.supervisor import EXIT_FILE, PID_FILE

SecretReader = Callable[[str, str], Mapping[str, str]]
Clock = Callable[[], datetime]

RUN_FILE = "run.json"
LOG_FILE = "output.log"
HISTORY_LIMIT = 3
# A run directory whose supervisor never wrote its pid (the operator died while starting it).
START_GRACE = timedelta(seconds=60)
MESSAGE_BYTES = 2048
DEFAULT_STATE_DIR = Path.home() / ".local" / "state" / "loom" / "operator"
DEFAULT_COMPONENTS_DIR = Path(__file__).resolve().parents[3] / "components"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    os.replace(tmp, path)


def last_line(path: Path) -> str:
    """The last non-empty line of a run's log: components end with their verdict."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - MESSAGE_BYTES))
            text = f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


class LocalExecutor:
    def __init__(
        self,
        state_dir: Path,
        interpreters: Mapping[PythonEnv, str],
        secrets: SecretReader,
        components_dir: Path = DEFAULT_COMPONENTS_DIR,
        clock: Clock = _utcnow,
    ) -> None:
        self.state_dir = state_dir
        self.interpreters = dict(interpreters)
        self.secrets = secrets
        self.components_dir = components_dir
        self.clock = clock
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    @classmethod
    def from_env(cls, secrets: SecretReader) -> LocalExecutor:
        """LOOM_STATE_DIR, LOOM_COMPONENTS_DIR, LOOM_PYTHON_MAIN (default: this interpreter) and
        LOOM_PYTHON_SERVE (no default: the serve environment is a separate virtualenv)."""
        env = os.environ
        interpreters = {PythonEnv.MAIN: env.get("LOOM_PYTHON_MAIN", sys.executable)}
        if env.get("LOOM_PYTHON_SERVE"):
            interpreters[PythonEnv.SERVE] = env["LOOM_PYTHON_SERVE"]
        return cls(
            Path(env.get("LOOM_STATE_DIR", DEFAULT_STATE_DIR)),
            interpreters,
            secrets,
            Path(env.get("LOOM_COMPONENTS_DIR", DEFAULT_COMPONENTS_DIR)),
        )

    # --- the Executor interface ----------------------------------------------------------------

    def submit(self, workload: Workload) -> None:
        if workload.schedule is None:
            self._start(workload, workload.name, schedule=None)
        else:
            self._tick(workload)

    def runs(self, namespace: str, name: str) -> list[WorkloadStatus]:
        self._reap()
        if self._schedule_path(namespace, name).exists():
            return [self._status(d) for d in self._schedule_runs(namespace, name)]
        run_dir = self._run_dir(namespace, name)
        return [self._status(run_dir)] if run_dir.is_dir() else []

    def names(self, namespace: str, labels: Mapping[str, str]) -> set[str]:
        found: set[str] = set()
        for path in sorted((self.state_dir / "schedules" / namespace).glob("*.json")):
            if _matches((_read_json(path) or {}).get("labels", {}), labels):
                found.add(path.stem)
        for run_dir in self._run_dirs(namespace):
            run = _read_json(run_dir / RUN_FILE) or {}
            if _matches(run.get("labels", {}), labels):
                found.add(run.get("schedule") or run_dir.name)
        return found

    def delete(self, namespace: str, name: str) -> None:
        schedule = self._schedule_path(namespace, name)
        run_dirs = self._schedule_runs(namespace, name) if schedule.exists() else [self._run_dir(namespace, name)]
        schedule.unlink(missing_ok=True)
        for run_dir in run_dirs:
            self._stop(run_dir)
            shutil.rmtree(run_dir, ignore_errors=True)

    # --- runs ----------------------------------------------------------------------------------

    def _run_dir(self, namespace: str, name: str) -> Path:
        return self.state_dir / "runs" / namespace / name

    def _run_dirs(self, namespace: str) -> list[Path]:
        base = self.state_dir / "runs" / namespace
        return sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def _environment(self, workload: Workload) -> dict[str, str]:
        env = {**os.environ, **workload.env, "PYTHONUNBUFFERED": "1"}
        for ref in workload.secret_env:
            values = self.secrets(workload.namespace, ref.secret)
            if ref.key not in values:
                raise LookupError(f"Secret {workload.namespace}/{ref.secret} has no key {ref.key!r}")
            env[ref.name] = values[ref.key]
        return env

    def _start(self, workload: Workload, run_name: str, schedule: str | None) -> None:
        """Start a run unless its directory exists; creating the directory is the claim, so two
        callers never start the same run."""
        run_dir = self._run_dir(workload.namespace, run_name)
        if run_dir.exists():
            return
        interpreter = self.interpreters.get(PythonEnv(workload.python))
        if interpreter is None:
            raise LookupError(f"no interpreter for the {workload.python} environment (set LOOM_PYTHON_SERVE)")
        env = self._environment(workload)  # before claiming: a missing Secret leaves no trace
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            run_dir.mkdir()
        except FileExistsError:
            return
        _write_json(run_dir / RUN_FILE, {
            "labels": dict(workload.labels),
            "schedule": schedule,
            "component": workload.component,
            "createdAt": _utcnow().isoformat(),  # wall time, for START_GRACE; the clock is for schedules
        })
        command = [interpreter, str(self.components_dir / workload.component), *workload.args]
        with (run_dir / LOG_FILE).open("ab") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "loom.executors.supervisor", str(run_dir), "--", *command],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd=run_dir, start_new_session=True,
            )
        self._children[child.pid] = child

    def _reap(self) -> None:
        """Collect supervisors this process started that have exited (no zombies left behind)."""
        for pid, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[pid]

    def _status(self, run_dir: Path) -> WorkloadStatus:
        run = _read_json(run_dir / RUN_FILE) or {}
        pid = _read_json(run_dir / PID_FILE)
        done = _read_json(run_dir / EXIT_FILE)
        started = datetime.fromisoformat(pid["startedAt"]) if pid else None
        if done is not None:
            code = int(done["code"])
            return WorkloadStatus(
                run_dir.name, Phase.SUCCEEDED if code == 0 else Phase.FAILED, last_line(run_dir / LOG_FILE),
                started, datetime.fromisoformat(done["finishedAt"]), code,
            )
        if pid is not None:
            if alive(pid["pid"], pid["startTicks"], pid["bootId"]):
                return WorkloadStatus(run_dir.name, Phase.RUNNING, "", started)
            return WorkloadStatus(
                run_dir.name, Phase.FAILED,
                f"the run's supervisor (pid {pid['pid']}) ended without recording an exit code "
                "(killed, or the machine restarted)", started,
            )
        created = datetime.fromisoformat(run["createdAt"]) if run.get("createdAt") else None
        if created is not None and _utcnow() - created < START_GRACE:
            return WorkloadStatus(run_dir.name, Phase.PENDING)
        return WorkloadStatus(run_dir.name, Phase.FAILED, "the run never started (the operator stopped while starting it)")

    def _stop(self, run_dir: Path) -> None:
        """SIGTERM to the run's whole session (supervisor and component), if it is still going."""
        pid = _read_json(run_dir / PID_FILE)
        if pid is not None and _read_json(run_dir / EXIT_FILE) is None and alive(pid["pid"], pid["startTicks"], pid["bootId"]):
            try:
                os.killpg(pid["pid"], signal.SIGTERM)
            except ProcessLookupError:
                pass

    # --- schedules -----------------------------------------------------------------------------

    def _schedule_path(self, namespace: str, name: str) -> Path:
        return self.state_dir / "schedules" / namespace / f"{name}.json"

    def _schedule_runs(self, namespace: str, name: str) -> list[Path]:
        """Run directories of a schedule, newest first (run names end in the tick's minute)."""
        runs = [d for d in self._run_dirs(namespace) if (_read_json(d / RUN_FILE) or {}).get("schedule") == name]
        return sorted(runs, key=lambda d: int(d.name.rsplit("-", 1)[1]), reverse=True)

    def _tick(self, workload: Workload) -> None:
        assert workload.schedule is not None
        now = self.clock()
        path = self._schedule_path(workload.namespace, workload.name)
        state = _read_json(path) or {"lastTick": now.isoformat()}  # like a new CronJob: the next tick is the first
        state.update(cron=workload.schedule, labels=dict(workload.labels))
        tick = latest_tick(workload.schedule, now)
        runs = [self._status(d) for d in self._schedule_runs(workload.namespace, workload.name)]
        if tick > datetime.fromisoformat(state["lastTick"]) and all(r.finished for r in runs):
            self._start(workload, f"{workload.name}-{int(tick.timestamp()) // 60}", schedule=workload.name)
            state["lastTick"] = tick.isoformat()
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_json(path, state)
        self._prune(workload.namespace, workload.name)

    def _prune(self, namespace: str, name: str) -> None:
        kept = {Phase.SUCCEEDED: 0, Phase.FAILED: 0}
        for run_dir in self._schedule_runs(namespace, name):
            phase = self._status(run_dir).phase
            if phase in kept:
                kept[phase] += 1
                if kept[phase] > HISTORY_LIMIT:
                    shutil.rmtree(run_dir, ignore_errors=True)


def _matches(have: Mapping[str, str], want: Mapping[str, str]) -> bool:
    return all(have.get(k) == v for k, v in want.items())
