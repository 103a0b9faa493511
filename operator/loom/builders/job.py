"""Workload -> batch/v1 Job and CronJob manifests (pure; the Kubernetes executor applies them).

The container runs `python <components_dir>/<component> <args>` in the image of the workload's Python
environment. Secret-backed variables are secretKeyRefs, so no credential ever appears in a manifest.
A run's last log lines become its termination message (FallbackToLogsOnError), which is how the
operator learns why it failed; a replacement pod starts only once the failed one is gone, so two
attempts of one run never overlap. A workload's files are a ConfigMap of the same name, mounted
read-only at FILES_DIR and named by $LOOM_WORKLOAD_FILES; the executor applies it before the Job.
"""

from __future__ import annotations

from typing import Any

from loom.builders import pods
from loom.builders.labels import workload_labels
from loom.domain.workloads import EXIT_INPUT_ERROR, FILES_ENV, Workload

COMPONENTS_DIR = "/opt/loom/components"
HISTORY_LIMIT = 3
FILES_DIR = "/var/run/loom/workload"
FILES_VOLUME = "workload-files"


def labels(workload: Workload) -> dict[str, str]:
    """The labels of the workload's objects, in the one scheme of `builders.labels`."""
    return workload_labels(workload.name, workload.component, dict(workload.labels))


def _metadata(workload: Workload) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": workload.name, "namespace": workload.namespace, "labels": labels(workload)}
    if workload.owner is not None:
        meta["ownerReferences"] = [workload.owner.to_wire()]
    return meta


def config_map(workload: Workload) -> dict[str, Any]:
    """The ConfigMap of the workload's files (apply it only for a workload that has files). It belongs
    to the workload's owner, as the Job does, so it goes with the owner or with `delete`."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(workload),
        "data": dict(sorted(workload.files.items())),
    }


def _env(workload: Workload) -> list[dict[str, Any]]:
    values = {**workload.env, FILES_ENV: FILES_DIR} if workload.files else workload.env
    plain = [{"name": k, "value": v} for k, v in sorted(values.items())]
    return plain + pods.secret_env(workload.secret_env)


def _job_spec(workload: Workload, image: str, components_dir: str) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": workload.component,
        "image": image,
        "command": ["python", f"{components_dir}/{workload.component}"],
        "args": list(workload.args),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    env = _env(workload)
    if env:
        container["env"] = env
    pod: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if workload.files:
        container["volumeMounts"] = [{"name": FILES_VOLUME, "mountPath": FILES_DIR, "readOnly": True}]
        pod["volumes"] = [{"name": FILES_VOLUME, "configMap": {"name": workload.name}}]
    spec: dict[str, Any] = {
        "backoffLimit": workload.retries,
        # A component that says its input is wrong is not retried: the same input fails the same way.
        "podFailurePolicy": {"rules": [{
            "action": "FailJob",
            "onExitCodes": {"containerName": workload.component, "operator": "In", "values": [EXIT_INPUT_ERROR]},
        }]},
        "podReplacementPolicy": "Failed",
        "template": {
            "metadata": {"labels": labels(workload)},
            "spec": pod,
        },
    }
    if workload.ttl_seconds_after_finished is not None:
        spec["ttlSecondsAfterFinished"] = workload.ttl_seconds_after_finished
    return spec


def job(workload: Workload, image: str, components_dir: str = COMPONENTS_DIR) -> dict[str, Any]:
    """The Job of a workload that runs once."""
    if workload.schedule is not None:
        raise ValueError(f"workload {workload.name} is scheduled; build a CronJob")
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(workload),
        "spec": _job_spec(workload, image, components_dir),
    }


def cronjob(workload: Workload, image: str, components_dir: str = COMPONENTS_DIR) -> dict[str, Any]:
    """The CronJob of a scheduled workload: UTC, and no new run while the previous one is going."""
    if workload.schedule is None:
        raise ValueError(f"workload {workload.name} has no schedule; build a Job")
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _metadata(workload),
        "spec": {
            "schedule": workload.schedule,
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": HISTORY_LIMIT,
            "failedJobsHistoryLimit": HISTORY_LIMIT,
            "jobTemplate": {
                "metadata": {"labels": labels(workload)},
                "spec": _job_spec(workload, image, components_dir),
            },
        },
    }
