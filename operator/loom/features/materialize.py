"""One materialization of a FeatureSet: quality gate on the snapshot, pin it, write the newest row
per entity of the event-time window the snapshot added to the online store, and a record of the
outcome next to the pin.

The gate runs before anything moves: a rejected snapshot leaves the pin, the registry and the online
store exactly as they were. The window starts at the earliest event time the new snapshot appended
(see `drivers/feast_snapshots.py` for why Feast's `materialize_incremental` cannot be used for lake
data that arrives late) and ends now. A Redis online store is written by Loom's own writer in Feast's
layout (`drivers/feast_redis_writer.py`: the same bytes as Feast's `materialize`, several times
faster, without importing Feast), with the view read from Feast's registry; a SQLite one by Feast's
`materialize`. Either way the newest row per entity within the window is written, over what was there
(so pinning an older snapshot brings its values back). Unlike Feast's `materialize`, the Redis path
records no materialization interval in the registry: Loom keeps its own record next to the pin."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from loom.domain.feature_views import FeatureViewDefinition, pin_env_name
from loom.domain.materialization import ONLINE_CONNECTION_ENV, MaterializeRequest
from loom.drivers import feast_internals, feast_pins, feast_redis_writer, feast_store
from loom.drivers.feast_internals import RegisteredLayout
from loom.drivers.feast_snapshots import NewestRows, changes_since, scan_batches
from loom.drivers.feast_store import DefinitionConflict, OnlineKind, StoreSettings
from loom.drivers.iceberg_catalog import open_catalog
from loom.features.quality import Profiler, QualityReport, evaluate

# Feast's offline stores filter `ts >= start`; this is "from the beginning" for any real data.
BEGINNING = datetime(1900, 1, 1, tzinfo=timezone.utc)
MATERIALIZED = "materialized"
REJECTED = "rejected"


class StaleRequest(Exception):
    """The registry holds a different definition than the one this run was planned for."""


def store_settings(request: MaterializeRequest) -> StoreSettings:
    """The request's store, with the online connection from its environment variable when the
    operator left it out (it lives in a Secret)."""
    settings = StoreSettings.from_json(request.store)
    if not settings.online_connection and ONLINE_CONNECTION_ENV in os.environ:
        return StoreSettings(settings.project, settings.registry_uri, settings.online_kind,
                             os.environ[ONLINE_CONNECTION_ENV])
    return settings


def lake_properties(request: MaterializeRequest) -> dict[str, str]:
    """The lake catalog's properties, with the Secret's keys from their environment variables."""
    secret = {key: os.environ[pin_env_name(key)] for key in request.lake_secret_keys}
    return {**request.lake_catalog, **secret}


@dataclass(frozen=True)
class MaterializeResult:
    definition: FeatureViewDefinition
    snapshot_id: int
    previous_snapshot_id: int | None
    quality: QualityReport
    rows_written: int
    duration_seconds: float
    window_start: datetime | None
    window_end: datetime
    online_row_count: int | None

    @property
    def passed(self) -> bool:
        return self.quality.passed

    @property
    def rows_per_second(self) -> float:
        """Rows written over the whole run (gate, pin, write, count), as a caller timing it sees it."""
        return self.rows_written / self.duration_seconds if self.duration_seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "status": "Succeeded" if self.passed else "QualityCheckFailed",
            "featureSet": self.definition.owner,
            "featureViewVersion": self.definition.version,
            "snapshotId": self.snapshot_id,
            "previousSnapshotId": self.previous_snapshot_id,
            "rowsWritten": self.rows_written,
            "durationSeconds": round(self.duration_seconds, 3),
            "rowsPerSecond": round(self.rows_per_second, 1),
            "windowStart": self.window_start.isoformat() if self.window_start else None,
            "windowEnd": self.window_end.isoformat(),
            "onlineRowCount": self.online_row_count,
            "quality": self.quality.to_json(),
        }

    def record(self) -> dict[str, Any]:
        """The compact form kept next to the pin (at most 1000 characters)."""
        base = {"version": self.definition.version, "snapshot": self.snapshot_id, "time": self.window_end.isoformat()}
        if not self.passed:
            return {**base, "failures": self.quality.summary()[:700]}
        return {**base, "rows": self.rows_written, "durationSeconds": round(self.duration_seconds, 3),
                "onlineRows": self.online_row_count, "quality": self.quality.summary()[:400]}


def run(request: MaterializeRequest, now: datetime | None = None) -> MaterializeResult:
    started = time.monotonic()
    now = now or datetime.now(timezone.utc)
    definition, settings = request.feature_view(), store_settings(request)
    source = definition.source
    registered = _registered(settings, definition)
    held = registered.version if isinstance(registered, RegisteredLayout) else registered
    if held != definition.version:
        raise StaleRequest(
            f"the registry holds version {held} of {definition.name}, this run was planned for {definition.version}"
        )

    table = open_catalog(request.lake_catalog_name, lake_properties(request)).load_table(request.lake_table)
    changes = changes_since(table, request.snapshot_id, request.previous_snapshot_id, source.timestamp_field)
    start = changes.earliest_event if not changes.everything and changes.earliest_event else BEGINNING
    nothing_new = not changes.everything and changes.added_files == 0

    created = [source.created_timestamp_field] if source.created_timestamp_field else []
    columns = list(dict.fromkeys([*definition.join_keys, source.timestamp_field, *created, *definition.feature_names]))
    profiler = Profiler(definition.feature_names, source.timestamp_field)
    with tempfile.TemporaryDirectory(prefix="loom-materialize-") as spill, NewestRows(spill) as newest:
        snapshot = profiler.watching(scan_batches(table, request.snapshot_id, columns))
        if nothing_new:
            for _ in snapshot:  # the gate still judges the whole snapshot
                pass
        else:  # one pass: the gate's profile and the newest row per entity of the window
            newest.load(snapshot, definition.join_keys, source.timestamp_field, source.created_timestamp_field,
                        start, now)
        report = evaluate(profiler.result(), request.quality, now)

        def result(rows: int, online: int | None) -> MaterializeResult:
            return MaterializeResult(definition, request.snapshot_id, request.previous_snapshot_id, report, rows,
                                     time.monotonic() - started, None if nothing_new else start, now, online)

        if not report.passed:
            rejected = result(0, None)
            feast_pins.write_record(source.pin, REJECTED, rejected.record())
            return rejected

        feast_pins.move(source.pin, feast_pins.snapshot_metadata_location(table, request.snapshot_id))
        written, online = 0, None
        if isinstance(registered, RegisteredLayout):
            client = feast_redis_writer.open_client(settings.online_connection)
            if registered.online and newest.count:
                layout = registered.layout
                writer = feast_redis_writer.RedisWriter(client, layout, source.timestamp_field)
                print(f"Materializing {definition.name} from {start.isoformat()} to {now.isoformat()} "
                      "into the redis online store", file=sys.stderr, flush=True)  # progress, as Feast's
                names = [k for k, _ in layout.join_keys] + [source.timestamp_field] + [f for f, _ in layout.features]
                written = writer.write(newest.batches(list(dict.fromkeys(names))))
            online = feast_redis_writer.online_row_count(client, registered.layout) if registered.online else None
        elif definition.online:
            if newest.count:
                store = feast_store.open_store(settings)
                with contextlib.redirect_stdout(sys.stderr):  # Feast prints progress; stdout carries the result
                    store.materialize(start_date=start, end_date=now, feature_views=[definition.name])
                written = newest.count
            online = feast_store.online_row_count(settings, definition)
    done = result(written, online)
    feast_pins.write_record(source.pin, MATERIALIZED, done.record())
    feast_pins.remove_records(source.pin, [REJECTED])
    return done


def _registered(settings: StoreSettings, definition: FeatureViewDefinition) -> RegisteredLayout | str | None:
    """What the registry holds for the view: for Redis its layout, read without Feast (the version
    is in it); otherwise the version, through Feast."""
    if settings.online_kind is not OnlineKind.REDIS:
        return feast_store.applied_version(settings, definition)
    registered = feast_internals.registered_layout(settings.sqlalchemy_uri, settings.project, definition.name)
    if registered is not None and registered.owner != definition.owner:
        raise DefinitionConflict(f'feature view "{definition.name}" in project "{definition.project}" belongs to '
                                 f"{registered.owner or 'someone else'}")
    return registered
