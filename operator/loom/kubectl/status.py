"""One row per Loom object for `kubectl loom status`, pure: phase, Ready, the condition that says
most, and the progress each kind has to show (lake tables, materialized snapshot, epochs and metrics,
the canary's weight and checks)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from loom.api.inferenceservice import DEFAULT_MAX_WEIGHT
from loom.api.kinds import DATALAKE, FEATURESET, INFERENCESERVICE, KINDS, TRAININGJOB
from loom.api.trainingjob import Metric

ORDER = {kind.kind: i for i, kind in enumerate(KINDS)}  # the lifecycle's order: lake, features, training, serving
DEFAULT_THRESHOLD = 3


@dataclass(frozen=True)
class Row:
    kind: str
    namespace: str
    name: str
    created: str | None
    phase: str | None
    ready: str | None
    reason: str | None
    message: str
    progress: dict[str, Any]
    conditions: tuple[dict[str, Any], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name,
                "creationTimestamp": self.created, "phase": self.phase, "ready": self.ready,
                "reason": self.reason, "message": self.message, "progress": self.progress,
                "conditions": list(self.conditions)}


def telling(conditions: list[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The condition that says most: Ready when it is True; otherwise the first other condition that
    is False (the blocker), else the first Unknown, else Ready itself."""
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    if ready is not None and ready.get("status") == "True":
        return ready
    others = [c for c in conditions if c.get("type") != "Ready"]
    for status in ("False", "Unknown"):
        found = next((c for c in others if c.get("status") == status), None)
        if found is not None:
            return found
    return ready


def _datalake(spec: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Any]:
    tables = status.get("tables") or []
    rows = [t["rowCount"] for t in tables if t.get("rowCount") is not None]
    return {"tables": status.get("tableCount"), "rows": sum(rows) if rows else None}


def _featureset(spec: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Any]:
    return {"snapshotId": status.get("sourceSnapshotId"), "onlineRows": status.get("onlineRowCount")}


def _trainingjob(spec: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Any]:
    """The current run's epochs and loss while it runs; the gate's metric from the run's latest
    validation or, once finished, its final evaluation."""
    metric = (spec.get("evaluation") or {}).get("metric") or Metric.RECALL_AT_10.value
    progress = status.get("progress") or {}
    value = (progress.get("metrics") or {}).get(metric)
    if value is None:
        value = (status.get("metrics") or {}).get(metric)
    return {"run": status.get("currentRun"), "epoch": progress.get("epoch"), "totalEpochs": progress.get("totalEpochs"),
            "percent": progress.get("percent"), "loss": progress.get("loss"), "metric": metric, "value": value,
            "modelVersion": status.get("modelVersion")}


def _inferenceservice(spec: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Any]:
    canary_spec = (spec.get("rollout") or {}).get("canary") or {}
    steps = canary_spec.get("stepWeights")
    return {
        "stableVersion": (status.get("stable") or {}).get("modelVersion"),
        "canaryVersion": (status.get("canary") or {}).get("modelVersion"),
        "canaryWeight": status.get("canaryWeight"),
        "maxWeight": steps[-1] if steps else canary_spec.get("maxWeight", DEFAULT_MAX_WEIGHT),
        "failedChecks": status.get("failedChecks", 0),
        "threshold": canary_spec.get("threshold", DEFAULT_THRESHOLD),
    }


PROGRESS = {DATALAKE.kind: _datalake, FEATURESET.kind: _featureset, TRAININGJOB.kind: _trainingjob,
            INFERENCESERVICE.kind: _inferenceservice}


def row(obj: Mapping[str, Any]) -> Row:
    """The row of one object as the API server returned it (with its `kind`)."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    conditions = list(status.get("conditions") or [])
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    said = telling(conditions)
    return Row(
        kind=obj["kind"],
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        created=meta.get("creationTimestamp"),
        phase=status.get("phase"),
        ready=ready.get("status") if ready else None,
        reason=said.get("reason") if said else None,
        message=said.get("message", "") if said else "",
        progress=PROGRESS[obj["kind"]](spec, status),
        conditions=tuple({k: c.get(k) for k in ("type", "status", "reason", "message", "lastTransitionTime")}
                         for c in conditions),
    )


def rows(objects: Sequence[Mapping[str, Any]]) -> list[Row]:
    """Rows in the lifecycle's order of kinds, then by namespace and name."""
    return sorted((row(o) for o in objects), key=lambda r: (ORDER[r.kind], r.namespace, r.name))
