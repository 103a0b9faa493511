"""The four Loom kinds: names, printer columns and the models behind them, in one table."""

from __future__ import annotations

from dataclasses import dataclass, field

from loom.api.datalake import DataLakeSpec, DataLakeStatus
from loom.api.featureset import FeatureSetSpec, FeatureSetStatus
from loom.api.inferenceservice import InferenceServiceSpec, InferenceServiceStatus
from loom.api.meta import GROUP, VERSION, LoomModel, StatusBase
from loom.api.trainingjob import TrainingJobSpec, TrainingJobStatus


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0

    def to_crd(self) -> dict[str, object]:
        column: dict[str, object] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            column["description"] = self.description
        if self.priority:
            column["priority"] = self.priority
        return column


def _condition(type_: str) -> str:
    return f'.status.conditions[?(@.type=="{type_}")]'


READY = PrinterColumn("Ready", _condition("Ready") + ".status", description="Summary condition")
REASON = PrinterColumn("Reason", _condition("Ready") + ".reason", description="Why Ready is what it is")
MESSAGE = PrinterColumn("Message", _condition("Ready") + ".message", priority=1)
AGE = PrinterColumn("Age", ".metadata.creationTimestamp", type="date")


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec: type[LoomModel]
    status: type[StatusBase]
    description: str
    columns: tuple[PrinterColumn, ...] = field(default=())

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"

    @property
    def printer_columns(self) -> tuple[PrinterColumn, ...]:
        return (*self.columns, READY, REASON, AGE, MESSAGE)


DATALAKE = Kind(
    kind="DataLake",
    plural="datalakes",
    short_names=("dl", "lake"),
    spec=DataLakeSpec,
    status=DataLakeStatus,
    description="An Apache Iceberg namespace and its tables, evolved, ingested and maintained by Loom.",
    columns=(
        PrinterColumn("Catalog", ".spec.catalog.type"),
        PrinterColumn("Namespace", ".spec.namespace"),
        PrinterColumn("Tables", ".status.tableCount", type="integer"),
    ),
)
FEATURESET = Kind(
    kind="FeatureSet",
    plural="featuresets",
    short_names=("fs", "features"),
    spec=FeatureSetSpec,
    status=FeatureSetStatus,
    description="Feast entities and a feature view over a DataLake table, materialized to an online store.",
    columns=(
        PrinterColumn("Lake", ".spec.source.dataLakeRef.name"),
        PrinterColumn("Table", ".spec.source.dataLakeRef.table"),
        PrinterColumn("Snapshot", ".status.sourceSnapshotId", type="integer", priority=1),
        PrinterColumn("Online Rows", ".status.onlineRowCount", type="integer"),
    ),
)
TRAININGJOB = Kind(
    kind="TrainingJob",
    plural="trainingjobs",
    short_names=("tj", "training"),
    spec=TrainingJobSpec,
    status=TrainingJobStatus,
    description="A PyTorch training run on a FeatureSet's training set, tracked and registered in MLflow.",
    columns=(
        PrinterColumn("Model", ".spec.model.name"),
        PrinterColumn("Version", ".status.modelVersion"),
        PrinterColumn("Run", ".status.runId", priority=1),
    ),
)
INFERENCESERVICE = Kind(
    kind="InferenceService",
    plural="inferenceservices",
    short_names=("lis",),
    spec=InferenceServiceSpec,
    status=InferenceServiceStatus,
    description="An MLflow model served by MLServer with metric-gated canary rollout and rollback.",
    columns=(
        PrinterColumn("Phase", ".status.phase", description="Rollout phase (Flagger's)"),
        PrinterColumn("Stable", ".status.stable.modelVersion", description="Model version taking stable traffic"),
        PrinterColumn("Canary", ".status.canary.modelVersion", description="Model version under analysis"),
        PrinterColumn("Weight", ".status.canaryWeight", type="integer", description="Percent on the canary"),
        PrinterColumn("URL", ".status.url", priority=1),
    ),
)

KINDS: tuple[Kind, ...] = (DATALAKE, FEATURESET, TRAININGJOB, INFERENCESERVICE)
BY_KIND: dict[str, Kind] = {k.kind: k for k in KINDS}

__all__ = ["GROUP", "VERSION", "KINDS", "BY_KIND", "Kind", "PrinterColumn"]
