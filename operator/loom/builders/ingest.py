"""The workload of one `spec.ingest[]` entry of a DataLake: the ingest component, run once per version
of the entry or on its cron schedule.

Its name carries a hash of everything it runs with (table, source, mode, catalog), so a changed ingest
is a new workload and the old one is removed; the same spec always builds the same workload."""

from __future__ import annotations

from loom.api.datalake import DataLakeSpec, Ingest, IngestMode, SourceFormat
from loom.builders.lake_access import LakeRef, lake_workload
from loom.domain.workloads import Workload

COMPONENT = "ingest"


def workload(spec: DataLakeSpec, ingest: Ingest, lake: LakeRef) -> Workload:
    """The ingest component run for one ingest; catalog credentials stay in the catalog's Secret."""
    args = (
        "--table", f"{spec.namespace}.{ingest.table}",
        "--ingest", ingest.name,
        "--format", SourceFormat(ingest.source.format).value,
        "--uri", ingest.source.uri,
        "--mode", IngestMode(ingest.mode).value,
    )
    return lake_workload(spec, lake, COMPONENT, f"{lake.owner.name}-ingest-{ingest.name}", args, ingest.schedule)
