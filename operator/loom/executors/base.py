"""The executor interface: the four operations every executor offers. Services build `Workload`s
(see `loom.domain.workloads`) and read `WorkloadStatus`es; whether a run is a Kubernetes Job or a
local process is the executor's business."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from loom.domain.workloads import Workload, WorkloadStatus


class Executor(Protocol):
    def submit(self, workload: Workload) -> None:
        """Ensure the workload exists: start its run unless one with this name exists, or create or
        update its schedule (and, for the local executor, start a run that is due and not blocked by
        one still running)."""

    def runs(self, namespace: str, name: str) -> list[WorkloadStatus]:
        """The workload's runs that still exist, newest first (empty when it has none)."""

    def names(self, namespace: str, labels: Mapping[str, str]) -> set[str]:
        """Names of the workloads in the namespace that carry all these labels."""

    def delete(self, namespace: str, name: str) -> None:
        """Remove the workload, its schedule and its runs; a run still going is stopped."""
