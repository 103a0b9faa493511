"""Kubeflow's training CRDs in the test control plane: minimal TrainJob, ClusterTrainingRuntime and
PyTorchJob definitions from tests/crds/kubeflow/ (no Kubeflow controller: tests play it by patching
status). The control plane has none of them by default; a test that needs them asks for
`kubeflow_crds`, one that needs them absent for `no_kubeflow_crds` (the session's plane is shared, so
both say what they need instead of relying on the order tests run in)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ROOT, eventually
from tests.integration.conftest import Kubectl

CRDS = ROOT / "tests" / "crds" / "kubeflow"
GROUP_VERSIONS = ("trainer.kubeflow.org/v1alpha1", "kubeflow.org/v1")


def _served(kubectl: Kubectl, group_version: str) -> bool:
    return kubectl.run("get", "--raw", f"/apis/{group_version}", check=False).returncode == 0


def install(kubectl: Kubectl) -> None:
    kubectl.run("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    kubectl.run("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRDS))
    for group_version in GROUP_VERSIONS:
        eventually(lambda gv=group_version: _served(kubectl, gv), what=f"{group_version} to be served")


def remove(kubectl: Kubectl) -> None:
    kubectl.run("delete", "--ignore-not-found", "--wait=true", "--timeout=60s", "-f", str(CRDS))
    for group_version in GROUP_VERSIONS:
        eventually(lambda gv=group_version: not _served(kubectl, gv), what=f"{group_version} to be gone")


@pytest.fixture
def kubeflow_crds(kubectl: Kubectl) -> Iterator[None]:
    """TrainJob, ClusterTrainingRuntime and PyTorchJob exist; removed again after the module's tests
    by `kubeflow_cleanup`, so other tests find the default control plane."""
    install(kubectl)
    yield


@pytest.fixture
def no_kubeflow_crds(kubectl: Kubectl) -> None:
    """The default control plane: no Kubeflow kind at all."""
    remove(kubectl)


@pytest.fixture(scope="module")
def kubeflow_cleanup(kubectl: Kubectl) -> Iterator[None]:
    yield
    remove(kubectl)


def patch_status(kc: Kubectl, resource: str, status: dict[str, Any]) -> None:
    """Play the Kubeflow controller: merge `status` into the object's status subresource."""
    kc.run("patch", resource, "--subresource=status", "--type=merge", "-p", json.dumps({"status": status}))


def condition(type_: str, reason: str, message: str, at: str, status: str = "True") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": at, "lastUpdateTime": at}
