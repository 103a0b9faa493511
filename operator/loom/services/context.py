"""What a service gets besides the typed spec: identity of the object and the drivers to use."""

from __future__ import annotations

from dataclasses import dataclass

from loom.config import OperatorConfig
from loom.drivers.kube import Kube


@dataclass(frozen=True)
class ReconcileContext:
    namespace: str
    name: str
    generation: int | None
    kube: Kube
    config: OperatorConfig
