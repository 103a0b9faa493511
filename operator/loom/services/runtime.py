"""The long-lived parts the operator builds once at start-up from its configuration: the Kubernetes
client of the services (its reads of watched objects served by the informer), the executor, and the
informer the watches fill. Handlers get them from here, never from drivers directly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import kopf

from loom.config import OperatorConfig
from loom.domain.workloads import WORKLOAD_LABEL, RunChange
from loom.drivers import host
from loom.drivers.informer import Informer
from loom.drivers.kube import Kube, KubeClient, load_config
from loom.drivers.kube_session import bounded_session
from loom.executors.base import Executor
from loom.executors.factory import build_executor
from loom.services.watch_cache import CachedReads


@dataclass(frozen=True)
class Runtime:
    kube: Kube
    executor: Executor
    informer: Informer


def connect(config: OperatorConfig, on_run_change: Callable[[RunChange], None]) -> Runtime:
    """Load the cluster credentials, then build the clients; the executor is not started yet."""
    load_config()
    kube = KubeClient()
    # Indexed by the workload label: the children of one workload are found without a LIST.
    informer = Informer(index_label=WORKLOAD_LABEL)
    return Runtime(CachedReads(kube, informer), build_executor(config, kube, on_run_change, informer), informer)


def api_session(info: kopf.ConnectionInfo, config: OperatorConfig) -> kopf.AiohttpSession:
    """The session Kopf's watches and patches use: these credentials, a bounded pool."""
    return bounded_session(info, config.api_connections)


def start_driver_helper(config: OperatorConfig) -> bool:
    """The heavy driven-system libraries in their own process (drivers/host.py), if configured."""
    if config.driver_helper:
        host.start(config.driver_helper_idle_seconds)
    return config.driver_helper


def stop_driver_helper() -> None:
    host.stop()
