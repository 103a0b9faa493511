"""The Kubernetes executor: a workload is a Job (runs once) or a CronJob (scheduled), applied with
server-side apply under the operator's field manager; runs are the Jobs carrying the workload label.

A run's phase comes from the Job's terminal conditions (Complete / Failed); why it failed comes from
its newest pod's termination message, which the builder makes the tail of the component's log.
A workload's files are a ConfigMap of its name, applied before the Job or CronJob that mounts it.

A training workload (`Workload.training`) is a Kubeflow TrainJob or PyTorchJob instead of a Job
(`executors/kubernetes_training.py`). It is applied at every submit, not only to create it: its
`suspend` is the one field that changes (both ways); the rest is the same content, so the apply is a
no-op. `runs`, `names` and `delete` look at Jobs and both training kinds alike; a training run the
operator's watches delivered (`informer`) is read from them, without listing anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from loom.builders import job as job_builder
from loom.builders.labels import MANAGER
from loom.domain.workloads import WORKLOAD_LABEL, Phase, PythonEnv, Workload, WorkloadStatus
from loom.drivers.informer import Informer
from loom.drivers.kube import default_api
from loom.drivers.kube_http import ApiError, KubeHttp, resource_path, timestamp
from loom.executors.kubernetes_training import TrainingChildren, kind_of

_EPOCH = datetime.min.replace(tzinfo=timezone.utc)
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
BATCH = "batch/v1"


def _condition(job: Mapping[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return dict(cond)
    return None


class KubernetesExecutor:
    def __init__(
        self,
        images: Mapping[PythonEnv, str],
        api: KubeHttp | None = None,
        field_manager: str = MANAGER,
        components_dir: str = job_builder.COMPONENTS_DIR,
        informer: Informer | None = None,
    ) -> None:
        self.images = dict(images)
        self.field_manager = field_manager
        self.components_dir = components_dir
        self._api = api or default_api()
        self._training = TrainingChildren(self._api, informer)

    def start(self) -> None:
        """Nothing to start: the Job and CronJob controllers run in the cluster."""

    def stop(self) -> None:
        """Nothing to stop."""

    def submit(self, workload: Workload) -> None:
        if workload.service is not None:
            raise NotImplementedError(
                f"workload {workload.namespace}/{workload.name} is a long-running service: in a cluster, "
                "serving goes through the serving builders (Seldon Core 2 or KServe resources), not the "
                "executor's Jobs")
        image = self.images.get(PythonEnv(workload.python))
        if image is None:
            raise LookupError(f"no image configured for the {workload.python} environment")
        if workload.training is not None:
            self._submit_training(workload, image)
        elif workload.schedule is not None:
            self._apply_files(workload)
            self._apply("cronjobs", job_builder.cronjob(workload, image, self.components_dir))
        elif self._read_job(workload.namespace, workload.name) is None:
            # A Job's pod template is immutable, and a name stands for one run: apply only to create
            # (its files too, which a retried pod of the run must find as they were).
            self._apply_files(workload)
            self._apply("jobs", job_builder.job(workload, image, self.components_dir))

    def runs(self, namespace: str, name: str) -> list[WorkloadStatus]:
        found = self._training.watched(namespace, name)
        if not found:  # a Job's run, or a training run not delivered yet: ask the API server
            jobs = self._api.list(resource_path(BATCH, "jobs", namespace), f"{WORKLOAD_LABEL}={name}")
            found = [(timestamp(j["metadata"].get("creationTimestamp")), self._status(j)) for j in jobs]
            found += self._training.runs(namespace, name)
        found.sort(key=lambda r: (r[0] or _EPOCH, r[1].name), reverse=True)
        return [status for _, status in found]

    def names(self, namespace: str, labels: Mapping[str, str]) -> set[str]:
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        found = {(obj["metadata"].get("labels") or {}).get(WORKLOAD_LABEL)
                 for plural in ("jobs", "cronjobs") for obj in self._api.list(resource_path(BATCH, plural, namespace), selector)}
        found |= self._training.names(namespace, selector)
        return {n for n in found if n}

    def delete(self, namespace: str, name: str) -> None:
        try:
            self._api.delete(resource_path(BATCH, "cronjobs", namespace, name), propagation_policy="Background")
        except ApiError as exc:
            if exc.status != 404:
                raise
        self._api.delete_collection(resource_path(BATCH, "jobs", namespace), f"{WORKLOAD_LABEL}={name}", "Background")
        self._training.delete(namespace, name)
        try:
            self._api.delete(resource_path("v1", "configmaps", namespace, name))
        except ApiError as exc:
            if exc.status != 404:
                raise

    def _submit_training(self, workload: Workload, image: str) -> None:
        """Apply the files, then the TrainJob or PyTorchJob; a kind the cluster lacks is told as such."""
        kind = kind_of(workload)
        manifest = kind.build(workload, image, self.components_dir)
        self._apply_files(workload)
        try:
            self._apply(kind.plural, manifest)
        except ApiError as exc:
            if exc.status == 404:
                self._training.check_installed(kind)
            raise

    def _apply_files(self, workload: Workload) -> None:
        if workload.files:
            self._apply("configmaps", job_builder.config_map(workload))

    def _apply(self, plural: str, manifest: dict[str, Any]) -> None:
        meta = manifest["metadata"]
        path = resource_path(manifest["apiVersion"], plural, meta["namespace"], meta["name"])
        self._api.apply(path, manifest, self.field_manager)

    def _read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._api.get(resource_path(BATCH, "jobs", namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def _status(self, job: Mapping[str, Any]) -> WorkloadStatus:
        name = job["metadata"]["name"]
        status = job.get("status") or {}
        started = timestamp(status.get("startTime"))
        if _condition(job, "Complete") is not None:
            return WorkloadStatus(name, Phase.SUCCEEDED, "", started, timestamp(status.get("completionTime")), 0)
        failed = _condition(job, "Failed")
        if failed is not None:
            message, code = self._termination(job)
            reason = f"{failed.get('reason')}: {failed['message']}" if failed.get("message") else (failed.get("reason") or "Failed")
            return WorkloadStatus(
                name, Phase.FAILED, message or reason, started, timestamp(failed.get("lastTransitionTime")), code
            )
        phase = Phase.RUNNING if (status.get("ready") or 0) > 0 else Phase.PENDING
        return WorkloadStatus(name, phase, "", started)

    def _termination(self, job: Mapping[str, Any]) -> tuple[str, int | None]:
        """The last line of the newest terminated container's termination message (components end
        with their verdict), and its exit code."""
        meta = job["metadata"]
        pods = self._api.list(resource_path("v1", "pods", meta["namespace"]), f"{JOB_NAME_LABEL}={meta['name']}")
        finished: list[tuple[datetime, str, int]] = []
        for pod in pods:
            for cs in (pod.get("status") or {}).get("containerStatuses") or []:
                term = (cs.get("state") or {}).get("terminated")
                finished_at = timestamp((term or {}).get("finishedAt"))
                if term is not None and finished_at is not None:
                    lines = (term.get("message") or "").strip().splitlines()
                    finished.append((finished_at, lines[-1].strip() if lines else "", term.get("exitCode")))
        if not finished:
            return "", None
        _, message, code = max(finished, key=lambda t: t[0])
        return message, code
