"""The long-lived parts the operator builds once at start-up from its configuration: the Kubernetes
client of the services and the executor. Handlers get them from here, never from drivers directly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from loom.config import OperatorConfig
from loom.domain.workloads import RunChange
from loom.drivers.kube import Kube, KubeClient, load_config
from loom.executors.base import Executor
from loom.executors.factory import build_executor


@dataclass(frozen=True)
class Runtime:
    kube: Kube
    executor: Executor


def connect(config: OperatorConfig, on_run_change: Callable[[RunChange], None]) -> Runtime:
    """Load the cluster credentials, then build the clients; the executor is not started yet."""
    load_config()
    kube = KubeClient()
    return Runtime(kube, build_executor(config, kube, on_run_change))
