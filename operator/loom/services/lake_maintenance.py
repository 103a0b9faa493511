"""The DataLake's maintenance step: snapshot expiry and compaction as scheduled workloads of the
`maintain` component (CronJobs in a cluster, scheduled local runs in the embedded default), reported as
the `Maintained` condition.

Like ingests, a workload's name carries a hash of everything it runs with, so a changed schedule or
setting replaces the workload and a removed one is deleted; the component itself never expires the
current snapshot, and a compaction that loses a race with a writer changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from loom.api.datalake import CompactionEngine, DataLakeSpec
from loom.domain.outcome import Observed
from loom.domain.workloads import OwnerRef, Workload, digest, dns_name
from loom.executors.base import Executor
from loom.services.lake_ingest import (
    DATALAKE_LABEL,
    PROPERTIES_ENV,
    SCHEDULED_RUN_TTL_SECONDS,
    TASK_LABEL,
    State,
    catalog_access,
    scheduled,
    summarize,
)

MAINTAINED = "Maintained"
COMPONENT = "maintain"
ACTION_LABEL = "loom.dev/maintenance"
DESCRIPTIONS = {"expire": "snapshot expiry", "compact": "compaction"}


def workloads(
    spec: DataLakeSpec, namespace: str, lake: str, owner: OwnerRef, secret_keys: Sequence[str]
) -> dict[str, Workload]:
    """One scheduled workload per configured action (expire, compact), over all declared tables."""
    access = catalog_access(spec, secret_keys)
    tables = tuple(a for t in spec.tables for a in ("--table", f"{spec.namespace}.{t.name}"))
    actions: dict[str, tuple[str, tuple[str, ...]]] = {}
    if (expire := spec.maintenance.expire_snapshots) is not None:
        actions["expire"] = (expire.schedule, ("--older-than", expire.older_than, "--retain-last", str(expire.retain_last)))
    if (compact := spec.maintenance.compaction) is not None:
        actions["compact"] = (compact.schedule, ("--engine", CompactionEngine(compact.engine).value,
                                                 "--target-file-size-bytes", str(compact.target_file_size_bytes)))
    out = {}
    for action, (schedule, options) in actions.items():
        args = (*access.args, *tables, action, *options)
        out[action] = Workload(
            name=dns_name(f"{lake}-{action}", digest(access.env[PROPERTIES_ENV], schedule, *args)),
            namespace=namespace,
            component=COMPONENT,
            args=args,
            env=access.env,
            secret_env=access.secret_env,
            owner=owner,
            labels={DATALAKE_LABEL: lake, TASK_LABEL: COMPONENT, ACTION_LABEL: action},
            schedule=schedule,
            ttl_seconds_after_finished=SCHEDULED_RUN_TTL_SECONDS,
        )
    return out


def reconcile(
    spec: DataLakeSpec,
    namespace: str,
    name: str,
    owner: OwnerRef,
    executor: Executor,
    secret_keys: Sequence[str] = (),
    now: datetime | None = None,
) -> tuple[tuple[Observed, ...], float | None]:
    """Conditions (none when no maintenance is declared) and when to look again."""
    now = now or datetime.now(timezone.utc)
    desired = workloads(spec, namespace, name, owner, secret_keys)
    wanted = {w.name for w in desired.values()}
    for stale in executor.names(namespace, {DATALAKE_LABEL: name, TASK_LABEL: COMPONENT}) - wanted:
        executor.delete(namespace, stale)
    states: dict[str, State] = {}
    for action, work in desired.items():
        try:
            states[action] = scheduled(executor, work, DESCRIPTIONS[action], now)
        except LookupError as error:  # a missing image or interpreter: fixable configuration
            states[action] = State(False, f"{DESCRIPTIONS[action]} cannot start: {error}", 60.0)
    if not states:
        return (), None
    retries = [s.retry_after for s in states.values() if s.retry_after is not None]
    summary = summarize(MAINTAINED, states, ("MaintenanceFailed", "Maintaining", "Scheduled"))
    return (summary,), min(retries) if retries else None
