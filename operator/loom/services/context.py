"""What a service gets besides the typed spec: the object's identity and current status (as Kopf
delivered it, never re-read), the time of this reconcile, and the drivers set up at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loom.config import OperatorConfig
from loom.domain.workloads import OwnerRef
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
    now: datetime
    status: Mapping[str, Any] = field(default_factory=dict)
    api_version: str = ""
    kind: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def owner(self) -> OwnerRef:
        """This object as the owner of its children (garbage-collected with it)."""
        return OwnerRef(self.api_version, self.kind, self.name, self.uid)
