"""Export a point-in-time-correct training set of a FeatureSet, pinned to one lake snapshot.

    python components/training-set --registry URI --project P --view user_features \
        --snapshot-id 123 --labels ratings.parquet --timestamp-field timestamp --out train.parquet

Labels come from a parquet file, or from an Iceberg table with --labels-table NS.TABLE and
--labels-catalog '<pyiceberg properties JSON>' (optionally --labels-catalog-name, --labels-snapshot-id).
Prints one JSON line: the output path, row count, columns, snapshot id and feature view version.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from loom.drivers.feast_store import OnlineKind, StoreSettings
from loom.drivers.iceberg_catalog import open_catalog
from loom.features.training_set import export_training_set


def read_labels(args: argparse.Namespace) -> pa.Table:
    if args.labels:
        return pq.read_table(args.labels)
    table = open_catalog(args.labels_catalog_name, json.loads(args.labels_catalog)).load_table(args.labels_table)
    return table.scan(snapshot_id=args.labels_snapshot_id).to_arrow()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="training-set", description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", required=True, help="Feast SQL registry URI (SQLAlchemy URL)")
    parser.add_argument("--project", required=True, help="Feast project (loom_<namespace>)")
    parser.add_argument("--view", required=True, help="feature view name")
    parser.add_argument("--snapshot-id", type=int, required=True, help="lake snapshot the features are read at")
    parser.add_argument("--timestamp-field", required=True, help="event-time column of the label rows")
    parser.add_argument("--out", type=Path, required=True, help="parquet file to write")
    parser.add_argument("--feature", action="append", help="only these features (repeatable; default all)")
    labels = parser.add_mutually_exclusive_group(required=True)
    labels.add_argument("--labels", help="parquet file with entity keys, timestamps and labels")
    labels.add_argument("--labels-table", help="Iceberg table NS.TABLE with the label rows")
    parser.add_argument("--labels-catalog", default="{}", help="pyiceberg catalog properties (JSON)")
    parser.add_argument("--labels-catalog-name", default="default")
    parser.add_argument("--labels-snapshot-id", type=int, default=None)
    args = parser.parse_args(argv)

    # Historical retrieval never touches the online store; sqlite keeps Feast from connecting anywhere.
    settings = StoreSettings(args.project, args.registry, OnlineKind.SQLITE, "/dev/null")
    result = export_training_set(
        settings, args.view, read_labels(args), args.timestamp_field, args.snapshot_id, args.out, args.feature
    )
    print(json.dumps(result.to_json(), separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
