"""What a reader of one lake table needs to know before reading it: which snapshot it would read and
that snapshot's schema, from one load of the table (one catalog round trip)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from loom.drivers.host import out_of_process
from loom.drivers.iceberg_catalog import open_catalog
from loom.drivers.iceberg_tables import load_table


@dataclass(frozen=True)
class LakeTable:
    """One table as a reader sees it. `snapshot_id` is the snapshot it would read: the requested one
    when the table has it, else the current one when none was requested; None when there is none (an
    empty table, or an unknown requested snapshot). `columns` are the top-level columns of that
    snapshot's schema (the current schema when there is no snapshot), as Iceberg type strings."""

    identifier: str
    current_snapshot_id: int | None
    snapshot_id: int | None
    schema_id: int
    columns: Mapping[str, str] = field(default_factory=dict)


@out_of_process()
def read_table(catalog_name: str, properties: Mapping[str, str], namespace: str, name: str,
               snapshot_id: int | None = None) -> LakeTable | None:
    """The table as a reader of `snapshot_id` (or of the current snapshot) sees it; None when the
    catalog has no such table. Raises what the catalog raises when it cannot be reached."""
    catalog = open_catalog(catalog_name, properties)
    try:
        table = load_table(catalog, namespace, name)
    finally:
        catalog.close()
    if table is None:
        return None
    metadata = table.metadata
    wanted = metadata.current_snapshot_id if snapshot_id is None else snapshot_id
    snapshot = metadata.snapshot_by_id(wanted) if wanted is not None else None
    schema_id = snapshot.schema_id if snapshot is not None and snapshot.schema_id is not None \
        else metadata.current_schema_id
    schema = metadata.schema_by_id(schema_id) or metadata.schema()
    return LakeTable(
        identifier=f"{namespace}.{name}",
        current_snapshot_id=metadata.current_snapshot_id,
        snapshot_id=snapshot.snapshot_id if snapshot is not None else None,
        schema_id=schema_id,
        columns={f.name: str(f.field_type) for f in schema.fields},
    )
