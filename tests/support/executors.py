"""An in-memory Executor for unit tests of act steps: it records what was submitted and deleted, and
reports runs as the test sets them (`finish`, `set_runs`), the way `pkg/util/testing` fakes stand in
for the controllers in Kubeflow Trainer's tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from loom.domain.workloads import WORKLOAD_LABEL, Phase, Workload, WorkloadStatus


@dataclass
class FakeExecutor:
    workloads: dict[tuple[str, str], Workload] = field(default_factory=dict)
    statuses: dict[tuple[str, str], list[WorkloadStatus]] = field(default_factory=dict)
    submitted: list[Workload] = field(default_factory=list)
    deleted: list[tuple[str, str]] = field(default_factory=list)
    refuse: Exception | None = None  # raised by submit, as a missing Secret key would be
    started: bool = False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False

    def submit(self, workload: Workload) -> None:
        if self.refuse is not None:
            raise self.refuse
        key = (workload.namespace, workload.name)
        self.submitted.append(workload)
        self.workloads[key] = workload
        if workload.schedule is None:
            self.statuses.setdefault(key, [WorkloadStatus(workload.name, Phase.PENDING, "starting")])

    def runs(self, namespace: str, name: str) -> list[WorkloadStatus]:
        return list(self.statuses.get((namespace, name), []))

    def names(self, namespace: str, labels: Mapping[str, str]) -> set[str]:
        return {
            name for (ns, name), w in self.workloads.items()
            if ns == namespace and all({**w.labels, WORKLOAD_LABEL: w.name}.get(k) == v for k, v in labels.items())
        }

    def delete(self, namespace: str, name: str) -> None:
        self.deleted.append((namespace, name))
        self.workloads.pop((namespace, name), None)
        self.statuses.pop((namespace, name), None)

    # --- what the tests do in place of a controller ---------------------------------------------

    def set_runs(self, namespace: str, name: str, *runs: WorkloadStatus) -> None:
        """The workload's runs, newest first, as the executor would report them."""
        self.statuses[(namespace, name)] = list(runs)

    def finish(self, namespace: str, name: str, phase: Phase = Phase.SUCCEEDED, message: str = "") -> None:
        """The workload's newest run ends (a once-workload's only run)."""
        runs = self.statuses.setdefault((namespace, name), [WorkloadStatus(name, Phase.RUNNING)])
        runs[0] = WorkloadStatus(runs[0].name, phase, message, runs[0].started_at,
                                 exit_code=0 if phase == Phase.SUCCEEDED else 1)
