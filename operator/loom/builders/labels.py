"""The one label scheme of everything Loom creates: Kubernetes' recommended app.kubernetes.io labels,
plus `loom.dev/<kind>: <name>` naming the Loom object a child belongs to (how a service finds its
children again) and `loom.dev/workload` on every run of a workload (how an executor finds its runs)."""

from __future__ import annotations

from loom.domain.workloads import MAX_NAME, WORKLOAD_LABEL, digest, dns_name, owner_label

PART_OF = "loom"
# app.kubernetes.io/managed-by of every child; also the server-side-apply field manager's default.
MANAGER = "loom-operator"


def owned_by(kind: str, name: str) -> dict[str, str]:
    """The selector of a Loom object's children; a name too long for a label value is shortened with a
    hash that keeps it unique."""
    return {owner_label(kind): name if len(name) <= MAX_NAME else dns_name(name, digest(name), MAX_NAME)}


def recommended(instance: str, component: str) -> dict[str, str]:
    """app.kubernetes.io labels of one child: `instance` is the child's own name."""
    return {
        "app.kubernetes.io/name": PART_OF,
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGER,
    }


def workload_labels(name: str, component: str, extra: dict[str, str]) -> dict[str, str]:
    """Labels of a workload's Job/CronJob and pods: recommended ones, the workload's own (`extra`,
    e.g. `owned_by`), and the run label, which neither may override."""
    return {**recommended(name, component), **extra, WORKLOAD_LABEL: name}
