"""The local executor with real processes: tiny components in a temporary components dir, the real
supervisor, the state dir read back by fresh executor instances (an operator restart)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from loom.domain.workloads import OwnerRef, Phase, PythonEnv, RunChange, SecretEnv, Workload, WorkloadStatus
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
    # says its input is wrong (counted in $MARKER)
    "bad-input": """
        import os, sys
        with open(os.environ["MARKER"], "a") as f:
            f.write("attempt\\n")
        print("input error: column 'rating' is a string", file=sys.stderr)
        sys.exit(65)
    """,
    # succeeds when its workload file `x` has $SIZE characters
    "read-file": """
        import os, pathlib, sys
        size = len(pathlib.Path(os.environ["LOOM_WORKLOAD_FILES"], "x").read_text())
        print(f"x has {size} characters", file=sys.stderr)
        sys.exit(0 if size == int(os.environ["SIZE"]) else 1)
    """,
    # fails until it has been started $SUCCEED_ON times (counted in $MARKER)
    "flaky": """
        import os, sys
        with open(os.environ["MARKER"], "a") as f:
            f.write("attempt\\n")
        with open(os.environ["MARKER"]) as f:
            n = len(f.readlines())
        if n < int(os.environ["SUCCEED_ON"]):
            print(f"attempt {n} failed: source not reachable", file=sys.stderr)
            sys.exit(1)
        print(f"attempt {n} done", file=sys.stderr)
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


def executor(
    tmp_path: Path, components: Path, clock: Clock | None = None, changes: list[RunChange] | None = None
) -> LocalExecutor:
    """A new instance over the same state dir each time: what the operator finds after a restart."""
    return LocalExecutor(
        tmp_path / "state", {PythonEnv.MAIN: sys.executable}, lambda ns, name: SECRETS[ns][name], components,
        clock or (lambda: datetime.now(timezone.utc)),
        on_change=None if changes is None else changes.append,
        retry_base=timedelta(milliseconds=200), poll_seconds=0.1, stop_grace_seconds=2.0,
    )


@pytest.fixture
def started() -> Iterator[list[LocalExecutor]]:
    """Executors whose thread a test started; stopped at the end whatever happened."""
    running: list[LocalExecutor] = []
    yield running
    for ex in running:
        ex.stop()


def start(ex: LocalExecutor, started: list[LocalExecutor]) -> LocalExecutor:
    ex.start()
    started.append(ex)
    return ex


def attempt_pid(tmp_path: Path, run: str, attempt: int = 1) -> int:
    path = tmp_path / f"state/runs/ns/{run}/attempt-{attempt}/pid.json"
    return int(eventually(lambda: path.exists() and json.loads(path.read_text())["pid"], what=f"{path}"))


def work(tmp_path: Path, name: str = "run-1", component: str = "echo", gate: bool = False, **kw: Any) -> Workload:
    env = {"MARKER": str(tmp_path / f"{name}.marker"), **kw.pop("env", {})}
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


def test_failure_without_retries_reports_exit_code_and_last_line(tmp_path: Path, components: Path) -> None:
    ex = executor(tmp_path, components)
    ex.submit(work(tmp_path, "bad", component="fail", retries=0))
    run = finished(ex, "bad")
    assert (run.phase, run.exit_code) == (Phase.FAILED, 3)
    assert run.message == "ingest x failed: file:///in/a.csv: column 'rating' cannot be read as float"


def test_failed_attempts_are_retried_as_workload_retries_allow(
    tmp_path: Path, components: Path, started: list[LocalExecutor]
) -> None:
    changes: list[RunChange] = []
    ex = start(executor(tmp_path, components, changes=changes), started)
    owner = OwnerRef("loom.dev/v1alpha1", "DataLake", "lake", "uid-1")
    ex.submit(work(tmp_path, "flaky", component="flaky", retries=2, owner=owner, env={"SUCCEED_ON": "3"}))
    run = finished(ex, "flaky")
    assert (run.phase, run.message) == (Phase.SUCCEEDED, "attempt 3 done")
    assert (tmp_path / "flaky.marker").read_text().count("attempt") == 3

    ex.submit(work(tmp_path, "hopeless", component="flaky", retries=1, env={"SUCCEED_ON": "9"}))
    seen_retrying = eventually(lambda: [r for r in ex.runs("ns", "hopeless") if "retrying" in r.message],
                               what="the run to wait for its retry")
    assert seen_retrying[0].phase == Phase.PENDING and "attempt 1 of 2 failed" in seen_retrying[0].message
    run = finished(ex, "hopeless")
    assert (run.phase, run.message) == (Phase.FAILED, "attempt 2 failed: source not reachable")
    assert (tmp_path / "hopeless.marker").read_text().count("attempt") == 2

    # each start of an attempt and the end for good are reported once, with the owner
    eventually(lambda: any(c.workload == "hopeless" and c.run.finished for c in changes), what="the final report")
    flaky = [(c.owner, c.run.phase) for c in changes if c.workload == "flaky"]
    assert flaky[-1] == (owner, Phase.SUCCEEDED)
    assert [p for _, p in flaky].count(Phase.SUCCEEDED) == 1
    assert [c.run.phase for c in changes if c.workload == "hopeless"].count(Phase.FAILED) == 1


def test_a_run_whose_input_is_wrong_is_not_retried(
    tmp_path: Path, components: Path, started: list[LocalExecutor]
) -> None:
    """Exit status 65 (EX_DATAERR) fails the run at once, as a Job's podFailurePolicy does."""
    ex = start(executor(tmp_path, components), started)
    ex.submit(work(tmp_path, "wrong", component="bad-input", retries=3))
    run = finished(ex, "wrong")
    assert (run.phase, run.exit_code, run.message) == (Phase.FAILED, 65, "input error: column 'rating' is a string")
    ex.wake()
    time.sleep(1.0)  # time for the thread to start another attempt, which it must not
    assert (tmp_path / "wrong.marker").read_text().count("attempt") == 1


def test_a_run_that_cannot_start_says_why(tmp_path: Path, components: Path) -> None:
    """An argument over the kernel's limit (E2BIG) fails the run with the real reason, at once."""
    ex = executor(tmp_path, components)
    ex.submit(Workload("huge", "ns", "echo", args=("x" * 200_000,), env={"MARKER": str(tmp_path / "m")}, retries=0))
    run = ex.runs("ns", "huge")[0]
    assert run.phase == Phase.FAILED
    assert run.message.startswith("could not start: ") and "Argument list too long" in run.message


def test_a_large_input_reaches_the_run_as_a_file(tmp_path: Path, components: Path) -> None:
    """What is too large for argv or the environment goes in the workload's files."""
    ex = executor(tmp_path, components)
    ex.submit(Workload("large", "ns", "read-file", env={"SIZE": "200000"}, files={"x": "x" * 200_000}, retries=0))
    run = finished(ex, "large")
    assert (run.phase, run.message) == (Phase.SUCCEEDED, "x has 200000 characters")
    assert (tmp_path / "state/runs/ns/large/files/x").stat().st_size == 200_000


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
    ex.submit(work(tmp_path, "victim", gate=True, retries=0))
    supervisor = attempt_pid(tmp_path, "victim")
    eventually(lambda: ex.runs("ns", "victim")[0].phase == Phase.RUNNING)
    component = int(eventually(lambda: subprocess.run(["pgrep", "-P", str(supervisor)], capture_output=True,
                                                      text=True).stdout.split()[0]))
    os.kill(component, signal.SIGKILL)
    run = finished(ex, "victim")
    assert (run.phase, run.exit_code) == (Phase.FAILED, 128 + signal.SIGKILL)

    ex.submit(work(tmp_path, "orphan", gate=True, retries=0))
    pid = attempt_pid(tmp_path, "orphan")
    eventually(lambda: ex.runs("ns", "orphan")[0].phase == Phase.RUNNING)
    os.killpg(pid, signal.SIGKILL)  # supervisor and component at once: no exit code is ever written
    run = finished(ex, "orphan")
    assert run.phase == Phase.FAILED and run.exit_code is None
    assert "ended without recording an exit code" in run.message


def test_an_orphaned_component_is_ended_before_the_next_attempt(
    tmp_path: Path, components: Path, started: list[LocalExecutor]
) -> None:
    """Only the supervisor dies (kill -9): its component lives on in the process group. The retry
    must not overlap it: the executor ends it first and says so."""
    ex = start(executor(tmp_path, components), started)
    ex.submit(work(tmp_path, "lonely", gate=True, retries=1))
    supervisor = attempt_pid(tmp_path, "lonely")
    component = int(eventually(lambda: subprocess.run(["pgrep", "-P", str(supervisor)], capture_output=True,
                                                      text=True).stdout.split()[0]))
    os.kill(supervisor, signal.SIGKILL)
    attempt_pid(tmp_path, "lonely", attempt=2)
    assert not _alive(component), "the orphan still ran when the next attempt started"
    failed = json.loads((tmp_path / "state/runs/ns/lonely/attempt-1/failed.json").read_text())
    assert f"ended the orphaned component (pid {component})" in failed["message"]
    (tmp_path / "lonely.gate").touch()
    assert finished(ex, "lonely").phase == Phase.SUCCEEDED


def test_delete_stops_a_running_run(tmp_path: Path, components: Path) -> None:
    ex = executor(tmp_path, components)
    ex.submit(work(tmp_path, "doomed", gate=True))
    pid = attempt_pid(tmp_path, "doomed")
    eventually(lambda: ex.runs("ns", "doomed")[0].phase == Phase.RUNNING)
    ex.delete("ns", "doomed")
    assert ex.runs("ns", "doomed") == []
    assert not _alive(pid)


def test_missing_secret_key_starts_nothing(tmp_path: Path, components: Path) -> None:
    ex = executor(tmp_path, components)
    with pytest.raises(LookupError, match="no key 'nope'"):
        ex.submit(work(tmp_path, "nokey", secret_env=(SecretEnv("TOKEN", "creds", "nope"),)))
    assert ex.runs("ns", "nokey") == []


def tick_run(name: str, hour: int, minute: int) -> str:
    return f"{name}-{int(datetime(2026, 1, 1, hour, minute, tzinfo=timezone.utc).timestamp()) // 60}"


def test_schedules_run_on_their_ticks_one_at_a_time(
    tmp_path: Path, components: Path, clock: Clock, started: list[LocalExecutor]
) -> None:
    ex = start(executor(tmp_path, components, clock), started)
    w = work(tmp_path, "sched", gate=True, schedule="*/5 * * * *")
    ex.submit(w)
    assert ex.runs("ns", "sched") == []  # like a new CronJob: the first run is at the next tick
    assert ex.names("ns", {"loom.dev/task": "test"}) == {"sched"}

    clock.now += timedelta(minutes=5)  # 12:05:30, past the 12:05 tick
    ex.wake()
    eventually(lambda: [r.name for r in ex.runs("ns", "sched")] == [tick_run("sched", 12, 5)], what="the 12:05 run")

    clock.now += timedelta(minutes=10)  # two ticks later, the first run still going: no second run
    ex.wake()
    eventually(lambda: (tmp_path / "sched.marker").exists())
    assert len(ex.runs("ns", "sched")) == 1
    (tmp_path / "sched.gate").touch()
    # the missed ticks collapse into one run, for the latest (12:15), once the first has finished
    eventually(lambda: [r.name for r in ex.runs("ns", "sched")] == [tick_run("sched", 12, 15), tick_run("sched", 12, 5)],
               what="the 12:15 run")
    eventually(lambda: (tmp_path / "sched.marker").read_text().count("a b") == 2, what="the second run to start")

    for minute in (20, 25, 30, 35):  # finished runs are pruned to the newest three
        finished(ex, "sched")
        clock.now += timedelta(minutes=5)
        ex.wake()
        eventually(lambda: ex.runs("ns", "sched")[0].name == tick_run("sched", 12, minute), what=f"the 12:{minute} run")
    finished(ex, "sched")
    ex.wake()
    eventually(lambda: len(ex.runs("ns", "sched")) == 3, what="the history to be pruned to three")

    ex.delete("ns", "sched")
    assert ex.runs("ns", "sched") == [] and ex.names("ns", {}) == set()


def test_two_executors_on_one_state_dir_start_each_tick_once(
    tmp_path: Path, components: Path, clock: Clock, started: list[LocalExecutor]
) -> None:
    """Two operator processes (an old one not yet gone, a new one) tick the same schedules: the
    workload's lock lets exactly one of them start the run of a tick."""
    first = start(executor(tmp_path, components, clock), started)
    second = start(executor(tmp_path, components, clock), started)
    w = work(tmp_path, "shared", schedule="* * * * *")
    first.submit(w)
    second.submit(w)
    for minutes in range(1, 6):
        clock.now += timedelta(minutes=1)
        first.wake()
        second.wake()
        eventually(lambda: (tmp_path / "shared.marker").exists()
                   and (tmp_path / "shared.marker").read_text().count("a b") == minutes, what=f"run {minutes}")
        finished(first, "shared")
    assert (tmp_path / "shared.marker").read_text().count("a b") == 5


def test_stop_ends_the_thread_and_leaves_runs_going(tmp_path: Path, components: Path) -> None:
    ex = executor(tmp_path, components)
    ex.start()
    ex.start()  # one thread per executor
    ex.submit(work(tmp_path, "survivor", gate=True))
    eventually(lambda: ex.runs("ns", "survivor")[0].phase == Phase.RUNNING)
    ex.stop()
    ex.stop()
    assert not any(t.name == "loom-local-executor" and t.is_alive() for t in threading.enumerate())
    assert ex.runs("ns", "survivor")[0].phase == Phase.RUNNING
    (tmp_path / "survivor.gate").touch()
    assert finished(ex, "survivor").phase == Phase.SUCCEEDED


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")
