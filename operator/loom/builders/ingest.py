"""The workload of one `spec.ingest[]` entry of a DataLake: the ingest component, run once per version
of the entry or on its cron schedule.

Its name carries a hash of everything it runs with (table, source, mode, catalog), so a changed ingest
is a new workload and the old one is removed; the same spec always builds the same workload. Settings at
their defaults add no argument, so an ingest that does not set them keeps its workload (and its name)."""

from __future__ import annotations

from loom.api.datalake import DataLakeSpec, Ingest, IngestEngine, IngestMode, SourceFormat
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
        *(() if ingest.zero_copy else ("--no-zero-copy",)),
        *(("--engine", IngestEngine(ingest.engine).value) if ingest.engine != IngestEngine.PYICEBERG else ()),
    )
    return lake_workload(spec, lake, COMPONENT, f"{lake.owner.name}-ingest-{ingest.name}", args, ingest.schedule)
