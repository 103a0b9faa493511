"""What a benchmark against the real operator needs: a local control plane of its own with the CRDs
installed, and `loom run` as a separate process on free ports with its state in a directory of the
benchmark's. Both are stopped (the control plane purged) when the `with` block ends."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from loom import devcluster
from loom.devcluster.served import answers, free_port

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ControlPlane:
    cluster: devcluster.Cluster
    kubectl: tuple[str, ...]  # kubectl with this cluster's kubeconfig

    @property
    def kubeconfig(self) -> Path:
        return self.cluster.kubeconfig

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """kubectl, checked: a failure raises with kubectl's own message."""
        proc = subprocess.run([*self.kubectl, *args], input=stdin, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args[:3])} failed: {proc.stderr.strip()[-2000:]}")
        return proc


@contextmanager
def control_plane(state_dir: Path) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + kube-controller-manager under `state_dir`, crds/ applied and Established."""
    cluster = devcluster.up(state_dir)
    binary = str(cluster.bin_dir / "kubectl") if cluster.bin_dir else "kubectl"
    plane = ControlPlane(cluster, (binary, "--kubeconfig", str(cluster.kubeconfig)))
    try:
        plane.run("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
        plane.run("wait", "--for=condition=Established", "--timeout=60s", "-f", str(ROOT / "crds"))
        yield plane
    finally:
        if cluster.state_dir is not None:
            devcluster.down(state_dir, purge=True)


@dataclass(frozen=True)
class OperatorProcess:
    process: subprocess.Popen[bytes]
    metrics_url: str
    liveness_url: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def operator(plane: ControlPlane, state_dir: Path, log_path: Path, args: Sequence[str] = ("--executor", "local"),
             env: Mapping[str, str] | None = None, timeout: float = 120) -> Iterator[OperatorProcess]:
    """`python -m loom.cli run` with LOOM_STATE_DIR=`state_dir`, metrics and liveness on free loopback
    ports, inherited LOOM_* settings dropped (so it runs on its defaults plus `env`); yielded once its
    liveness endpoint answers, terminated (then killed) afterwards."""
    metrics, liveness = free_port(), free_port()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("LOOM_")}
    settings = {"LOOM_STATE_DIR": str(state_dir), "LOOM_METRICS_PORT": str(metrics),
                "LOOM_METRICS_ADDRESS": "127.0.0.1", **(env or {})}
    liveness_url = f"http://127.0.0.1:{liveness}/healthz"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "loom.cli", "run", *args, "--liveness", liveness_url],
            env={**inherited, "KUBECONFIG": str(plane.kubeconfig), **settings},
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        )
    running = OperatorProcess(process, f"http://127.0.0.1:{metrics}/metrics", liveness_url, log_path)
    try:
        deadline = time.monotonic() + timeout
        while not answers(liveness_url):
            if process.poll() is not None:
                raise RuntimeError(f"the operator exited with {process.returncode}:\n{running.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the operator's liveness endpoint did not answer in {timeout:.0f} s")
            time.sleep(0.2)
        yield running
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

