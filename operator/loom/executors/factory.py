"""The one executor an operator process uses, chosen and set up from its configuration alone."""

from __future__ import annotations

from collections.abc import Callable

from loom.config import ExecutorKind, OperatorConfig
from loom.domain.workloads import PythonEnv, RunChange
from loom.drivers.informer import Informer
from loom.drivers.kube import Kube
from loom.executors.base import Executor


def build_executor(config: OperatorConfig, kube: Kube, on_change: Callable[[RunChange], None],
                   informer: Informer | None = None) -> Executor:
    """Kubernetes Jobs in a cluster (their runs are watched elsewhere, so `on_change` is not used, and
    the training runs those watches deliver are read from `informer`); supervised local processes in
    the embedded default, reporting run changes to `on_change`."""
    if config.executor == ExecutorKind.LOCAL:
        from loom.executors.local import LocalExecutor

        interpreters = {PythonEnv.MAIN: config.python_main}
        if config.python_serve:
            interpreters[PythonEnv.SERVE] = config.python_serve
        return LocalExecutor(config.state_dir, interpreters, kube.get_secret, config.components_dir,
                             on_change=on_change)
    from loom.executors.kubernetes import KubernetesExecutor

    images = {env: image for env, image in ((PythonEnv.MAIN, config.image_main), (PythonEnv.SERVE, config.image_serve))
              if image}
    return KubernetesExecutor(images, field_manager=config.field_manager, informer=informer)
