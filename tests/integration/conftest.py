"""Integration fixtures: a real kube-apiserver (session), a fresh namespace per test, the operator
in-process through Kopf's own test runner."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner

from loom import devcluster
from loom.config import ExecutorKind, OperatorConfig
from loom.drivers.kube_http import KubeHttp, from_kubeconfig
from loom.handlers import build_registry
from tests.conftest import ROOT, eventually


@dataclass
class Kubectl:
    """The real kubectl against the test cluster; every call checks its exit code unless told not to."""

    binary: str
    kubeconfig: Path
    namespace: str | None = None

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [self.binary, "--kubeconfig", str(self.kubeconfig)]
        if self.namespace:
            cmd += ["--namespace", self.namespace]
        proc = subprocess.run(cmd + list(args), input=stdin, capture_output=True, text=True, timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc

    def apply(self, manifest: dict[str, Any] | str, check: bool = True) -> subprocess.CompletedProcess[str]:
        text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
        return self.run("apply", "-f", "-", stdin=text, check=check)

    def get(self, kind: str, name: str) -> dict[str, Any]:
        return json.loads(self.run("get", kind, name, "-o", "json").stdout)

    def in_namespace(self, namespace: str) -> "Kubectl":
        return Kubectl(self.binary, self.kubeconfig, namespace)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devcluster.Cluster]:
    """The local control plane (built once per machine, cached), or the user's cluster when opted in."""
    state_dir = tmp_path_factory.mktemp("controlplane")
    started = devcluster.up(state_dir)
    previous = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(started.kubeconfig)
    yield started
    if previous is None:
        os.environ.pop("KUBECONFIG", None)
    else:
        os.environ["KUBECONFIG"] = previous
    if started.state_dir is not None:
        devcluster.down(state_dir, purge=True)


@pytest.fixture
def kube_api(cluster: devcluster.Cluster) -> Iterator[KubeHttp]:
    """Loom's own client of the test cluster, as the operator builds it from a kubeconfig."""
    api = from_kubeconfig([cluster.kubeconfig])
    yield api
    api.close()


@pytest.fixture(scope="session")
def kubectl(cluster: devcluster.Cluster) -> Kubectl:
    binary = str(cluster.bin_dir / "kubectl") if cluster.bin_dir else shutil.which("kubectl")
    assert binary, "kubectl is needed to test against an existing cluster"
    return Kubectl(binary, cluster.kubeconfig)


@pytest.fixture(scope="session")
def crds(kubectl: Kubectl) -> None:
    """The CRDs exactly as committed in crds/, applied with kubectl and Established."""
    kubectl.run("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kubectl.run("wait", "--for=condition=Established", "--timeout=60s", "-f", str(ROOT / "crds"))
    for kind in ("datalake", "featureset", "trainingjob", "inferenceservice"):
        # The OpenAPI document (kubectl explain, strict field validation) is published asynchronously.
        eventually(lambda: kubectl.run("explain", kind, check=False).returncode == 0, what=f"OpenAPI for {kind}")


@pytest.fixture
def namespace(kubectl: Kubectl, crds: None) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    kubectl.run("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def kc(kubectl: Kubectl, namespace: str) -> Kubectl:
    """kubectl bound to this test's namespace."""
    return kubectl.in_namespace(namespace)


@dataclass
class Operator:
    runner: KopfRunner
    metrics_url: str
    liveness_url: str
    config: OperatorConfig


def start_operator(namespace: str, **settings: Any) -> Operator:
    """A Kopf runner with Loom's handlers on fresh ports; enter `.runner` to run it. `settings`
    override fields of the operator's configuration."""
    metrics, liveness = free_port(), free_port()
    config = OperatorConfig(**{
        "metrics_port": metrics,
        "metrics_address": "127.0.0.1",
        "dependency_retry_seconds": 1,
        # The embedded default: workloads run as local processes, their state in this session's temp dir.
        "executor": ExecutorKind.LOCAL,
        "state_dir": _LAKES / "operator-state",
        **settings,
    })
    args = ["run", "--standalone", "--namespace", namespace, f"--liveness=http://127.0.0.1:{liveness}/healthz"]
    return Operator(
        KopfRunner(args, timeout=60, registry=build_registry(config)),
        f"http://127.0.0.1:{metrics}/metrics",
        f"http://127.0.0.1:{liveness}/healthz",
        config,
    )


@pytest.fixture
def operator(namespace: str, cluster: devcluster.Cluster) -> Iterator[Operator]:
    """The Loom operator running in this process, watching only the test's namespace."""
    op = start_operator(namespace)
    with op.runner:
        yield op
    assert op.runner.exception is None, op.runner.output
    assert op.runner.exit_code == 0, op.runner.output


_LAKES = Path(tempfile.mkdtemp(prefix="loom-test-lakes-"))
atexit.register(shutil.rmtree, _LAKES, True)


def sample(name: str) -> dict[str, Any]:
    """A sample manifest; a DataLake gets a catalog of its own in a temp dir, so tests never share
    (or leave behind) tables in the demo's catalog under /var/tmp/loom."""
    obj = yaml.safe_load((ROOT / "samples" / f"{name}.yaml").read_text())
    if obj["kind"] == "DataLake":
        lake = _LAKES / uuid.uuid4().hex[:12]
        obj["spec"]["catalog"].update(uri=f"sqlite:///{lake}/catalog.db", warehouse=f"file://{lake}/warehouse")
    return obj


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), None)


__all__ = ["Kubectl", "Operator", "condition", "eventually", "sample", "start_operator"]
