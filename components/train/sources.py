"""The run's data, each table read exactly at the snapshot train.json names: the labels from Iceberg,
joined point-in-time with the FeatureSet's features (as components/training-set does), and the
items from Iceberg."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from contract import InputError, Items, Labels, LakeTable, TrainConfig

from loom.drivers.feast_store import OnlineKind, StoreSettings
from loom.drivers.iceberg_catalog import open_catalog
from loom.features.training_set import export_training_set


def properties(table: LakeTable) -> dict[str, str]:
    """Catalog properties plus each KEY=ENV secret from the environment (never from the file)."""
    merged = dict(table.catalog_properties)
    for item in table.secret_properties:
        key, _, env = item.partition("=")
        if not key or env not in os.environ:
            raise InputError(f"secretProperties {item!r}: expected KEY=ENV with ENV set")
        merged[key] = os.environ[env]
    return merged


def read_table(table: LakeTable, columns: list[str] | None = None) -> pa.Table:
    catalog = open_catalog(table.catalog_name, properties(table))
    try:
        loaded = catalog.load_table(table.table)
        if loaded.metadata.snapshot_by_id(table.snapshot_id) is None:
            raise InputError(f"{table.table} has no snapshot {table.snapshot_id}")
        names = {f.name for f in loaded.schema().fields}
        missing = [c for c in columns or [] if c not in names]
        if missing:
            raise InputError(f"{table.table} has no column {', '.join(missing)} (it has {', '.join(sorted(names))})")
        scan = loaded.scan(snapshot_id=table.snapshot_id, selected_fields=tuple(columns) if columns else ("*",))
        return scan.to_arrow()
    finally:
        close = getattr(catalog, "close", None)
        if close:
            close()


def label_columns(labels: Labels) -> list[str]:
    return [labels.user_field, labels.item_field, labels.label_field, labels.timestamp_field]


def training_rows(config: TrainConfig) -> tuple[pd.DataFrame, list[str]]:
    """The labels with the FeatureSet's features as of each row's time, and the feature columns."""
    labels = read_table(config.labels, label_columns(config.labels))
    features = config.features
    settings = StoreSettings(features.project, features.registry, OnlineKind.SQLITE, "/dev/null")
    with tempfile.TemporaryDirectory(prefix="loom-train-") as tmp:
        exported = export_training_set(settings, features.view, labels, config.labels.timestamp_field,
                                       features.snapshot_id, Path(tmp) / "training-set.parquet")
        rows = pq.read_table(exported.path).to_pandas()
    feature_columns = [c for c in rows.columns if c not in set(label_columns(config.labels))]
    return rows, feature_columns


def item_rows(items: Items | None) -> pd.DataFrame | None:
    return read_table(items).to_pandas() if items is not None else None
