"""Point-in-time-correct training sets from a FeatureSet, pinned to one lake snapshot.

The registry's feature view reads its pin, which moves with every materialization. A training set
must not: it is built from the snapshot its TrainingJob recorded. So the view as the registry holds
it is applied to a private, throw-away registry whose pin points at that snapshot's metadata file,
and Feast's own `get_historical_features` does the join (for each label row, the newest feature row
with event time at or before the label's, within the view's ttl; never a later one)."""

from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog import load_catalog

from loom.domain.feature_views import PIN_CATALOG, TAG_VERSION
from loom.drivers import feast_pins, feast_store
from loom.drivers.feast_store import StoreSettings

FEAST_TIMESTAMP = "event_timestamp"


@dataclass(frozen=True)
class TrainingSet:
    path: Path
    rows: int
    columns: list[str]
    snapshot_id: int
    feature_view_version: str | None

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "rows": self.rows, "columns": self.columns,
                "snapshotId": self.snapshot_id, "featureViewVersion": self.feature_view_version}


def export_training_set(
    settings: StoreSettings,
    view_name: str,
    labels: pa.Table,
    timestamp_field: str,
    snapshot_id: int,
    out: Path,
    features: list[str] | None = None,
) -> TrainingSet:
    """Join the view's features onto `labels` (entity keys, `timestamp_field`, labels) as of each
    row's time, reading the lake exactly as of `snapshot_id`; write parquet to `out`."""
    from feast import FeatureStore
    from feast.infra.data_sources.contrib.iceberg_catalog import IcebergSource
    from feast.repo_config import RepoConfig

    store = feast_store.open_store(settings)
    view = store.get_feature_view(view_name)
    entities = [store.get_entity(name) for name in view.entities]
    source = view.batch_source
    if not isinstance(source, IcebergSource):
        raise TypeError(f"feature view {view_name} does not read a Loom pin (its source is {type(source).__name__})")
    pinned = source.get_catalog_client().load_table(f"{source.namespace}.{source.iceberg_table}")
    location = feast_pins.snapshot_metadata_location(pinned, snapshot_id)

    with tempfile.TemporaryDirectory(prefix="loom-training-set-") as tmp:
        private_uri = f"sqlite:///{tmp}/pins.db"
        catalog = load_catalog(PIN_CATALOG, type="sql", uri=private_uri)
        catalog.create_namespace_if_not_exists(source.namespace)
        catalog.register_table((source.namespace, source.iceberg_table), location)
        private_view = copy.deepcopy(view)
        private_source = copy.deepcopy(source)
        private_source.catalog_properties = {**source.catalog_properties, "uri": private_uri}
        private_view.batch_source = private_source
        private = FeatureStore(config=RepoConfig(
            project=settings.project,
            provider="local",
            registry={"registry_type": "file", "path": f"{tmp}/registry.db"},
            online_store={"type": "sqlite", "path": f"{tmp}/online.db"},
            offline_store={"type": "duckdb"},
            entity_key_serialization_version=3,
        ))
        private.apply([*entities, private_view])
        entity_df = labels.rename_columns(
            [FEAST_TIMESTAMP if c == timestamp_field else c for c in labels.column_names]
        ).to_pandas()
        names = features or [f.name for f in view.features]
        joined = private.get_historical_features(
            entity_df=entity_df, features=[f"{view.name}:{name}" for name in names]
        ).to_arrow()
    joined = joined.rename_columns([timestamp_field if c == FEAST_TIMESTAMP else c for c in joined.column_names])
    version = view.tags.get(TAG_VERSION)
    lineage = {b"loom.snapshot_id": str(snapshot_id).encode(), b"loom.feature_view": view.name.encode(),
               b"loom.feature_view_version": (version or "").encode()}
    joined = joined.replace_schema_metadata({**(joined.schema.metadata or {}), **lineage})
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(joined, out)
    return TrainingSet(out, joined.num_rows, joined.column_names, snapshot_id, version)
