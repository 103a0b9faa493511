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

import kubernetes
from kubernetes.client.exceptions import ApiException

from loom.builders import job as job_builder
from loom.builders.labels import MANAGER
from loom.domain.workloads import WORKLOAD_LABEL, Phase, PythonEnv, Workload, WorkloadStatus
from loom.drivers.informer import Informer
from loom.executors.kubernetes_training import TrainingChildren, kind_of

APPLY = "application/apply-patch+yaml"
_EPOCH = datetime.min.replace(tzinfo=timezone.utc)
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def _condition(job: kubernetes.client.V1Job, type_: str) -> kubernetes.client.V1JobCondition | None:
    for cond in (job.status and job.status.conditions) or []:
        if cond.type == type_ and cond.status == "True":
            return cond
    return None


class KubernetesExecutor:
    def __init__(
        self,
        images: Mapping[PythonEnv, str],
        api_client: kubernetes.client.ApiClient | None = None,
        field_manager: str = MANAGER,
        components_dir: str = job_builder.COMPONENTS_DIR,
        informer: Informer | None = None,
    ) -> None:
        self.images = dict(images)
        self.field_manager = field_manager
        self.components_dir = components_dir
        self._batch = kubernetes.client.BatchV1Api(api_client)
        self._core = kubernetes.client.CoreV1Api(api_client)
        self._api = self._batch.api_client
        self._training = TrainingChildren(self._api, informer)

    def start(self) -> None:
        """Nothing to start: the Job and CronJob controllers run in the cluster."""

    def stop(self) -> None:
        """Nothing to stop."""

    def submit(self, workload: Workload) -> None:
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
        found = self._training.seen(namespace, name)
        if not found:  # a Job's run, or a training run not delivered yet: ask the API server
            jobs = self._batch.list_namespaced_job(namespace, label_selector=f"{WORKLOAD_LABEL}={name}").items
            found = [(j.metadata.creation_timestamp, self._status(j)) for j in jobs]
            found += self._training.runs(namespace, name)
        found.sort(key=lambda r: (r[0] or _EPOCH, r[1].name), reverse=True)
        return [status for _, status in found]

    def names(self, namespace: str, labels: Mapping[str, str]) -> set[str]:
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        found = {j.metadata.labels.get(WORKLOAD_LABEL) for j in self._batch.list_namespaced_job(namespace, label_selector=selector).items}
        found |= {c.metadata.labels.get(WORKLOAD_LABEL) for c in self._batch.list_namespaced_cron_job(namespace, label_selector=selector).items}
        found |= self._training.names(namespace, selector)
        return {n for n in found if n}

    def delete(self, namespace: str, name: str) -> None:
        try:
            self._batch.delete_namespaced_cron_job(name, namespace, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise
        self._batch.delete_collection_namespaced_job(
            namespace, label_selector=f"{WORKLOAD_LABEL}={name}", propagation_policy="Background"
        )
        self._training.delete(namespace, name)
        try:
            self._core.delete_namespaced_config_map(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _submit_training(self, workload: Workload, image: str) -> None:
        """Apply the files, then the TrainJob or PyTorchJob; a kind the cluster lacks is told as such."""
        kind = kind_of(workload)
        manifest = kind.build(workload, image, self.components_dir)
        self._apply_files(workload)
        try:
            self._apply(kind.plural, manifest)
        except ApiException as exc:
            if exc.status == 404:
                self._training.check_installed(kind)
            raise

    def _apply_files(self, workload: Workload) -> None:
        if workload.files:
            self._apply("configmaps", job_builder.config_map(workload))

    def _apply(self, plural: str, manifest: dict[str, Any]) -> None:
        """Server-side apply (the typed client of kubernetes 30 cannot send an apply patch)."""
        meta = manifest["metadata"]
        group = "/api/v1" if manifest["apiVersion"] == "v1" else f"/apis/{manifest['apiVersion']}"
        self._api.call_api(
            f"{group}/namespaces/{meta['namespace']}/{plural}/{meta['name']}", "PATCH",
            query_params=[("fieldManager", self.field_manager), ("force", "true")],
            header_params={"Content-Type": APPLY, "Accept": "application/json"},
            body=manifest, auth_settings=["BearerToken"], response_type="object",
            _return_http_data_only=True,
        )

    def _read_job(self, namespace: str, name: str) -> kubernetes.client.V1Job | None:
        try:
            return self._batch.read_namespaced_job(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _status(self, job: kubernetes.client.V1Job) -> WorkloadStatus:
        name = job.metadata.name
        status = job.status or kubernetes.client.V1JobStatus()
        if _condition(job, "Complete") is not None:
            return WorkloadStatus(name, Phase.SUCCEEDED, "", status.start_time, status.completion_time, 0)
        failed = _condition(job, "Failed")
        if failed is not None:
            message, code = self._termination(job)
            reason = f"{failed.reason}: {failed.message}" if failed.message else (failed.reason or "Failed")
            return WorkloadStatus(
                name, Phase.FAILED, message or reason, status.start_time, failed.last_transition_time, code
            )
        phase = Phase.RUNNING if (status.ready or 0) > 0 else Phase.PENDING
        return WorkloadStatus(name, phase, "", status.start_time)

    def _termination(self, job: kubernetes.client.V1Job) -> tuple[str, int | None]:
        """The last line of the newest terminated container's termination message (components end
        with their verdict), and its exit code."""
        pods = self._core.list_namespaced_pod(
            job.metadata.namespace, label_selector=f"{JOB_NAME_LABEL}={job.metadata.name}"
        ).items
        finished: list[tuple[datetime, str, int]] = []
        for pod in pods:
            for cs in (pod.status and pod.status.container_statuses) or []:
                term = cs.state and cs.state.terminated
                if term is not None and term.finished_at is not None:
                    lines = (term.message or "").strip().splitlines()
                    finished.append((term.finished_at, lines[-1].strip() if lines else "", term.exit_code))
        if not finished:
            return "", None
        _, message, code = max(finished, key=lambda t: t[0])
        return message, code

