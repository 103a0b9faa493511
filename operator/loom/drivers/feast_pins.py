"""The pin catalog: a pyiceberg SQL catalog in the Feast registry's database whose entries point at
a lake table's metadata file for one snapshot. Feast's IcebergSource reads through it, so what Feast
sees is exactly the pinned snapshot. Pins are catalog rows only: dropping one never touches the lake.

Next to each pin the materialization keeps small records (what it materialized, what the quality gate
rejected) as namespace properties, so the operator reads the outcome from the system itself rather
than from a workload's log that may be gone.

pyiceberg (and SQLAlchemy, through its SQL catalog) is imported by the functions that open the pin
catalog, not with the module: only FeatureSets and their materializations need it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from loom.domain.feature_views import PIN_CATALOG, PinRef
from loom.drivers.host import out_of_process

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table


class SnapshotNotPinnable(Exception):
    """No metadata file of the table has that snapshot as its current one (expired or unknown)."""


def snapshot_metadata_location(table: Table, snapshot_id: int) -> str:
    """The metadata file whose current snapshot is `snapshot_id`: the table's own when it is
    current, else the newest earlier one from the metadata log that has it."""
    from pyiceberg.serializers import FromInputFile

    if table.metadata.current_snapshot_id == snapshot_id:
        return table.metadata_location
    for entry in reversed(table.metadata.metadata_log):
        metadata = FromInputFile.table_metadata(table.io.new_input(entry.metadata_file))
        if metadata.current_snapshot_id == snapshot_id:
            return entry.metadata_file
    raise SnapshotNotPinnable(
        f"no metadata file of {'.'.join(table.name())} has snapshot {snapshot_id} as its current snapshot"
    )


def open_pin_catalog(pin: PinRef) -> Catalog:
    """The same catalog Feast's IcebergSource opens for this source."""
    from pyiceberg.catalog import load_catalog

    return load_catalog(PIN_CATALOG, **pin.catalog_properties())


def pinned_snapshot(pin: PinRef) -> int | None:
    """The snapshot Feast currently reads through this pin (None before the first materialization)."""
    from pyiceberg.exceptions import NoSuchTableError

    try:
        return open_pin_catalog(pin).load_table(pin.identifier).metadata.current_snapshot_id
    except NoSuchTableError:
        return None


def move(pin: PinRef, metadata_location: str) -> None:
    """Point the pin at a metadata file. Only the materialization of the owning FeatureSet moves a
    pin (one run at a time), so drop-then-register needs no transaction across the two."""
    from pyiceberg.exceptions import NoSuchTableError

    catalog = open_pin_catalog(pin)
    catalog.create_namespace_if_not_exists(pin.namespace)
    try:
        current = catalog.load_table(pin.identifier)
    except NoSuchTableError:
        current = None
    if current is not None:
        if current.metadata_location == metadata_location:
            return
        catalog.drop_table(pin.identifier)
    catalog.register_table(pin.identifier, metadata_location)


@out_of_process()
def drop(pin: PinRef) -> bool:
    """Remove the pin's catalog row (the SQL catalog's drop never deletes files)."""
    from pyiceberg.exceptions import NoSuchTableError

    try:
        open_pin_catalog(pin).drop_table(pin.identifier)
    except NoSuchTableError:
        return False
    return True


def _record_key(pin: PinRef, kind: str) -> str:
    key = f"{pin.table}.{kind}"
    if len(key) <= 255:  # the SQL catalog's property_key column
        return key
    return f"{hashlib.sha256(pin.table.encode()).hexdigest()[:32]}.{kind}"


def write_record(pin: PinRef, kind: str, record: Mapping[str, Any]) -> None:
    """Keep a small JSON record next to the pin (a namespace property of the pin catalog), so what
    was materialized or rejected survives the workload that did it."""
    text = json.dumps(record, separators=(",", ":"), sort_keys=True)
    if len(text) > 1000:  # the SQL catalog's property_value column
        raise ValueError(f"record {kind} is {len(text)} characters; at most 1000 fit")
    catalog = open_pin_catalog(pin)
    catalog.create_namespace_if_not_exists(pin.namespace)
    catalog.update_namespace_properties(pin.namespace, updates={_record_key(pin, kind): text})


@out_of_process()
def read_records(pin: PinRef) -> dict[str, dict[str, Any]]:
    """Every record kept for this pin, by kind (empty before the first materialization)."""
    from pyiceberg.exceptions import NoSuchNamespaceError

    try:
        props = open_pin_catalog(pin).load_namespace_properties(pin.namespace)
    except NoSuchNamespaceError:
        return {}
    prefix = _record_key(pin, "")
    return {key[len(prefix) :]: json.loads(value) for key, value in props.items() if key.startswith(prefix)}


@out_of_process()
def remove_records(pin: PinRef, kinds: Iterable[str]) -> None:
    from pyiceberg.exceptions import NoSuchNamespaceError

    catalog = open_pin_catalog(pin)
    try:
        present = catalog.load_namespace_properties(pin.namespace)
    except NoSuchNamespaceError:
        return
    keys = {_record_key(pin, kind) for kind in kinds} & set(present)
    if keys:
        catalog.update_namespace_properties(pin.namespace, removals=keys)
