"""The local executor's long-running workloads with real processes: a tiny HTTP server component
(tests/support/components/http_ready), the real supervisor, and fresh executor instances over the same
state dir standing for an operator restart."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from loom.domain.workloads import Phase, PythonEnv, RunChange, Service, Workload, WorkloadStatus
from loom.drivers.kube_http import Credential, KubeHttp, StaticCredential
from loom.executors.kubernetes import KubernetesExecutor
from loom.executors.local import LocalExecutor, expand
from loom.executors.local_services import replaces
from loom.executors.procfs import alive, start_ticks
from tests.conftest import ROOT, eventually

COMPONENTS = ROOT / "tests" / "support" / "components"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def executor(tmp_path: Path, changes: list[RunChange] | None = None) -> LocalExecutor:
    """A new instance over the same state dir each time: what the operator finds after a restart."""
    return LocalExecutor(
        tmp_path / "state", {PythonEnv.MAIN: sys.executable}, lambda ns, name: {}, COMPONENTS,
        lambda: datetime.now(timezone.utc),
        on_change=None if changes is None else changes.append,
        retry_base=timedelta(milliseconds=200), poll_seconds=0.1, stop_grace_seconds=2.0,
    )


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[LocalExecutor]]:
    """Executors whose thread a test started: stopped at the end, and every service deleted."""
    running: list[LocalExecutor] = []
    yield running
    for ex in running:
        ex.stop()
    cleanup = executor(tmp_path)
    for name in cleanup.names("ns", {}):
        cleanup.delete("ns", name)


def start(ex: LocalExecutor, started: list[LocalExecutor]) -> LocalExecutor:
    ex.start()
    started.append(ex)
    return ex


def server(tmp_path: Path, port: int, name: str = "model-a", backoff: tuple[float, float] = (1.0, 4.0),
           **env: str) -> Workload:
    service = Service({"PORT": port}, "PORT", "/ready", backoff_base_seconds=backoff[0], backoff_cap_seconds=backoff[1])
    return Workload(name, "ns", "http_ready", env={"MARKER": str(tmp_path / f"{name}.pids"), **env},
                    labels={"loom.dev/inferenceservice": "recs"}, service=service)


def two_ports(tmp_path: Path, *args: str, **env: str) -> Workload:
    """A server on a port the executor picks, with a second one it is only told of."""
    service = Service({"PORT": 0, "ADMIN_PORT": 0}, "PORT", "/ready", backoff_base_seconds=1.0, backoff_cap_seconds=4.0)
    return Workload("model-a", "ns", "http_ready", args=args, env={"MARKER": str(tmp_path / "model-a.pids"), **env},
                    service=service)


def proc(pid: int, name: str) -> list[str]:
    """The process's argv or environment as it was started (NUL-separated in /proc)."""
    return Path(f"/proc/{pid}/{name}").read_bytes().decode().split("\0")[:-1]


def answers(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as response:
        return int(response.status)


def pids(tmp_path: Path, name: str = "model-a") -> list[int]:
    path = tmp_path / f"{name}.pids"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def is_alive(pid: int) -> bool:
    return alive(pid, start_ticks(pid), (Path("/proc/sys/kernel/random/boot_id")).read_text().strip())


def status(ex: LocalExecutor, name: str = "model-a") -> WorkloadStatus | None:
    runs = ex.runs("ns", name)
    return runs[0] if runs else None


def running(ex: LocalExecutor, name: str = "model-a") -> WorkloadStatus:
    return eventually(lambda: (s := status(ex, name)) is not None and s.phase == Phase.RUNNING and s,
                      timeout=30, what=f"service {name} to be Running")


def test_a_service_is_pending_until_ready_then_running_and_started_once(
    tmp_path: Path, started: list[LocalExecutor]
) -> None:
    changes: list[RunChange] = []
    ex = start(executor(tmp_path, changes), started)
    w = server(tmp_path, free_port(), READY_AFTER="1.5")
    ex.submit(w)
    pending = eventually(lambda: pids(tmp_path) and status(ex), what="the process to start")
    assert pending.phase == Phase.PENDING and "not ready yet" in pending.message
    up = running(ex)
    assert up.message == "ready (0 restarts)" and up.started_at is not None
    for _ in range(3):
        ex.submit(w)  # the same service again starts nothing
    assert status(ex) == up
    assert len(pids(tmp_path)) == 1 and is_alive(pids(tmp_path)[0])
    eventually(lambda: [c.run.phase for c in changes] == [Phase.RUNNING], what="one Running report")


def test_a_killed_service_is_restarted_after_a_backoff_with_the_reason_kept(
    tmp_path: Path, started: list[LocalExecutor]
) -> None:
    ex = start(executor(tmp_path), started)
    # A 3 s backoff: the failed state lasts long enough to be seen also on a loaded machine.
    ex.submit(server(tmp_path, free_port(), backoff=(3.0, 6.0)))
    running(ex)
    first = pids(tmp_path)[0]
    os.kill(first, signal.SIGKILL)
    crashed = eventually(lambda: (s := status(ex)) is not None and s.phase == Phase.FAILED and s,
                         what="the exit to be reported")
    assert crashed.exit_code == 137 and crashed.message.startswith("exited with code 137 (0 restarts so far), restarting at ")
    retry_at = datetime.fromisoformat(crashed.message.split("restarting at ")[1].split(": ")[0])
    assert crashed.finished_at is not None and retry_at - crashed.finished_at >= timedelta(seconds=2.9)

    up = running(ex)
    assert up.message == "ready (1 restarts)"
    assert up.started_at is not None and up.started_at >= retry_at
    assert len(pids(tmp_path)) == 2 and not is_alive(first) and is_alive(pids(tmp_path)[1])


def test_a_crash_looping_service_backs_off_up_to_the_cap_and_recovers(
    tmp_path: Path, started: list[LocalExecutor]
) -> None:
    """Its port is taken (bound, not listening: the probe is refused at once), so each attempt exits at
    once; once the port is free it comes up."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    ex = start(executor(tmp_path), started)
    ex.submit(server(tmp_path, taken.getsockname()[1], backoff=(0.5, 1.0)))
    run_dir = tmp_path / "state/runs/ns/model-a"
    eventually(lambda: (run_dir / "attempt-4/retry.json").exists(), what="four crashes")
    taken.close()

    def delay(n: int) -> float:
        ended = json.loads((run_dir / f"attempt-{n}/exit.json").read_text())["finishedAt"]
        due = json.loads((run_dir / f"attempt-{n}/retry.json").read_text())["at"]
        return (datetime.fromisoformat(due) - datetime.fromisoformat(ended)).total_seconds()

    assert [round(delay(n) * 2) / 2 for n in (1, 2, 3)] == [0.5, 1.0, 1.0]
    crashed = status(ex)
    assert crashed is not None and crashed.exit_code == 1 and "Address already in use" in crashed.message
    up = running(ex)
    assert up.message.startswith("ready (") and is_alive(pids(tmp_path)[-1])


def test_a_changed_service_replaces_the_running_process(tmp_path: Path, started: list[LocalExecutor]) -> None:
    ex = start(executor(tmp_path), started)
    port = free_port()
    ex.submit(server(tmp_path, port, VERSION="1"))
    running(ex)
    old = pids(tmp_path)[0]
    ex.submit(server(tmp_path, port, VERSION="2"))  # returns once the old process is gone
    assert not is_alive(old)
    running(ex)
    assert len(pids(tmp_path)) == 2 and is_alive(pids(tmp_path)[1])
    log = tmp_path / "state/runs/ns/model-a/attempt-1/output.log"
    assert "serving on port" in log.read_text() and "(2)" in log.read_text()


def test_a_zero_port_is_given_a_free_one_that_every_attempt_and_a_restarted_operator_keep(
    tmp_path: Path, started: list[LocalExecutor]
) -> None:
    first = start(executor(tmp_path), started)
    w = two_ports(tmp_path, "--port=$(PORT)", "$$(PORT)", "$(NO_SUCH_VARIABLE)")
    first.submit(w)
    given = status(first)
    assert given is not None and given.phase == Phase.PENDING
    ports = dict(given.ports)
    assert set(ports) == {"PORT", "ADMIN_PORT"} and 0 not in ports.values() and ports["PORT"] != ports["ADMIN_PORT"]
    recorded = json.loads((tmp_path / "state/runs/ns/model-a/run.json").read_text())["workload"]["service"]["ports"]
    assert recorded == ports

    up = running(first)  # its probe answers on the port given, so the process listens there
    assert up.ports == ports and answers(ports["PORT"]) == 200
    pid = pids(tmp_path)[0]
    assert proc(pid, "cmdline")[-3:] == [f"--port={ports['PORT']}", "$(PORT)", "$(NO_SUCH_VARIABLE)"]
    assert f"ADMIN_PORT={ports['ADMIN_PORT']}" in proc(pid, "environ")
    for _ in range(3):
        first.submit(w)  # still with its 0s: the same service
    assert pids(tmp_path) == [pid] and status(first) == up

    os.kill(pid, signal.SIGKILL)  # the next attempt gets the same ports
    eventually(lambda: len(pids(tmp_path)) == 2, what="the restart")
    again = running(first)
    assert again.message == "ready (1 restarts)" and again.ports == ports and answers(ports["PORT"]) == 200
    first.stop()

    restarted = start(executor(tmp_path), started)
    restarted.submit(w)
    assert running(restarted).ports == ports and len(pids(tmp_path)) == 2


def test_a_changed_service_keeps_the_ports_it_was_given_unless_it_names_another(
    tmp_path: Path, started: list[LocalExecutor]
) -> None:
    ex = start(executor(tmp_path), started)
    ex.submit(two_ports(tmp_path, VERSION="1"))
    ports = dict(running(ex).ports)
    ex.submit(two_ports(tmp_path, VERSION="2"))
    assert running(ex).ports == ports and len(pids(tmp_path)) == 2

    other = free_port()
    w = two_ports(tmp_path, VERSION="2")
    assert w.service is not None
    ex.submit(replace(w, service=replace(w.service, ports={"PORT": other, "ADMIN_PORT": 0})))
    up = running(ex)
    assert up.ports == {"PORT": other, "ADMIN_PORT": ports["ADMIN_PORT"]} and len(pids(tmp_path)) == 3
    assert answers(other) == 200


def test_a_service_whose_files_alone_changed_keeps_its_process_and_reads_the_new_files(
    tmp_path: Path, started: list[LocalExecutor]
) -> None:
    ex = start(executor(tmp_path), started)
    w = replace(two_ports(tmp_path), files={"table.json": '{"v": 1}', "old.txt": "gone soon"})
    ex.submit(w)
    up = running(ex)
    pid = pids(tmp_path)[0]
    run_dir = tmp_path / "state/runs/ns/model-a"
    files = run_dir / "files"

    ex.submit(replace(w, files={"table.json": '{"v": 2}', "new.txt": "added"}))
    assert sorted(p.name for p in files.iterdir()) == ["new.txt", "table.json"]
    assert (files / "table.json").read_text() == '{"v": 2}' and (files / "new.txt").read_text() == "added"
    assert json.loads((run_dir / "run.json").read_text())["workload"]["files"] == {
        "table.json": '{"v": 2}', "new.txt": "added"}
    assert f"LOOM_WORKLOAD_FILES={files}" in proc(pid, "environ")
    assert pids(tmp_path) == [pid] and is_alive(pid) and not (run_dir / "attempt-2").exists()
    assert status(ex) == up and up.message == "ready (0 restarts)"

    ex.submit(replace(w, files={"table.json": '{"v": 2}', "new.txt": "added"}, env={**w.env, "VERSION": "2"}))
    assert not is_alive(pid)  # anything else changed: replaced as before
    running(ex)
    assert len(pids(tmp_path)) == 2 and (files / "table.json").read_text() == '{"v": 2}'


def test_only_a_change_the_running_process_cannot_take_in_place_replaces_it() -> None:
    w = Workload("model-a", "ns", "http_ready", env={"A": "1"}, files={"t": "1"},
                 service=Service({"PORT": 0, "ADMIN_PORT": 9001}, "PORT"))
    assert w.service is not None
    run = replace(w, service=replace(w.service, ports={"PORT": 41234, "ADMIN_PORT": 9001}))
    assert not replaces(run, w)
    assert not replaces(run, replace(w, files={"t": "2", "u": "3"}))
    assert replaces(run, replace(w, files={}))  # its environment loses $LOOM_WORKLOAD_FILES
    assert replaces(replace(run, files={}), replace(w, files={"t": "1"}))
    assert replaces(run, replace(w, env={"A": "2"}, files={"t": "2"}))
    assert replaces(run, replace(w, service=replace(w.service, ports={"PORT": 41235, "ADMIN_PORT": 9001})))
    assert not replaces(run, replace(w, service=replace(w.service, ports={"PORT": 0, "ADMIN_PORT": 0})))  # any port
    assert replaces(run, replace(w, service=replace(w.service, ports={"PORT": 0, "ADMIN_PORT": 9001, "X": 0})))


@pytest.mark.parametrize(("arg", "expanded"), [
    ("--port=$(PORT)", "--port=8080"),
    ("$(PORT)$(HOST)", "8080127.0.0.1"),
    ("$$(PORT)", "$(PORT)"),
    ("$$$(PORT)", "$8080"),
    ("cost: $$5", "cost: $5"),
    ("$(MISSING) and $(PORT)", "$(MISSING) and 8080"),
    ("$PORT ${PORT} $(PORT", "$PORT ${PORT} $(PORT"),
    ("$()", "$()"),
    ("$(EMPTY)x", "x"),
    ("no references", "no references"),
])
def test_arguments_expand_environment_references_as_kubernetes_does(arg: str, expanded: str) -> None:
    assert expand(arg, {"PORT": "8080", "HOST": "127.0.0.1", "EMPTY": ""}) == expanded


def test_services_that_are_not_ready_are_probed_at_once_not_one_after_another(
    tmp_path: Path, started: list[LocalExecutor]
) -> None:
    """Four services whose probe port takes connections and never answers (each probe waits out its
    second): one after another a pass would take four seconds, so each would be probed once in three."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    held: list[socket.socket] = []  # kept open unanswered: a closed one would fail the probe at once

    def take() -> None:
        while True:
            try:
                held.append(silent.accept()[0])
            except OSError:  # closed at the end
                return

    threading.Thread(target=take, daemon=True).start()
    ex = start(executor(tmp_path), started)
    names = [f"model-{i}" for i in range(4)]
    for name in names:
        ex.submit(Workload(name, "ns", "http_ready", env={"MARKER": str(tmp_path / f"{name}.pids")},
                           service=Service({"PORT": 0, "PROBE": silent.getsockname()[1]}, "PROBE")))
    eventually(lambda: all(pids(tmp_path, name) for name in names), what="four processes")
    eventually(lambda: len(held) >= 4, what="the first probes")
    before = len(held)
    time.sleep(3.0)
    probed = len(held) - before
    silent.close()
    for conn in held:
        conn.close()
    assert probed >= 8, f"{probed} probes in 3s"
    assert all((s := status(ex, name)) is not None and s.phase == Phase.PENDING for name in names)


def test_delete_stops_the_service_and_leaves_no_state(tmp_path: Path, started: list[LocalExecutor]) -> None:
    ex = start(executor(tmp_path), started)
    ex.submit(server(tmp_path, free_port()))
    running(ex)
    assert ex.names("ns", {"loom.dev/inferenceservice": "recs"}) == {"model-a"}
    ex.delete("ns", "model-a")
    assert not is_alive(pids(tmp_path)[0])
    assert ex.runs("ns", "model-a") == [] and ex.names("ns", {}) == set()
    assert not (tmp_path / "state/runs/ns/model-a").exists()
    assert not (tmp_path / "state/locks/ns/model-a.lock").exists()


def test_an_operator_restart_adopts_the_running_service(tmp_path: Path, started: list[LocalExecutor]) -> None:
    first = start(executor(tmp_path), started)
    w = server(tmp_path, free_port())
    first.submit(w)
    running(first)
    first.stop()

    again = start(executor(tmp_path), started)
    again.submit(w)
    up = running(again)
    assert up.message == "ready (0 restarts)"
    assert len(pids(tmp_path)) == 1 and is_alive(pids(tmp_path)[0])


def test_a_service_whose_supervisor_died_is_ended_and_started_once_again(
    tmp_path: Path, started: list[LocalExecutor]
) -> None:
    """The orphan rule: the component left by a killed supervisor is ended before the restart, so two
    processes never serve (nor fight over the port) at once."""
    ex = start(executor(tmp_path), started)
    ex.submit(server(tmp_path, free_port()))
    running(ex)
    orphan = pids(tmp_path)[0]
    supervisor = json.loads((tmp_path / "state/runs/ns/model-a/attempt-1/pid.json").read_text())["pid"]
    os.kill(supervisor, signal.SIGKILL)
    eventually(lambda: len(pids(tmp_path)) == 2, what="the restart")
    assert not is_alive(orphan)
    up = running(ex)
    assert up.message == "ready (1 restarts)" and is_alive(pids(tmp_path)[1])


def test_a_service_names_a_port_it_listens_on_and_has_no_schedule(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ready_port 'HTTP'"):
        Service({"PORT": 8080}, "HTTP")
    for port in (-1, 65536):
        with pytest.raises(ValueError, match=r"not in 0\.\.65535"):
            Service({"PORT": port}, "PORT")
    with pytest.raises(ValueError, match="neither a schedule"):
        Workload("x", "ns", "http_ready", schedule="* * * * *", service=Service({"PORT": 8080}, "PORT"))


def test_the_kubernetes_executor_refuses_a_service_before_calling_the_api_server(tmp_path: Path) -> None:
    """In a cluster serving goes through the serving builders; an API server that cannot be reached
    shows that nothing was attempted."""
    api = KubeHttp("https://127.0.0.1:1", StaticCredential(Credential(token="t")))
    with pytest.raises(NotImplementedError, match="serving builders"):
        KubernetesExecutor({PythonEnv.MAIN: "img"}, api).submit(server(tmp_path, 8080))
