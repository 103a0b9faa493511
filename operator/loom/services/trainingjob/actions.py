"""What a TrainingJob decision asks to be done, as typed values; `act` carries them out in order.
Each names the condition that reports its failure and the status fields that are true only once it
is done (dropped when it fails, so the next reconcile decides it again)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from loom.domain.workloads import Workload

DATA_READY = "DataReady"
TRAINED = "Trained"
GATE_PASSED = "GatePassed"


@dataclass(frozen=True)
class SubmitRun:
    """Start the run, or keep it as it is; its `training.suspend` suspends or resumes it."""

    workload: Workload
    condition: ClassVar[str | None] = TRAINED
    fields: ClassVar[tuple[str, ...]] = ("runs", "current_run")


@dataclass(frozen=True)
class DeleteRun:
    """Remove a finished run beyond the history limit (its record goes with it)."""

    namespace: str
    name: str
    condition: ClassVar[str | None] = None
    fields: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True)
class MoveAlias:
    """Point the model's alias at the version that passed the gate."""

    tracking_uri: str
    model: str
    alias: str
    version: str
    condition: ClassVar[str | None] = GATE_PASSED
    fields: ClassVar[tuple[str, ...]] = ("runs", "gate", "model_version", "lineage", "metrics")


@dataclass(frozen=True)
class RemoveAnnotation:
    """A manual request (loom.dev/retrain) was answered, by a run or by a Warning saying why not:
    clear it so it is not answered again."""

    key: str
    condition: ClassVar[str | None] = None
    fields: ClassVar[tuple[str, ...]] = ()


Action = SubmitRun | DeleteRun | MoveAlias | RemoveAnnotation
