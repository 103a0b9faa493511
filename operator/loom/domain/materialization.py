"""What a materialization run is asked to do, as the operator plans it and the run reads it back.

Plain data shared by the builder that puts it on a workload's command line and the feature code
that carries it out. No Secret values: those reach the process as environment variables (the
lake's FileIO keys via `pin_env_name`, the online connection via ONLINE_CONNECTION_ENV)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from loom.api.featureset import Quality
from loom.domain.feature_views import FeatureViewDefinition

ONLINE_CONNECTION_ENV = "LOOM_FEAST_ONLINE_CONNECTION"


class MaterializeRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    definition: dict[str, Any]
    store: dict[str, str]
    lake_catalog_name: str
    lake_catalog: dict[str, str]
    lake_secret_keys: list[str] = Field(default_factory=list)
    lake_table: str
    snapshot_id: int
    previous_snapshot_id: int | None = None
    quality: Quality = Quality()

    def feature_view(self) -> FeatureViewDefinition:
        return FeatureViewDefinition.from_json(self.definition)
