"""The DataLake's ingestion step: keep one workload per `spec.ingest[]` entry, report how its runs went
(`Ingested`) and each table's last ingest commit (`lastIngest`, read from the table's own record).

A workload's name carries a hash of everything it runs with (table, source, mode, catalog), so a
changed ingest is a new workload and the old one is removed; an unchanged one is submitted again on
every reconcile, which the executors make idempotent. An ingest without a schedule runs once per
version of its spec; a failed once-run is retried after RETRY_FAILED_SECONDS (retries are safe: the
component commits each file exactly once). A scheduled ingest is a CronJob, or for the local executor a
schedule that this reconcile drives: it asks to be called again at the next tick. Exactly-once lives in
the component, so a duplicate or overlapping run can cost time but never data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from loom.api.datalake import DataLakeSpec, Ingest, IngestMode, LastIngest, SourceFormat
from loom.drivers import ingest_record
from loom.drivers.iceberg_catalog import catalog_properties
from loom.executors.base import (
    Executor,
    OwnerRef,
    Phase,
    SecretEnv,
    Workload,
    WorkloadStatus,
    digest,
    dns_name,
    next_tick,
)
from loom.services.status import Observed

INGESTED = "Ingested"
COMPONENT = "ingest"
DATALAKE_LABEL = "loom.dev/datalake"
TASK_LABEL = "loom.dev/task"
INGEST_LABEL = "loom.dev/ingest"
PROPERTIES_ENV = "LOOM_CATALOG_PROPERTIES"
SECRET_ENV = "LOOM_CATALOG_SECRET_{}"
# How often to look at a run that is still going (nothing notifies the operator when it ends).
POLL_SECONDS = 10.0
RETRY_FAILED_SECONDS = 300.0
# Runs of a schedule are disposable: their outcome is in the table and in the condition.
SCHEDULED_RUN_TTL_SECONDS = 86400


@dataclass(frozen=True)
class IngestReport:
    conditions: tuple[Observed, ...]
    last_ingest: Mapping[str, LastIngest]  # by table name
    retry_after: float | None


@dataclass(frozen=True)
class _State:
    """One ingest's verdict: True done/healthy, False failed, None in progress."""

    status: bool | None
    message: str
    retry_after: float | None = None


def workload(
    spec: DataLakeSpec, ingest: Ingest, namespace: str, lake: str, owner: OwnerRef, secret_keys: Sequence[str]
) -> Workload:
    """The ingest component run for one ingest; catalog credentials stay in the catalog's Secret."""
    properties = json.dumps(catalog_properties(spec.catalog, {}), sort_keys=True)
    ref = spec.catalog.secret_ref
    secret_env = tuple(
        SecretEnv(SECRET_ENV.format(i), ref.name, key) for i, key in enumerate(sorted(secret_keys))
    ) if ref is not None else ()
    args = (
        "--catalog-name", spec.catalog.name,
        "--table", f"{spec.namespace}.{ingest.table}",
        "--ingest", ingest.name,
        "--format", SourceFormat(ingest.source.format).value,
        "--uri", ingest.source.uri,
        "--mode", IngestMode(ingest.mode).value,
        *(a for s in secret_env for a in ("--secret-property", f"{s.key}={s.name}")),
    )
    return Workload(
        name=dns_name(f"{lake}-ingest-{ingest.name}", digest(properties, *args)),
        namespace=namespace,
        component=COMPONENT,
        args=args,
        env={PROPERTIES_ENV: properties},
        secret_env=secret_env,
        owner=owner,
        labels={DATALAKE_LABEL: lake, TASK_LABEL: COMPONENT, INGEST_LABEL: ingest.name},
        schedule=ingest.schedule,
        ttl_seconds_after_finished=SCHEDULED_RUN_TTL_SECONDS if ingest.schedule else None,
    )


def _failure(ingest: Ingest, run: WorkloadStatus) -> str:
    return run.message or f"ingest {ingest.name} failed (run {run.name}, exit code {run.exit_code})"


def _once(executor: Executor, work: Workload, ingest: Ingest, now: datetime) -> _State:
    runs = executor.runs(work.namespace, work.name)
    if not runs:
        executor.submit(work)
        return _State(None, f"ingest {ingest.name} started", POLL_SECONDS)
    run = runs[0]
    if not run.finished:
        return _State(None, f"ingest {ingest.name} is {run.phase.value.lower()}", POLL_SECONDS)
    if run.phase == Phase.SUCCEEDED:
        return _State(True, f"ingest {ingest.name} succeeded")
    waited = max(0.0, (now - (run.finished_at or now)).total_seconds())  # clocks of other hosts may run ahead
    if waited >= RETRY_FAILED_SECONDS:
        executor.delete(work.namespace, work.name)
        executor.submit(work)
        return _State(False, f"{_failure(ingest, run)} (retrying now)", POLL_SECONDS)
    return _State(False, f"{_failure(ingest, run)} (retry in {RETRY_FAILED_SECONDS - waited:.0f}s)",
                  RETRY_FAILED_SECONDS - waited)


def _scheduled(executor: Executor, work: Workload, ingest: Ingest, now: datetime) -> _State:
    assert work.schedule is not None
    executor.submit(work)
    runs = executor.runs(work.namespace, work.name)
    active = any(not r.finished for r in runs)
    until_tick = max(1.0, (next_tick(work.schedule, now) - now).total_seconds() + 1)
    retry = POLL_SECONDS if active else until_tick
    last = next((r for r in runs if r.finished), None)
    if last is None:
        if active:
            return _State(None, f"ingest {ingest.name}: first scheduled run in progress", retry)
        return _State(True, f"ingest {ingest.name} scheduled ({work.schedule})", retry)
    if last.phase == Phase.FAILED:
        return _State(False, _failure(ingest, last), retry)
    return _State(True, f"ingest {ingest.name}: last scheduled run succeeded", retry)


def _condition(states: Mapping[str, _State]) -> Observed:
    failed = [s.message for s in states.values() if s.status is False]
    if failed:
        return Observed(INGESTED, False, "IngestFailed", "; ".join(failed))
    going = [s.message for s in states.values() if s.status is None]
    if going:
        return Observed(INGESTED, None, "Ingesting", "; ".join(going))
    return Observed(INGESTED, True, "Ingested", "; ".join(s.message for s in states.values()))


def reconcile(
    spec: DataLakeSpec,
    namespace: str,
    name: str,
    owner: OwnerRef,
    executor: Executor,
    table_properties: Mapping[str, Mapping[str, str]],
    secret_keys: Sequence[str] = (),
    now: datetime | None = None,
) -> IngestReport:
    """`table_properties`: the Iceberg properties of the spec's tables that exist (by table name);
    `secret_keys`: the keys of the catalog Secret that join the catalog properties (never values)."""
    now = now or datetime.now(timezone.utc)
    desired = {ingest.name: workload(spec, ingest, namespace, name, owner, secret_keys) for ingest in spec.ingest}
    wanted = {w.name for w in desired.values()}
    for stale in executor.names(namespace, {DATALAKE_LABEL: name, TASK_LABEL: COMPONENT}) - wanted:
        executor.delete(namespace, stale)

    states: dict[str, _State] = {}
    for ingest in spec.ingest:
        work = desired[ingest.name]
        if ingest.table not in table_properties:
            states[ingest.name] = _State(None, f"ingest {ingest.name} waits for table {ingest.table}", POLL_SECONDS)
            continue
        try:
            step = _scheduled if ingest.schedule else _once
            states[ingest.name] = step(executor, work, ingest, now)
        except LookupError as error:  # a missing Secret key, image or interpreter: fixable config
            states[ingest.name] = _State(False, f"ingest {ingest.name} cannot start: {error}", POLL_SECONDS * 6)

    last: dict[str, LastIngest] = {}
    for ingest in spec.ingest:
        found = ingest_record.last_ingest(table_properties.get(ingest.table, {}), ingest.name)
        if found is not None and (ingest.table not in last or found.time > last[ingest.table].time):
            last[ingest.table] = found
    retries = [s.retry_after for s in states.values() if s.retry_after is not None]
    conditions = (_condition(states),) if states else ()  # no ingest declared: nothing to report
    return IngestReport(conditions, last, min(retries) if retries else None)
