"""The local executor with real processes: tiny components in a temporary components dir, the real
supervisor, the state dir read back by fresh executor instances (an operator restart)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from loom.domain.workloads import Phase, PythonEnv, SecretEnv, Workload, WorkloadStatus
from loom.executors.local import LocalExecutor
from tests.conftest import ROOT, eventually

COMPONENTS = {
    # appends one line per run to $MARKER, then waits for $GATE (if set) to exist
    "echo": """
        import os, pathlib, sys, time
        with open(os.environ["MARKER"], "a") as f:
            f.write(" ".join(sys.argv[1:]) + "\\n")
        gate = os.environ.get("GATE")
        while gate and not pathlib.Path(gate).exists():
            time.sleep(0.05)
        print("progress on stdout")
        print("done: " + os.environ.get("TOKEN", "-"), file=sys.stderr)
    """,
    "fail": """
        import sys
        print("reading file:///in/a.csv", file=sys.stderr)
        print("ingest x failed: file:///in/a.csv: column 'rating' cannot be read as float", file=sys.stderr)
        sys.exit(3)
    """,
}
SECRETS = {"ns": {"creds": {"token": "s3cr3t"}}}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, 30, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def components(tmp_path: Path) -> Iterator[Path]:
    base = tmp_path / "components"
    for name, code in COMPONENTS.items():
        (base / name).mkdir(parents=True)
        (base / name / "__main__.py").write_text(textwrap.dedent(code))
    yield base
    ex = executor(tmp_path, base)  # a failed test must not leave gated runs waiting forever
    for name in ex.names("ns", {}):
        ex.delete("ns", name)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def executor(tmp_path: Path, components: Path, clock: Clock | None = None) -> LocalExecutor:
    """A new instance over the same state dir each time: what the operator finds after a restart."""
    return LocalExecutor(
        tmp_path / "state", {PythonEnv.MAIN: sys.executable}, lambda ns, name: SECRETS[ns][name], components,
        clock or (lambda: datetime.now(timezone.utc)),
    )


def work(tmp_path: Path, name: str = "run-1", component: str = "echo", gate: bool = False, **kw: object) -> Workload:
    env = {"MARKER": str(tmp_path / f"{name}.marker")}
    if gate:
        env["GATE"] = str(tmp_path / f"{name}.gate")
    return Workload(name, "ns", component, args=("a", "b"), env=env, labels={"loom.dev/task": "test"}, **kw)


def finished(ex: LocalExecutor, name: str) -> WorkloadStatus:
    def check() -> WorkloadStatus | None:
        runs = ex.runs("ns", name)
        return runs[0] if runs and runs[0].finished else None

    return eventually(check, timeout=30, what=f"run {name} to finish")


def test_run_succeeds_once_however_often_it_is_submitted(tmp_path: Path, components: Path) -> None:
    ex = executor(tmp_path, components)
    w = work(tmp_path, secret_env=(SecretEnv("TOKEN", "creds", "token"),))
    for _ in range(3):
        ex.submit(w)
    run = finished(ex, "run-1")
    ex.submit(w)  # a finished run is not started again either
    assert (run.phase, run.exit_code, run.message) == (Phase.SUCCEEDED, 0, "done: s3cr3t")
    assert run.started_at is not None and run.finished_at is not None and run.finished_at >= run.started_at
    assert (tmp_path / "run-1.marker").read_text() == "a b\n"
    # the secret value reached the process, never the state dir
    assert not any("s3cr3t" in p.read_text() for p in (tmp_path / "state").rglob("*.json"))


def test_failure_reports_exit_code_and_last_line(tmp_path: Path, components: Path) -> None:
    ex = executor(tmp_path, components)
    ex.submit(work(tmp_path, "bad", component="fail"))
    run = finished(ex, "bad")
    assert (run.phase, run.exit_code) == (Phase.FAILED, 3)
    assert run.message == "ingest x failed: file:///in/a.csv: column 'rating' cannot be read as float"


def test_status_survives_an_operator_that_is_gone(tmp_path: Path, components: Path) -> None:
    """Submit from a process that exits at once; new executor instances see the run go and end."""
    w = work(tmp_path, "detached", gate=True)
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from loom.domain.workloads import PythonEnv, Workload
        from loom.executors.local import LocalExecutor
        ex = LocalExecutor(Path({str(tmp_path / 'state')!r}), {{PythonEnv.MAIN: sys.executable}}, lambda ns, n: {{}},
                           Path({str(components)!r}))
        ex.submit(Workload("detached", "ns", "echo", env={json.dumps(dict(w.env))}))
    """)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT, timeout=60)
    eventually(lambda: executor(tmp_path, components).runs("ns", "detached")[0].phase == Phase.RUNNING,
               what="the detached run to be seen running")
    (tmp_path / "detached.gate").touch()
    run = finished(executor(tmp_path, components), "detached")
    assert (run.phase, run.exit_code) == (Phase.SUCCEEDED, 0)


def test_killed_runs_are_failed(tmp_path: Path, components: Path) -> None:
    ex = executor(tmp_path, components)
    ex.submit(work(tmp_path, "victim", gate=True))
    eventually(lambda: ex.runs("ns", "victim")[0].phase == Phase.RUNNING)
    supervisor = json.loads((tmp_path / "state/runs/ns/victim/pid.json").read_text())["pid"]
    component = int(subprocess.run(["pgrep", "-P", str(supervisor)], capture_output=True, text=True).stdout.split()[0])
    os.kill(component, signal.SIGKILL)
    run = finished(ex, "victim")
    assert (run.phase, run.exit_code) == (Phase.FAILED, 128 + signal.SIGKILL)

    ex.submit(work(tmp_path, "orphan", gate=True))
    eventually(lambda: ex.runs("ns", "orphan")[0].phase == Phase.RUNNING)
    pid = json.loads((tmp_path / "state/runs/ns/orphan/pid.json").read_text())["pid"]
    os.killpg(pid, signal.SIGKILL)  # supervisor and component at once: no exit code is ever written
    run = finished(ex, "orphan")
    assert run.phase == Phase.FAILED and run.exit_code is None
    assert "ended without recording an exit code" in run.message


def test_delete_stops_a_running_run(tmp_path: Path, components: Path) -> None:
    ex = executor(tmp_path, components)
    ex.submit(work(tmp_path, "doomed", gate=True))
    eventually(lambda: ex.runs("ns", "doomed")[0].phase == Phase.RUNNING)
    pid = json.loads((tmp_path / "state/runs/ns/doomed/pid.json").read_text())["pid"]
    ex.delete("ns", "doomed")
    assert ex.runs("ns", "doomed") == []
    eventually(lambda: not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3],
               what="the supervisor to stop")


def test_missing_secret_key_starts_nothing(tmp_path: Path, components: Path) -> None:
    ex = executor(tmp_path, components)
    with pytest.raises(LookupError, match="no key 'nope'"):
        ex.submit(work(tmp_path, "nokey", secret_env=(SecretEnv("TOKEN", "creds", "nope"),)))
    assert ex.runs("ns", "nokey") == []


def test_schedule_runs_on_ticks_one_at_a_time(tmp_path: Path, components: Path, clock: Clock) -> None:
    ex = executor(tmp_path, components, clock)
    w = work(tmp_path, "sched", gate=True, schedule="*/5 * * * *")
    ex.submit(w)
    assert ex.runs("ns", "sched") == []  # like a new CronJob: the first run is at the next tick
    assert ex.names("ns", {"loom.dev/task": "test"}) == {"sched"}

    clock.now += timedelta(minutes=5)  # 12:05:30, past the 12:05 tick
    ex.submit(w)
    ex.submit(w)
    runs = ex.runs("ns", "sched")
    assert [r.name for r in runs] == [f"sched-{int(datetime(2026, 1, 1, 12, 5, tzinfo=timezone.utc).timestamp()) // 60}"]

    clock.now += timedelta(minutes=10)  # two ticks later, the first run still going: no second run
    ex.submit(w)
    assert len(ex.runs("ns", "sched")) == 1
    (tmp_path / "sched.gate").touch()
    finished(ex, "sched")
    ex.submit(w)  # the missed ticks collapse into one run, for the latest (12:15)
    runs = ex.runs("ns", "sched")
    assert len(runs) == 2 and runs[0].name.endswith(str(int(datetime(2026, 1, 1, 12, 15, tzinfo=timezone.utc).timestamp()) // 60))
    eventually(lambda: (tmp_path / "sched.marker").read_text().count("a b") == 2, what="the second run to start")
    assert ex.names("ns", {"loom.dev/task": "test"}) == {"sched"}

    for _ in range(4):  # finished runs are pruned to the newest three
        finished(ex, "sched")
        clock.now += timedelta(minutes=5)
        ex.submit(w)
    finished(ex, "sched")
    ex.submit(w)
    assert len(ex.runs("ns", "sched")) == 3

    ex.delete("ns", "sched")
    assert ex.runs("ns", "sched") == [] and ex.names("ns", {}) == set()
