"""The maintenance workloads of a DataLake: snapshot expiry and compaction of every declared table, each
a scheduled run of the maintain component.

A workload's name carries a hash of its schedule and of everything it runs with, so a changed schedule
or setting is a new workload and the old one is removed."""

from __future__ import annotations

from loom.api.datalake import CompactionEngine, DataLakeSpec
from loom.builders.lake_access import LakeRef, lake_workload
from loom.domain.workloads import Workload

COMPONENT = "maintain"
EXPIRE = "expire"
COMPACT = "compact"


def workloads(spec: DataLakeSpec, lake: LakeRef) -> dict[str, Workload]:
    """One scheduled workload per configured action (expire, compact), by action; none when no
    maintenance is declared."""
    tables = tuple(a for t in spec.tables for a in ("--table", f"{spec.namespace}.{t.name}"))
    actions: dict[str, tuple[str, tuple[str, ...]]] = {}
    if (expire := spec.maintenance.expire_snapshots) is not None:
        actions[EXPIRE] = (expire.schedule, ("--older-than", expire.older_than, "--retain-last", str(expire.retain_last)))
    if (compact := spec.maintenance.compaction) is not None:
        actions[COMPACT] = (compact.schedule, ("--engine", CompactionEngine(compact.engine).value,
                                               "--target-file-size-bytes", str(compact.target_file_size_bytes)))
    return {
        action: lake_workload(spec, lake, COMPONENT, f"{lake.owner.name}-{action}", (*tables, action, *options),
                              schedule, name_parts=(schedule,))
        for action, (schedule, options) in actions.items()
    }
