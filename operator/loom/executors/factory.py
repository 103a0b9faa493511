"""The one executor an operator process uses, chosen by its configuration."""

from __future__ import annotations

from loom.config import ExecutorKind, OperatorConfig
from loom.domain.workloads import PythonEnv
from loom.drivers.kube import Kube
from loom.executors.base import Executor


def build_executor(config: OperatorConfig, kube: Kube) -> Executor:
    """Kubernetes Jobs in a cluster; supervised local processes in the embedded default."""
    if config.executor == ExecutorKind.LOCAL:
        from loom.executors.local import LocalExecutor

        return LocalExecutor.from_env(kube.get_secret)
    from loom.executors.kubernetes import KubernetesExecutor

    images = {env: image for env, image in ((PythonEnv.MAIN, config.image_main), (PythonEnv.SERVE, config.image_serve))
              if image}
    return KubernetesExecutor(images)
