"""Pod-spec pieces a node shape (GPU profile or plain CPU/memory) gives every pod Loom builds, for
training (TrainJob, PyTorchJob) and serving (Seldon Server, KServe predictor) alike."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from loom.domain.training import NodeShape
from loom.domain.workloads import SecretEnv


def resources(node: NodeShape) -> dict[str, dict[str, str]]:
    """A container's `resources`: only the parts the shape sets."""
    found = {}
    if node.requests:
        found["requests"] = dict(node.requests)
    if node.limits:
        found["limits"] = dict(node.limits)
    return found


def placement(node: NodeShape) -> dict[str, Any]:
    """A pod's `nodeSelector` and `tolerations`, where the shape has them."""
    found: dict[str, Any] = {}
    if node.node_selector:
        found["nodeSelector"] = dict(node.node_selector)
    if node.tolerations:
        found["tolerations"] = [t.to_wire() for t in node.tolerations]
    return found


def secret_env(variables: Iterable[SecretEnv]) -> list[dict[str, Any]]:
    """Container env entries whose values stay in their Secrets (secretKeyRef)."""
    return [{"name": s.name, "valueFrom": {"secretKeyRef": {"name": s.secret, "key": s.key}}} for s in variables]
