"""Operator settings, read once from the environment (the Helm chart and `loom run` set them)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum


class ExecutorKind(str, Enum):
    KUBERNETES = "kubernetes"
    LOCAL = "local"


@dataclass(frozen=True)
class OperatorConfig:
    metrics_port: int = 8080
    metrics_address: str = "0.0.0.0"
    executor: ExecutorKind = ExecutorKind.KUBERNETES
    field_manager: str = "loom-operator"
    # How long to wait before looking again at a resource that is waiting on another one.
    dependency_retry_seconds: float = 15.0
    # How often every object is reconciled again without a change, to repair drift in the systems
    # Loom drives (e.g. a table dropped behind its back); 0 turns the resync off.
    resync_seconds: float = 300.0
    # Workload images for the kubernetes executor, one per Python environment (see DESIGN: main, serve).
    image_main: str | None = None
    image_serve: str | None = None

    @classmethod
    def from_env(cls) -> "OperatorConfig":
        env = os.environ
        return cls(
            metrics_port=int(env.get("LOOM_METRICS_PORT", cls.metrics_port)),
            metrics_address=env.get("LOOM_METRICS_ADDRESS", cls.metrics_address),
            executor=ExecutorKind(env.get("LOOM_EXECUTOR", cls.executor.value)),
            dependency_retry_seconds=float(env.get("LOOM_DEPENDENCY_RETRY_SECONDS", cls.dependency_retry_seconds)),
            resync_seconds=float(env.get("LOOM_RESYNC_SECONDS", cls.resync_seconds)),
            image_main=env.get("LOOM_IMAGE_MAIN") or None,
            image_serve=env.get("LOOM_IMAGE_SERVE") or None,
        )
