"""Tools for killing Loom with SIGKILL and checking what is left: the operator as a process that can
be killed and started again over one state directory, the local executor's records of a workload's
runs read back from that directory, and a watcher that samples /proc for component processes, so
that two runs of one workload alive at once are seen even where no record tells (a supervisor killed
with its process group writes nothing)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from loom.executors.local_runs import ATTEMPT_PREFIX, FAILED_FILE, LOG_FILE, RUN_FILE, attempt_dirs, read_json
from loom.executors.procfs import group_members
from loom.executors.supervisor import EXIT_FILE, PID_FILE
from tests.conftest import ROOT
from tests.integration.conftest import free_port

SUPERVISOR_MODULE = "loom.executors.supervisor"


# --- the operator as a process ------------------------------------------------------------------


@dataclass
class OperatorProcess:
    """One incarnation of `loom run --executor local`, its output in its own log file."""

    number: int
    proc: subprocess.Popen[bytes]
    log: Path
    liveness_url: str

    def healthy(self) -> bool:
        assert self.proc.poll() is None, f"operator {self.number} exited {self.proc.returncode}: {self.tail()}"
        try:
            with urllib.request.urlopen(self.liveness_url, timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def kill(self) -> None:
        """kill -9: no cleanup handler runs, the executor's thread stops wherever it was."""
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(timeout=30) == -signal.SIGKILL

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class Operators:
    """Successive operator processes watching one namespace, sharing one local executor state dir
    (as an operator restarted on the same machine does); each gets fresh metrics and liveness ports."""

    def __init__(self, namespace: str, state_dir: Path, log_dir: Path) -> None:
        self.namespace = namespace
        self.state_dir = state_dir
        self.log_dir = log_dir
        self.started: list[OperatorProcess] = []

    def start(self) -> OperatorProcess:
        number = len(self.started) + 1
        liveness = f"http://127.0.0.1:{free_port()}/healthz"
        env = dict(os.environ, LOOM_EXECUTOR="local", LOOM_STATE_DIR=str(self.state_dir),
                   LOOM_METRICS_PORT=str(free_port()), LOOM_METRICS_ADDRESS="127.0.0.1",
                   LOOM_DEPENDENCY_RETRY_SECONDS="1")  # KUBECONFIG is the test cluster's (the cluster fixture)
        log = self.log_dir / f"operator-{number}.log"
        with log.open("ab") as sink:
            proc = subprocess.Popen(
                [sys.executable, "-m", "loom.cli", "run", "--executor", "local", "--namespace", self.namespace,
                 "--liveness", liveness],
                stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
            )
        op = OperatorProcess(number, proc, log, liveness)
        self.started.append(op)
        return op

    def close(self) -> None:
        """Stop the operator that runs, then end every process group a run left (a tick may have
        started one meanwhile), so nothing outlives the test."""
        for op in self.started:
            op.stop()
        for attempt in (self.state_dir / "runs").glob(f"*/*/{ATTEMPT_PREFIX}*"):
            pid = read_json(attempt / PID_FILE)
            if pid is not None and group_members(pid["pid"], pid["startTicks"], pid["bootId"]):
                try:
                    os.killpg(pid["pid"], signal.SIGKILL)
                except ProcessLookupError:
                    pass


# --- the local executor's records -----------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """One attempt of a run as its files tell it; `ended` is when the supervisor recorded the exit,
    or when the executor recorded the attempt failed (None when neither was written)."""

    run: str
    number: int
    dir: Path
    supervisor: int | None
    started: datetime | None
    ended: datetime | None
    exit_code: int | None
    failure: str | None

    @property
    def leader(self) -> int:
        """The supervisor's pid, which is also the attempt's process group."""
        assert self.supervisor is not None, f"{self} has no supervisor yet"
        return self.supervisor

    @property
    def output(self) -> str:
        path = self.dir / LOG_FILE
        return path.read_text(errors="replace") if path.exists() else ""

    def __str__(self) -> str:
        return f"{self.run}/attempt-{self.number}"


def schedule_runs(state_dir: Path, namespace: str, workload: str) -> list[Path]:
    """Run directories of a scheduled workload, oldest first (run names end in their tick's minute)."""
    base = state_dir / "runs" / namespace
    found = [d for d in base.glob(f"{workload}-*")
             if not d.name.startswith(".") and (read_json(d / RUN_FILE) or {}).get("schedule") == workload]
    return sorted(found, key=lambda d: int(d.name.rsplit("-", 1)[1]))


def attempt(run_dir: Path, number: int) -> Attempt:
    path = run_dir / f"{ATTEMPT_PREFIX}{number}"
    pid = read_json(path / PID_FILE)
    done = read_json(path / EXIT_FILE)
    failed = read_json(path / FAILED_FILE)
    ended = done["finishedAt"] if done else failed["at"] if failed else None
    return Attempt(
        run=run_dir.name, number=number, dir=path,
        supervisor=pid["pid"] if pid else None,
        started=datetime.fromisoformat(pid["startedAt"]) if pid else None,
        ended=datetime.fromisoformat(ended) if ended else None,
        exit_code=int(done["code"]) if done else None,
        failure=failed["message"] if failed else None,
    )


def attempts(run_dir: Path) -> list[Attempt]:
    return [attempt(run_dir, int(d.name[len(ATTEMPT_PREFIX):])) for d in attempt_dirs(run_dir)]


def component_pids(at: Attempt) -> list[int]:
    """The live processes of the attempt's process group other than its supervisor: the component."""
    pid = read_json(at.dir / PID_FILE)
    assert pid is not None, f"{at} has no supervisor yet"
    return [p for p in group_members(pid["pid"], pid["startTicks"], pid["bootId"]) if p != pid["pid"]]


# --- watching component processes ---------------------------------------------------------------


@dataclass
class Sighting:
    """A component process group (named by its supervisor's pid) seen alive between first and last."""

    workload: str
    first: datetime
    last: datetime


@dataclass
class ComponentWatch:
    """Samples /proc every `interval` seconds for processes running `components/<component>` in a run
    directory under `state_dir` (a component's working directory is its run's). Each sample groups
    them by workload; two process groups of one workload in one sample is an overlap."""

    state_dir: Path
    component: str
    interval: float = 0.05
    sightings: dict[int, Sighting] = field(default_factory=dict)  # by process group
    overlaps: list[str] = field(default_factory=list)
    samples: int = 0
    _workloads: dict[str, str] = field(default_factory=dict)  # run dir -> workload
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="component-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        now = datetime.now(timezone.utc)
        live: dict[str, set[int]] = {}
        for pid, workload, group in self._components():
            seen = self.sightings.setdefault(group, Sighting(workload, now, now))
            seen.last = now
            live.setdefault(workload, set()).add(group)
        for workload, groups in live.items():
            if len(groups) > 1:
                self.overlaps.append(f"{now.isoformat()}: {workload} has components in process groups {sorted(groups)}")
        self.samples += 1

    def _components(self) -> Iterator[tuple[int, str, int]]:
        """(pid, workload, process group) of each live component process under the state dir."""
        script = str(ROOT / "components" / self.component)
        runs = str(self.state_dir / "runs") + os.sep
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                argv = Path(entry.path, "cmdline").read_bytes().split(b"\0")
                if script.encode() not in argv[:2] or SUPERVISOR_MODULE.encode() in argv:
                    continue
                cwd = os.readlink(Path(entry.path, "cwd"))
                stat = Path(entry.path, "stat").read_text()
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue  # gone while we looked
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] in ("Z", "X") or not cwd.startswith(runs):
                continue
            workload = self._workload(cwd)
            if workload is not None:
                yield int(entry.name), workload, int(fields[2])

    def _workload(self, run_dir: str) -> str | None:
        if run_dir not in self._workloads:
            run = read_json(Path(run_dir) / RUN_FILE)
            if run is None:
                return None
            self._workloads[run_dir] = run["schedule"] or Path(run_dir).name
        return self._workloads[run_dir]


def overlapping(workload_attempts: list[Attempt], watch: ComponentWatch) -> list[str]:
    """Attempts of one workload whose lifetimes overlap. An attempt lives from its supervisor's start
    to the later of its recorded end and the last time its component was seen alive (a component
    orphaned by a killed supervisor lives on past every record)."""
    spans = []
    for at in workload_attempts:
        assert at.started is not None and at.supervisor is not None, f"{at} never started"
        seen = watch.sightings.get(at.supervisor)
        ends = [t for t in (at.ended, seen.last if seen else None) if t is not None]
        spans.append((at.started, max(ends) if ends else at.started, str(at)))
    spans.sort()
    return [f"{b[2]} started at {b[0].isoformat()} while {a[2]} lived until {a[1].isoformat()}"
            for a, b in zip(spans, spans[1:]) if b[0] < a[1]]

