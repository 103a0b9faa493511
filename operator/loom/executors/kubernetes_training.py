"""Training workloads in a cluster: a Kubeflow TrainJob (Trainer v2) or PyTorchJob (Training Operator
1.9), per `Training.backend`, built by `builders.training` and read back as `WorkloadStatus`.

The child is named like the workload and carries its `loom.dev/workload` label, as a Job does. Runs are
found by that label in both kinds, so `runs(namespace, name)` needs not know whether the workload is a
training one; a kind whose CRD the cluster lacks simply has no runs, no names and nothing to delete.
Only `apply` of a kind the cluster lacks is an error: `TrainingKindMissingError`, naming the fix.
A kind the operator may not read (403: its RBAC lacks the kind) is treated like one that is absent when
reading and deleting, since nothing of it can have been created: the Jobs of every other workload are
still found. Its apply fails with the API server's own Forbidden.

The operator's watches of both kinds feed an `Informer` (given one): a run it has seen is read from
there, as its creation time and mapped status, and only a run it has not seen is listed from the API
server (one LIST per kind per reconcile would cost the API server a scan of every child in the
namespace).

Kubeflow's controllers own the status; it is mapped as follows. TrainJob: Complete or Failed decide,
then Suspended, else Running while any of its `jobsStatus` has an active pod, else Pending; replicas
add up `jobsStatus[]`, and the alpha `trainerStatus` becomes `WorkloadStatus.trainer`. PyTorchJob:
Succeeded, Failed, Suspended, Running or Restarting (Running), else Pending (Created); replicas add up
`replicaStatuses` (Master, Worker). The deciding condition gives the message and, for a finished run,
the finish time when the object has no `completionTime`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loom.api.trainingjob import Backend
from loom.builders import training as training_builder
from loom.domain.errors import TrainingKindMissingError
from loom.domain.training import Replicas, TrainerProgress
from loom.domain.workloads import WORKLOAD_LABEL, Phase, Workload, WorkloadStatus
from loom.drivers.informer import Informer
from loom.drivers.kube_http import ApiError, KubeHttp, resource_path, timestamp

Manifest = dict[str, Any]


@dataclass(frozen=True)
class TrainingKind:
    kind: str
    group: str
    version: str
    plural: str
    build: Callable[[Workload, str, str], Manifest]
    fix: str  # what to do when the cluster lacks the kind

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    def missing(self) -> TrainingKindMissingError:
        return TrainingKindMissingError(f"the cluster has no {self.kind} kind ({self.api_version}): {self.fix}")


TRAINJOB = TrainingKind(
    "TrainJob", "trainer.kubeflow.org", "v1alpha1", "trainjobs", training_builder.trainjob,
    "install Kubeflow Trainer v2 (and JobSet), or set spec.backend: PyTorchJob for Training Operator 1.9",
)
PYTORCHJOB = TrainingKind(
    "PyTorchJob", "kubeflow.org", "v1", "pytorchjobs", training_builder.pytorchjob,
    "install Kubeflow Training Operator 1.9, or set spec.backend: TrainJob for Kubeflow Trainer v2",
)
KINDS = {Backend.TRAINJOB: TRAINJOB, Backend.PYTORCHJOB: PYTORCHJOB}
# Not installed (404), or not granted to the operator (403).
UNAVAILABLE = (403, 404)


def kind_of(workload: Workload) -> TrainingKind:
    assert workload.training is not None
    return KINDS[Backend(workload.training.backend)]


def _true(obj: Mapping[str, Any], *types: str) -> dict[str, Any] | None:
    """The first of these condition types that is True on the object, in the order given."""
    conditions = {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or []
                  if c.get("status") == "True"}
    return next((conditions[t] for t in types if t in conditions), None)


def _message(condition: Mapping[str, Any]) -> str:
    reason, message = condition.get("reason") or "", condition.get("message") or ""
    return f"{reason}: {message}" if reason and message else message or reason or str(condition.get("type"))


def _count(value: object) -> int:
    return value if isinstance(value, int) else 0


def _replicas(entries: list[Mapping[str, Any]]) -> Replicas:
    return Replicas(
        active=sum(_count(e.get("active")) for e in entries),
        succeeded=sum(_count(e.get("succeeded")) for e in entries),
        failed=sum(_count(e.get("failed")) for e in entries),
    )


def _trainer(status: Mapping[str, Any]) -> TrainerProgress | None:
    """TrainJob's alpha trainerStatus; a metric value that is not a number is left out."""
    trainer = status.get("trainerStatus")
    if not isinstance(trainer, Mapping):
        return None
    metrics: dict[str, float] = {}
    for metric in trainer.get("metrics") or []:
        try:
            metrics[str(metric["name"])] = float(metric["value"])
        except (KeyError, TypeError, ValueError):
            continue
    percentage, remaining = trainer.get("progressPercentage"), trainer.get("estimatedRemainingSeconds")
    return TrainerProgress(
        progress_percentage=percentage if isinstance(percentage, int) else None,
        estimated_remaining_seconds=remaining if isinstance(remaining, int) else None,
        metrics=metrics,
    )


def trainjob_status(obj: Mapping[str, Any]) -> WorkloadStatus:
    meta, status = obj["metadata"], obj.get("status") or {}
    started = timestamp(status.get("startTime")) or timestamp(meta.get("creationTimestamp"))
    replicas = _replicas(status.get("jobsStatus") or [])
    common: dict[str, Any] = {"replicas": replicas, "trainer": _trainer(status)}
    name = meta["name"]
    if (done := _true(obj, "Complete")) is not None:
        finished = timestamp(status.get("completionTime")) or timestamp(done.get("lastTransitionTime"))
        return WorkloadStatus(name, Phase.SUCCEEDED, _message(done), started, finished, 0, **common)
    if (failed := _true(obj, "Failed")) is not None:
        finished = timestamp(status.get("completionTime")) or timestamp(failed.get("lastTransitionTime"))
        return WorkloadStatus(name, Phase.FAILED, _message(failed), started, finished, **common)
    if (suspended := _true(obj, "Suspended")) is not None:
        return WorkloadStatus(name, Phase.SUSPENDED, _message(suspended), started, **common)
    phase = Phase.RUNNING if replicas.active > 0 else Phase.PENDING
    return WorkloadStatus(name, phase, "", started, **common)


def pytorchjob_status(obj: Mapping[str, Any]) -> WorkloadStatus:
    meta, status = obj["metadata"], obj.get("status") or {}
    started = timestamp(status.get("startTime")) or timestamp(meta.get("creationTimestamp"))
    replicas = _replicas(list((status.get("replicaStatuses") or {}).values()))
    name = meta["name"]
    if (done := _true(obj, "Succeeded")) is not None:
        finished = timestamp(status.get("completionTime")) or timestamp(done.get("lastTransitionTime"))
        return WorkloadStatus(name, Phase.SUCCEEDED, _message(done), started, finished, 0, replicas=replicas)
    if (failed := _true(obj, "Failed")) is not None:
        finished = timestamp(status.get("completionTime")) or timestamp(failed.get("lastTransitionTime"))
        return WorkloadStatus(name, Phase.FAILED, _message(failed), started, finished, replicas=replicas)
    if (suspended := _true(obj, "Suspended")) is not None:
        return WorkloadStatus(name, Phase.SUSPENDED, _message(suspended), started, replicas=replicas)
    if (running := _true(obj, "Running", "Restarting")) is not None:
        return WorkloadStatus(name, Phase.RUNNING, _message(running), started, replicas=replicas)
    created = _true(obj, "Created")
    return WorkloadStatus(name, Phase.PENDING, _message(created) if created else "", started, replicas=replicas)


STATUS = {TRAINJOB.kind: trainjob_status, PYTORCHJOB.kind: pytorchjob_status}
Run = tuple[datetime | None, WorkloadStatus]  # with its creation time, to sort runs of either kind


def _run(kind: TrainingKind) -> Callable[[Mapping[str, Any]], Run]:
    def read(obj: Mapping[str, Any]) -> Run:
        return timestamp(obj["metadata"].get("creationTimestamp")), STATUS[kind.kind](obj)
    return read


class TrainingChildren:
    """The training children of workloads, through one client of the API server."""

    def __init__(self, api: KubeHttp, informer: Informer | None = None) -> None:
        self._api = api
        self._informer = informer
        if informer is not None:
            for kind in KINDS.values():
                informer.transform(kind.plural, _run(kind))

    def check_installed(self, kind: TrainingKind) -> None:
        """Raise the kind's TrainingKindMissingError unless discovery lists it."""
        try:
            found = self._api.get(f"/apis/{kind.api_version}")
        except ApiError as exc:
            if exc.status == 404:
                raise kind.missing() from None
            raise
        if not any(r.get("name") == kind.plural for r in (found or {}).get("resources", [])):
            raise kind.missing()

    def listed(self, namespace: str, selector: str) -> Iterator[tuple[TrainingKind, dict[str, Any]]]:
        """Children of both kinds that carry the labels of `selector`; none of a kind not installed."""
        for kind in KINDS.values():
            try:
                found = self._api.list(resource_path(kind.api_version, kind.plural, namespace), selector)
            except ApiError as exc:
                if exc.status in UNAVAILABLE:
                    continue
                raise
            for obj in found:
                yield kind, obj

    def watched(self, namespace: str, name: str) -> list[Run]:
        """The workload's training runs the watches delivered; empty when they delivered none."""
        if self._informer is None:
            return []
        return [run for kind in KINDS.values() for run in self._informer.labelled(kind.plural, namespace, name)]

    def runs(self, namespace: str, name: str) -> list[Run]:
        """The workload's training runs with their creation times (to sort them with Jobs), listed."""
        return [_run(kind)(obj) for kind, obj in self.listed(namespace, f"{WORKLOAD_LABEL}={name}")]

    def names(self, namespace: str, selector: str) -> set[str]:
        return {obj["metadata"].get("labels", {}).get(WORKLOAD_LABEL) or "" for _, obj in self.listed(namespace, selector)} - {""}

    def delete(self, namespace: str, name: str) -> None:
        """Delete the workload's child of either kind, its pods in the background; nothing there
        (or no such kind in the cluster) is no error."""
        for kind in KINDS.values():
            if self._informer is not None:  # a DELETED event missed in a watch gap must not keep it
                self._informer.seen(kind.plural, namespace, name, None)
            try:
                self._api.delete(resource_path(kind.api_version, kind.plural, namespace, name),
                                 propagation_policy="Background")
            except ApiError as exc:
                if exc.status not in UNAVAILABLE:
                    raise
