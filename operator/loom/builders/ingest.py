"""The workload of one `spec.ingest[]` entry of a DataLake: the ingest component, run once per version
of the entry or on its cron schedule.

Its name carries a hash of everything it runs with (table, source, mode, catalog), so a changed ingest
is a new workload and the old one is removed; the same spec always builds the same workload."""

from __future__ import annotations

from loom.api.datalake import DataLakeSpec, Ingest, IngestMode, SourceFormat
from loom.builders.lake_access import CATALOG_FILE_ARGS, SCHEDULED_RUN_TTL_SECONDS, LakeRef, catalog_access
from loom.domain.workloads import Workload, digest, dns_name

COMPONENT = "ingest"


def workload(spec: DataLakeSpec, ingest: Ingest, lake: LakeRef) -> Workload:
    """The ingest component run for one ingest; catalog credentials stay in the catalog's Secret."""
    access = catalog_access(spec, lake)
    args = (
        *access.args,
        "--table", f"{spec.namespace}.{ingest.table}",
        "--ingest", ingest.name,
        "--format", SourceFormat(ingest.source.format).value,
        "--uri", ingest.source.uri,
        "--mode", IngestMode(ingest.mode).value,
    )
    return Workload(
        name=dns_name(f"{lake.owner.name}-ingest-{ingest.name}", digest(access.properties, *args)),
        namespace=lake.namespace,
        component=COMPONENT,
        args=(*CATALOG_FILE_ARGS, *args),
        files=access.files,
        secret_env=access.secret_env,
        owner=lake.owner,
        labels=lake.labels,
        schedule=ingest.schedule,
        ttl_seconds_after_finished=SCHEDULED_RUN_TTL_SECONDS if ingest.schedule else None,
    )
