"""The embedded control plane end to end: real etcd, kube-apiserver and kube-controller-manager.

The first run builds the binaries into the cache (minutes); later runs start a cluster in seconds.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from loom.devcluster import Cluster, down, status, up, use_existing_cluster

pytestmark = pytest.mark.integration

GC_TIMEOUT = 60.0
local_only = pytest.mark.skipif(use_existing_cluster(), reason="checks the processes loom starts itself")


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("devcluster")


@pytest.fixture(scope="module")
def cluster(state_dir: Path) -> Iterator[Cluster]:
    try:
        yield up(state_dir)
    finally:
        down(state_dir, purge=True)


@pytest.fixture(scope="module")
def core(cluster: Cluster) -> Iterator[client.CoreV1Api]:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        yield client.CoreV1Api(api)
    finally:
        api.close()


@pytest.fixture
def namespace(core: client.CoreV1Api) -> Iterator[str]:
    name = f"devcluster-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        core.delete_namespace(name)


def _running(pid: int) -> bool:
    """Alive and not a zombie (the components are re-parented, and PID 1 may not reap them)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_cached_kubectl_reaches_readyz(cluster: Cluster) -> None:
    assert cluster.bin_dir is not None
    kubectl = [str(cluster.bin_dir / "kubectl"), "--kubeconfig", str(cluster.kubeconfig)]
    result = subprocess.run([*kubectl, "get", "--raw", "/readyz"], capture_output=True, text=True, timeout=30,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_garbage_collector_removes_dependents(core: client.CoreV1Api, namespace: str) -> None:
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"), data={"role": "owner"}))
    reference = client.V1OwnerReference(api_version="v1", kind="ConfigMap", name="owner",
                                        uid=owner.metadata.uid)
    dependent = client.V1ObjectMeta(name="dependent", owner_references=[reference])
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=dependent))

    core.delete_namespaced_config_map("owner", namespace)

    deadline = time.monotonic() + GC_TIMEOUT
    while time.monotonic() < deadline:
        try:
            core.read_namespaced_config_map("dependent", namespace)
        except ApiException as exc:
            assert exc.status == 404, exc
            return
        time.sleep(0.5)
    pytest.fail(f"the garbage collector left the dependent ConfigMap for {GC_TIMEOUT:.0f} s")


@local_only
def test_up_is_idempotent(cluster: Cluster, state_dir: Path) -> None:
    before = status(state_dir)
    assert before is not None and before.healthy
    again = up(state_dir)
    after = status(state_dir)
    assert again == cluster
    assert after is not None and after.pids == before.pids


@local_only
def test_down_stops_everything(cluster: Cluster, state_dir: Path) -> None:
    recorded = status(state_dir)
    assert recorded is not None
    down(state_dir)
    assert status(state_dir) is None
    assert not [name for name, pid in recorded.pids.items() if _running(pid)]
    assert (state_dir / "etcd").is_dir(), "down() without purge keeps the etcd data"
    down(state_dir)  # idempotent
