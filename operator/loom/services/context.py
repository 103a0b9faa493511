"""What a service gets besides the typed spec: identity of the object and the drivers to use."""

from __future__ import annotations

from dataclasses import dataclass

from loom.config import OperatorConfig
from loom.drivers.kube import Kube
from loom.executors.base import Executor


@dataclass(frozen=True)
class ReconcileContext:
    namespace: str
    name: str
    uid: str
    generation: int | None
    kube: Kube
    config: OperatorConfig
    executor: Executor
