"""What a FeatureSet decision asks to be done, as typed values; `act` carries them out in order.
Each names the condition that reports it, so a failure to carry it out is reported there."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from loom.domain.feature_views import FeatureViewDefinition
from loom.domain.workloads import Workload
from loom.drivers.feast_store import StoreSettings

SOURCE_READY = "SourceReady"
REGISTRY_READY = "RegistryReady"
MATERIALIZED = "Materialized"
DATA_QUALITY = "DataQuality"


@dataclass(frozen=True)
class ApplyDefinition:
    """Make the registry hold exactly this definition (entities, feature view, pinned source)."""

    settings: StoreSettings
    definition: FeatureViewDefinition
    condition: ClassVar[str | None] = REGISTRY_READY
    # status fields that are true only once this is done
    fields: ClassVar[tuple[str, ...]] = ("feature_view_version",)


@dataclass(frozen=True)
class SubmitRun:
    """Start the materialization run (a no-op when a run of that name exists)."""

    workload: Workload
    condition: ClassVar[str | None] = MATERIALIZED
    fields: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True)
class DeleteRun:
    """Remove a finished run whose outcome is in the records (housekeeping: reports nothing)."""

    namespace: str
    name: str
    condition: ClassVar[str | None] = None
    fields: ClassVar[tuple[str, ...]] = ()


Action = ApplyDefinition | SubmitRun | DeleteRun
