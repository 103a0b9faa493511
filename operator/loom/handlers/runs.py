"""Run changes in a cluster: the Kubernetes executor's runs are Jobs, whose controller is the cluster's,
so a watch on Loom's Jobs reports a run that started or finished to its owner, as the local executor
reports its own (`Wakeups.run_changed`). The owner is read from the owner label, because a scheduled
run's ownerReference is its CronJob. Training runs are Kubeflow's TrainJobs or PyTorchJobs: a change of
their status (conditions, pods, the trainer's progress) wakes their TrainingJob the same way, after
the informer has it (the executor reads training runs from there); a kind the cluster does not serve
is simply not watched until its CRD appears."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from loom.api.kinds import Kind
from loom.domain.workloads import WORKLOAD_LABEL, Phase, owner_label
from loom.handlers.triggers import WORKLOAD, ObjectRef, marker

# Kubeflow Trainer v2's TrainJob and Training Operator 1.9's PyTorchJob.
TRAINING_KINDS = (("trainer.kubeflow.org", "v1alpha1", "trainjobs"), ("kubeflow.org", "v1", "pytorchjobs"))


def job_phase(status: Mapping[str, Any]) -> Phase | None:
    """The run's phase as far as its owner cares: started (running) or finished; None before."""
    for condition in status.get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") in ("Complete", "SuccessCriteriaMet"):
            return Phase.SUCCEEDED
        if condition.get("status") == "True" and condition.get("type") in ("Failed", "FailureTarget"):
            return Phase.FAILED
    return Phase.RUNNING if status.get("active") or status.get("startTime") else None


def owners(labels: Mapping[str, str], namespace: str, kinds: Iterable[Kind]) -> list[ObjectRef]:
    return [ObjectRef(k.plural, namespace, labels[owner_label(k.kind)]) for k in kinds if owner_label(k.kind) in labels]


def register(registry: kopf.OperatorRegistry, kinds: Iterable[Kind]) -> None:
    kinds = tuple(kinds)

    @kopf.on.event("batch", "v1", "jobs", labels={WORKLOAD_LABEL: kopf.PRESENT}, registry=registry)
    def job_changed(*, body: kopf.Body, namespace: str | None, name: str, memo: Any, **_: Any) -> None:
        phase = job_phase(body.get("status") or {})
        if phase is None:
            return
        for ref in owners(body.get("metadata", {}).get("labels") or {}, namespace or "", kinds):
            memo.wakeups(ref, WORKLOAD, marker([name, phase.value]))

    for group, version, plural in TRAINING_KINDS:
        @kopf.on.event(group, version, plural, labels={WORKLOAD_LABEL: kopf.PRESENT}, registry=registry,
                       id=f"{plural}-changed")
        def training_changed(*, event: kopf.RawEvent, body: kopf.Body, resource: kopf.Resource,
                             namespace: str | None, name: str, memo: Any, **_: Any) -> None:
            deleted = event.get("type") == "DELETED"
            memo.watched.seen(resource.plural, namespace or "", name, None if deleted else body)
            status = body.get("status") or {}
            if not status:  # just applied by the operator itself: nothing to tell its owner yet
                return
            seen = [name, (body.get("spec") or {}).get("suspend"), status.get("conditions"),
                    status.get("jobsStatus") or status.get("replicaStatuses"), status.get("trainerStatus")]
            for ref in owners(body.get("metadata", {}).get("labels") or {}, namespace or "", kinds):
                memo.wakeups(ref, WORKLOAD, marker(seen))
