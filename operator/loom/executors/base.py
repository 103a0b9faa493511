"""The executor interface: the operations every executor offers. Services build `Workload`s (see
`loom.domain.workloads`) and read `WorkloadStatus`es; whether a run is a Kubernetes Job or a local
process is the executor's business."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from loom.domain.workloads import Workload, WorkloadStatus


class Executor(Protocol):
    def start(self) -> None:
        """Begin what runs workloads without being asked: for the local executor the thread that starts
        scheduled runs and retries and reports run changes; nothing for Kubernetes (its controllers)."""

    def stop(self) -> None:
        """End what `start` began and wait for it; runs that are going keep going."""

    def submit(self, workload: Workload) -> None:
        """Ensure the workload exists: start its run unless one with this name exists (a failed attempt
        is retried by the executor up to `Workload.retries` times), or create or update its schedule
        (whose runs start at its ticks, never two at once). Raises LookupError for what a run could not
        start without (an image, an interpreter, a Secret key)."""

    def runs(self, namespace: str, name: str) -> list[WorkloadStatus]:
        """The workload's runs that still exist, newest first (empty when it has none); a run waiting
        to retry a failed attempt is not finished."""

    def names(self, namespace: str, labels: Mapping[str, str]) -> set[str]:
        """Names of the workloads in the namespace that carry all these labels."""

    def delete(self, namespace: str, name: str) -> None:
        """Remove the workload, its schedule and its runs; a run still going is stopped."""
