"""FeatureSet: Feast entities and a feature view over a DataLake table, materialized online."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from pydantic import ConfigDict, Field

from loom.api.meta import (
    Cron,
    Duration,
    Identifier,
    LocalObjectRef,
    LoomModel,
    SecretKeyRef,
    StatusBase,
    cel,
    keyed,
)


class DataLakeTableRef(LocalObjectRef):
    table: Identifier = Field(description="Table of the referenced DataLake.")


class FeatureSource(LoomModel):
    data_lake_ref: DataLakeTableRef = Field(description="The DataLake table the features are read from.")
    timestamp_field: Identifier = Field(description="Event-time column used for point-in-time joins.")
    created_timestamp_field: Identifier | None = Field(
        default=None,
        description=(
            "Row-creation time column (timestamp or timestamptz). It only breaks ties: among rows of one entity "
            "with equal event time, point-in-time joins (training sets) and materialization take the row with the "
            "latest created timestamp. It is never compared with a label's time, so that row wins even when it "
            "was created after the label's event time (Feast's rule): a correction written later is seen by "
            "earlier labels. Without this column, which of the tied rows is taken is undefined."
        ),
    )
    snapshot_id: int | None = Field(
        default=None, description="Pin an Iceberg snapshot; when unset the table's current snapshot is followed."
    )


class ValueType(str, Enum):
    """Feast entity value types (feast.ValueType)."""

    STRING = "STRING"
    INT32 = "INT32"
    INT64 = "INT64"
    BYTES = "BYTES"


class Entity(LoomModel):
    name: Identifier = Field(description="Entity name, e.g. user.")
    join_keys: list[Identifier] = Field(
        min_length=1,
        max_length=1,
        description=(
            "Column that identifies the entity, e.g. [userId]. Feast 0.67 entities have exactly one join key; "
            "declare several entities for a composite key."
        ),
    )
    value_type: ValueType = Field(default=ValueType.INT64, description="Feast value type of the join key.")
    description: str | None = Field(default=None, max_length=1024, description="What the entity is.")


class Dtype(str, Enum):
    """Feast feature types (feast.types)."""

    INT32 = "Int32"
    INT64 = "Int64"
    FLOAT32 = "Float32"
    FLOAT64 = "Float64"
    STRING = "String"
    BOOL = "Bool"
    BYTES = "Bytes"
    UNIX_TIMESTAMP = "UnixTimestamp"
    ARRAY_INT64 = "Array(Int64)"
    ARRAY_FLOAT32 = "Array(Float32)"
    ARRAY_STRING = "Array(String)"


class Feature(LoomModel):
    name: Identifier = Field(description="Feature (column) name in the source table.")
    dtype: Dtype = Field(description="Feast type of the feature.")
    description: str | None = Field(default=None, max_length=1024, description="What the feature means.")


class OnlineStoreType(str, Enum):
    REDIS = "redis"
    SQLITE = "sqlite"


class OnlineStore(LoomModel):
    enabled: bool = Field(default=True, description="Materialize features into the online store.")
    store: OnlineStoreType = Field(default=OnlineStoreType.REDIS, description="Online store kind.")
    connection_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description=(
            "Secret holding the connection string (redis host:port,password=...) or the sqlite file path, under "
            "`key` (default: connection); the operator's default store when unset."
        ),
    )


class Materialization(LoomModel):
    schedule: Cron | None = Field(
        default=None,
        description=(
            "Cron schedule (UTC) for periodic full re-materializations, which also repair an online store that "
            "lost data; new lake snapshots are materialized incrementally either way."
        ),
    )
    suspend: bool = Field(default=False, description="Pause scheduled and snapshot-triggered materialization.")


class Registry(LoomModel):
    uri: str | None = Field(
        default=None,
        max_length=2048,
        description=(
            "Feast SQL registry URI (SQLAlchemy URL, sqlite or postgresql); the operator's default when unset. "
            "Loom keeps its snapshot pins in the same database. Put no password here: the URI is stored in the "
            "registry's data source; PostgreSQL credentials come from the environment (PGPASSWORD, PGPASSFILE)."
        ),
    )


class FeatureQuality(LoomModel):
    name: Identifier = Field(description="Feature the expectation applies to.")
    max_null_fraction: float = Field(ge=0, le=1, description="Largest tolerated fraction of null values.")


class Quality(LoomModel):
    """Expectations checked before every materialization; a failure writes nothing online."""

    min_rows: int | None = Field(default=None, ge=0, description="Fewest rows the source must hold.")
    freshness: Duration | None = Field(default=None, description="Newest event must be no older than this.")
    features: list[FeatureQuality] = Field(
        default_factory=list, **keyed("Per-feature expectations.", 256)
    )


class FeatureSetSpec(LoomModel):
    """Desired Feast feature view over one DataLake table."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.quality) || !has(self.quality.features) || self.quality.features.all(q, self.features.exists(f, f.name == q.name))",
                    "quality.features[].name must name one of spec.features",
                    field_path=".quality.features",
                )
            ]
        }
    )

    source: FeatureSource = Field(description="Where feature values come from.")
    entities: list[Entity] = Field(min_length=1, **keyed("Entities the features describe.", 8))
    features: list[Feature] = Field(min_length=1, **keyed("Features of the view.", 256))
    ttl: Duration = Field(default="0s", description="How far back a point-in-time join looks; 0s means forever.")
    online: OnlineStore = Field(default_factory=OnlineStore, description="Online store settings.")
    materialization: Materialization = Field(
        default_factory=Materialization, description="When features are written to the online store."
    )
    registry: Registry = Field(default_factory=Registry, description="Feast registry holding the definitions.")
    quality: Quality = Field(default_factory=Quality, description="Data-quality gate for materialization.")


class MaterializationRun(LoomModel):
    time: datetime = Field(description="End of the materialized event-time window (when the run read the lake).")
    rows: int = Field(ge=0, description="Entity rows written to the online store.")
    duration_seconds: float = Field(ge=0, description="Wall time of the run.")
    snapshot_id: int = Field(description="Iceberg snapshot the run materialized.")
    feature_view_version: str = Field(max_length=253, description="Feature view version the run materialized.")


class MaterializationFailure(LoomModel):
    """A materialization run that failed, and the input it failed for. A deterministic failure is not
    retried until that input changes (the spec, the lake table's snapshot or schema); a transient one
    is retried after a backoff that doubles with each attempt."""

    run: str = Field(max_length=253, description="Name of the failed run (a Job, or a local run of the operator).")
    time: datetime = Field(description="When the run failed.")
    generation: int | None = Field(default=None, description="FeatureSet generation the run was for.")
    snapshot_id: int = Field(description="Lake table snapshot the run was materializing.")
    schema_id: int = Field(description="Schema id of that snapshot.")
    feature_view_version: str = Field(max_length=253, description="Feature view version the run was for.")
    transient: bool = Field(description="Whether the failure may heal by itself (an unreachable system).")
    attempts: int = Field(ge=1, description="Failed runs for this input so far.")


class FeatureSetStatus(StatusBase):
    """Observed state of the feature view: what was read, applied and materialized."""

    source_snapshot_id: int | None = Field(default=None, description="Iceberg snapshot last materialized.")
    feature_view_version: str | None = Field(
        default=None, max_length=253, description="Hash of the applied definition."
    )
    last_materialized: MaterializationRun | None = Field(default=None, description="Last materialization.")
    online_row_count: int | None = Field(default=None, ge=0, description="Entity rows in the online store.")
    last_failure: MaterializationFailure | None = Field(
        default=None, description="The last failed materialization run and the input it failed for."
    )
