"""Training runs of the local executor with real processes: the real launcher, real torchrun and real
torch.distributed (gloo on CPU) running a tiny component from a temporary components dir."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from loom.domain.training import NodeShape, Replicas, Training
from loom.domain.workloads import EXIT_INPUT_ERROR, Phase, PythonEnv, RunChange, Workload, WorkloadStatus
from loom.executors.local import LocalExecutor
from loom.executors.procfs import group_members, marked
from tests.conftest import eventually

# Every rank: joins the process group, says it started (per attempt), waits for $GATE when set, fails
# with $FAIL_CODE when it is $FAIL_RANK, else all_reduces its rank + 1 and writes what it saw to $OUT.
COMPONENT = """
    import json, os, pathlib, sys, time
    import torch
    import torch.distributed as dist

    out = pathlib.Path(os.environ["OUT"])
    attempt = pathlib.Path(os.environ["LOOM_ATTEMPT"]).name
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    (out / f"started-{attempt}-{rank}").touch()
    if str(rank) == os.environ.get("FAIL_RANK"):
        print(f"rank {rank}: the input is wrong", file=sys.stderr)
        sys.exit(int(os.environ["FAIL_CODE"]))
    gate = os.environ.get("GATE")
    while gate and not pathlib.Path(gate).exists():
        time.sleep(0.05)
    total = torch.tensor([float(rank + 1)])
    dist.all_reduce(total)
    names = ["RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "NODE_SHAPE", "TOKEN",
             "LOOM_WORKLOAD_FILES"] + [k for k in os.environ if k.startswith("PET_")]
    seen = {"rank": rank, "world": world, "sum": total.item(), "args": sys.argv[1:],
            "env": {k: os.environ.get(k) for k in names}}
    (out / f"rank-{rank}.json").write_text(json.dumps(seen))
    dist.destroy_process_group()
    print(f"rank {rank} of {world}: sum {total.item():g}")
"""


@pytest.fixture
def components(tmp_path: Path) -> Iterator[Path]:
    base = tmp_path / "components"
    (base / "dist").mkdir(parents=True)
    (base / "dist" / "__main__.py").write_text(textwrap.dedent(COMPONENT))
    yield base
    ex = executor(tmp_path, base)  # a failed test must not leave gated runs waiting forever
    for name in ex.names("ns", {}):
        ex.delete("ns", name)


@pytest.fixture
def started() -> Iterator[list[LocalExecutor]]:
    running: list[LocalExecutor] = []
    yield running
    for ex in running:
        ex.stop()


def executor(tmp_path: Path, components: Path, changes: list[RunChange] | None = None) -> LocalExecutor:
    """A new instance over the same state dir each time: what the operator finds after a restart."""
    return LocalExecutor(
        tmp_path / "state", {PythonEnv.MAIN: sys.executable}, lambda ns, name: {}, components,
        on_change=None if changes is None else changes.append,
        retry_base=timedelta(milliseconds=200), poll_seconds=0.1, stop_grace_seconds=5.0,
    )


def start(ex: LocalExecutor, started: list[LocalExecutor]) -> LocalExecutor:
    ex.start()
    started.append(ex)
    return ex


def training(tmp_path: Path, name: str, nodes: int = 2, procs: int = 1, gate: bool = False,
             env: dict[str, str] | None = None, **kw: Any) -> Workload:
    out = tmp_path / f"{name}.out"
    out.mkdir(exist_ok=True)
    variables = {"OUT": str(out), **(env or {})}
    if gate:
        variables["GATE"] = str(tmp_path / f"{name}.gate")
    return Workload(name, "ns", "dist", args=("--epochs", "1"), env=variables, labels={"loom.dev/task": "train"},
                    training=Training(num_nodes=nodes, num_proc_per_node=procs, **kw))


def attempt_dir(tmp_path: Path, run: str, attempt: int) -> Path:
    return tmp_path / "state" / "runs" / "ns" / run / f"attempt-{attempt}"


def processes(attempt: Path) -> list[int]:
    """The attempt's live processes: its supervisor's process group and the workers that left it."""
    pid_file = attempt / "pid.json"
    if not pid_file.exists():
        return []
    pid = json.loads(pid_file.read_text())
    return sorted(set(group_members(pid["pid"], pid["startTicks"], pid["bootId"])) | set(marked(str(attempt))))


def started_ranks(tmp_path: Path, name: str, attempt: int, ranks: int) -> None:
    out = tmp_path / f"{name}.out"
    eventually(lambda: all((out / f"started-attempt-{attempt}-{r}").exists() for r in range(ranks)),
               timeout=60, what=f"{ranks} ranks of attempt {attempt} to start")


def gone(attempt: Path) -> None:
    """No process of the attempt is left; one that reported its end may take a moment to exit."""
    eventually(lambda: processes(attempt) == [], timeout=10, what=f"the processes of {attempt.name} to exit")


def finished(ex: LocalExecutor, name: str, timeout: float = 60) -> WorkloadStatus:
    def check() -> WorkloadStatus | None:
        runs = ex.runs("ns", name)
        return runs[0] if runs and runs[0].finished else None

    return eventually(check, timeout=timeout, what=f"run {name} to finish")


def seen(tmp_path: Path, name: str, rank: int) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((tmp_path / f"{name}.out" / f"rank-{rank}.json").read_text())
    return result


def test_two_nodes_run_torch_distributed_with_the_torch_runtime_environment(tmp_path: Path, components: Path) -> None:
    ex = executor(tmp_path, components)
    w = training(tmp_path, "two-nodes", env={"TOKEN": "from-workload"},
                 node=NodeShape(env={"NODE_SHAPE": "cpu", "TOKEN": "from-shape"}))
    w = replace(w, files={"request.json": "{}"})
    ex.submit(w)
    ex.submit(w)  # a name stands for one run
    run = finished(ex, w.name)
    assert (run.phase, run.exit_code) == (Phase.SUCCEEDED, 0), run.message
    assert run.replicas == Replicas(active=0, succeeded=2, failed=0)
    assert run.message.startswith("rank ") and run.message.endswith("of 2: sum 3")
    ranks = [seen(tmp_path, w.name, r) for r in (0, 1)]
    assert [(r["rank"], r["world"], r["sum"]) for r in ranks] == [(0, 2, 3.0), (1, 2, 3.0)]
    for r in ranks:
        env = r["env"]
        assert r["args"] == ["--epochs", "1"]
        assert (env["PET_NNODES"], env["PET_NPROC_PER_NODE"], env["PET_NODE_RANK"]) == ("2", "1", str(r["rank"]))
        assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"]) == (str(r["rank"]), "2", "0")
        assert env["PET_MASTER_ADDR"] == env["MASTER_ADDR"] == "127.0.0.1"
        assert int(env["PET_MASTER_PORT"]) > 0 and env["MASTER_PORT"]
        assert (env["NODE_SHAPE"], env["TOKEN"]) == ("cpu", "from-workload")
        assert env["LOOM_WORKLOAD_FILES"] == str(tmp_path / "state/runs/ns/two-nodes/files")
    gone(attempt_dir(tmp_path, w.name, 1))


def test_one_node_of_two_processes(tmp_path: Path, components: Path) -> None:
    ex = executor(tmp_path, components)
    w = training(tmp_path, "one-node", nodes=1, procs=2)
    ex.submit(w)
    run = finished(ex, w.name)
    assert run.phase == Phase.SUCCEEDED, run.message
    assert run.replicas == Replicas(succeeded=1)
    ranks = [seen(tmp_path, w.name, r) for r in (0, 1)]
    assert [(r["world"], r["env"]["LOCAL_RANK"], r["env"]["PET_NODE_RANK"]) for r in ranks] == [
        (2, "0", "0"), (2, "1", "0")]


def test_a_failed_node_fails_the_run_with_its_code_and_an_input_error_is_not_retried(
    tmp_path: Path, components: Path, started: list[LocalExecutor]
) -> None:
    ex = start(executor(tmp_path, components), started)
    w = training(tmp_path, "bad-input", gate=True, backoff_limit=2,
                 env={"FAIL_RANK": "1", "FAIL_CODE": str(EXIT_INPUT_ERROR)})
    ex.submit(w)
    run = finished(ex, w.name)
    assert (run.phase, run.exit_code) == (Phase.FAILED, EXIT_INPUT_ERROR)
    assert run.message == f"training failed: rank 1 exited with code {EXIT_INPUT_ERROR}"
    assert run.replicas is not None and run.replicas.active == 0 and run.replicas.failed >= 1
    gone(attempt_dir(tmp_path, w.name, 1))  # rank 0 waited at its gate: ended
    ex.wake()
    assert not attempt_dir(tmp_path, w.name, 2).exists()


def test_suspend_ends_the_processes_and_resume_runs_again(
    tmp_path: Path, components: Path, started: list[LocalExecutor]
) -> None:
    changes: list[RunChange] = []
    ex = start(executor(tmp_path, components, changes), started)
    w = training(tmp_path, "pausable", gate=True, backoff_limit=0)
    ex.submit(w)
    started_ranks(tmp_path, w.name, 1, 2)
    eventually(lambda: ex.runs("ns", w.name)[0].replicas == Replicas(active=2), what="two active nodes")
    first = attempt_dir(tmp_path, w.name, 1)
    assert processes(first)

    assert w.training is not None
    ex.submit(replace(w, training=replace(w.training, suspend=True)))
    assert processes(first) == []
    (run,) = ex.runs("ns", w.name)
    assert run.phase == Phase.SUSPENDED and "suspended" in run.message
    assert run.replicas == Replicas()
    eventually(lambda: any(c.run.phase == Phase.SUSPENDED for c in changes), what="the suspend to be reported")

    (tmp_path / f"{w.name}.gate").touch()
    ex.submit(w)  # resume: a new attempt, and the suspended one is no failure (backoffLimit 0)
    run = finished(ex, w.name)
    assert run.phase == Phase.SUCCEEDED, run.message
    assert (tmp_path / f"{w.name}.out" / "started-attempt-2-1").exists()
    # the executor's thread reports the end after runs() shows it
    eventually(lambda: any(c.run.phase == Phase.SUCCEEDED for c in changes), what="the end to be reported")
    assert [c.run.phase for c in changes if c.run.phase != Phase.RUNNING] == [Phase.SUSPENDED, Phase.SUCCEEDED]
    assert sum(c.run.phase == Phase.RUNNING for c in changes) == 2


def test_a_run_created_suspended_starts_nothing_until_resumed(tmp_path: Path, components: Path) -> None:
    ex = executor(tmp_path, components)
    w = training(tmp_path, "held", nodes=1, suspend=True)
    ex.submit(w)
    (run,) = ex.runs("ns", w.name)
    assert run.phase == Phase.SUSPENDED and not attempt_dir(tmp_path, w.name, 1).exists()
    assert ex.names("ns", {"loom.dev/task": "train"}) == {w.name}
    ex.delete("ns", w.name)
    assert ex.runs("ns", w.name) == []


def test_an_operator_restart_never_runs_two_attempts_at_once(
    tmp_path: Path, components: Path, started: list[LocalExecutor]
) -> None:
    """The supervisor is killed (kill -9): its launcher, torchrun and workers live on. A new executor
    on the same state dir ends them and records the attempt failed before it retries."""
    first = start(executor(tmp_path, components), started)
    w = training(tmp_path, "restarted", gate=True, backoff_limit=1)
    first.submit(w)
    started_ranks(tmp_path, w.name, 1, 2)
    first.stop()
    overlaps: list[tuple[int, ...]] = []
    watching = threading.Event()

    def watch() -> None:
        while not watching.is_set():
            live = tuple(n for n in (1, 2) if processes(attempt_dir(tmp_path, w.name, n)))
            if len(live) > 1:
                overlaps.append(live)
            watching.wait(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        supervisor = json.loads((attempt_dir(tmp_path, w.name, 1) / "pid.json").read_text())["pid"]
        orphans = processes(attempt_dir(tmp_path, w.name, 1))
        os.kill(supervisor, signal.SIGKILL)
        assert len(orphans) >= 6  # supervisor, launcher, 2 torchrun, 2 workers
        start(executor(tmp_path, components), started)
        started_ranks(tmp_path, w.name, 2, 2)
        (tmp_path / f"{w.name}.gate").touch()
        run = finished(started[-1], w.name)
    finally:
        watching.set()
        watcher.join()
    assert overlaps == []
    assert run.phase == Phase.SUCCEEDED, run.message
    failed = json.loads((attempt_dir(tmp_path, w.name, 1) / "failed.json").read_text())
    assert "supervisor died; ended the orphaned component" in failed["message"]


def test_a_run_past_its_active_deadline_fails(
    tmp_path: Path, components: Path, started: list[LocalExecutor]
) -> None:
    ex = start(executor(tmp_path, components), started)
    w = training(tmp_path, "late", nodes=1, gate=True, backoff_limit=3, active_deadline_seconds=3)
    ex.submit(w)
    run = finished(ex, w.name)
    assert run.phase == Phase.FAILED
    assert run.message == "the run exceeded its active deadline of 3s and was ended"
    gone(attempt_dir(tmp_path, w.name, 1))
    assert not attempt_dir(tmp_path, w.name, 2).exists()
