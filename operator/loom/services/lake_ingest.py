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
from loom.domain.outcome import Observed
from loom.domain.schedules import next_tick
from loom.domain.workloads import OwnerRef, Phase, SecretEnv, Workload, WorkloadStatus, digest, dns_name
from loom.drivers import ingest_record
from loom.drivers.iceberg_catalog import catalog_properties
from loom.executors.base import Executor

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
class State:
    """One ingest's verdict: True done/healthy, False failed, None in progress."""

    status: bool | None
    message: str
    retry_after: float | None = None


@dataclass(frozen=True)
class CatalogAccess:
    """How a lake workload reaches the catalog: plain properties in an env var, each credential from
    the catalog's Secret into an env var of its own, named on the command line only by that variable."""

    env: Mapping[str, str]
    secret_env: tuple[SecretEnv, ...]
    args: tuple[str, ...]


def catalog_access(spec: DataLakeSpec, secret_keys: Sequence[str]) -> CatalogAccess:
    properties = json.dumps(catalog_properties(spec.catalog, {}), sort_keys=True)
    ref = spec.catalog.secret_ref
    secret_env = tuple(
        SecretEnv(SECRET_ENV.format(i), ref.name, key) for i, key in enumerate(sorted(secret_keys))
    ) if ref is not None else ()
    args = (
        "--catalog-name", spec.catalog.name,
        *(a for s in secret_env for a in ("--secret-property", f"{s.key}={s.name}")),
    )
    return CatalogAccess({PROPERTIES_ENV: properties}, secret_env, args)


def workload(
    spec: DataLakeSpec, ingest: Ingest, namespace: str, lake: str, owner: OwnerRef, secret_keys: Sequence[str]
) -> Workload:
    """The ingest component run for one ingest; catalog credentials stay in the catalog's Secret."""
    access = catalog_access(spec, secret_keys)
    args = (
        *access.args,
        "--table", f"{spec.namespace}.{ingest.table}",
        "--ingest", ingest.name,
        "--format", SourceFormat(ingest.source.format).value,
        "--uri", ingest.source.uri,
        "--mode", IngestMode(ingest.mode).value,
    )
    return Workload(
        name=dns_name(f"{lake}-ingest-{ingest.name}", digest(access.env[PROPERTIES_ENV], *args)),
        namespace=namespace,
        component=COMPONENT,
        args=args,
        env=access.env,
        secret_env=access.secret_env,
        owner=owner,
        labels={DATALAKE_LABEL: lake, TASK_LABEL: COMPONENT, INGEST_LABEL: ingest.name},
        schedule=ingest.schedule,
        ttl_seconds_after_finished=SCHEDULED_RUN_TTL_SECONDS if ingest.schedule else None,
    )


def _failure(what: str, run: WorkloadStatus) -> str:
    return run.message or f"{what} failed (run {run.name}, exit code {run.exit_code})"


def _once(executor: Executor, work: Workload, ingest: Ingest, now: datetime) -> State:
    runs = executor.runs(work.namespace, work.name)
    if not runs:
        executor.submit(work)
        return State(None, f"ingest {ingest.name} started", POLL_SECONDS)
    run = runs[0]
    if not run.finished:
        return State(None, f"ingest {ingest.name} is {run.phase.value.lower()}", POLL_SECONDS)
    if run.phase == Phase.SUCCEEDED:
        return State(True, f"ingest {ingest.name} succeeded")
    waited = max(0.0, (now - (run.finished_at or now)).total_seconds())  # clocks of other hosts may run ahead
    if waited >= RETRY_FAILED_SECONDS:
        executor.delete(work.namespace, work.name)
        executor.submit(work)
        return State(False, f"{_failure(f'ingest {ingest.name}', run)} (retrying now)", POLL_SECONDS)
    return State(False, f"{_failure(f'ingest {ingest.name}', run)} (retry in {RETRY_FAILED_SECONDS - waited:.0f}s)",
                  RETRY_FAILED_SECONDS - waited)


def scheduled(executor: Executor, work: Workload, what: str, now: datetime) -> State:
    """Keep a cron workload in place and judge it by its newest finished run; for the local executor
    the returned retry brings the reconcile back at the next tick, which is what starts that run."""
    assert work.schedule is not None
    executor.submit(work)
    runs = executor.runs(work.namespace, work.name)
    active = any(not r.finished for r in runs)
    until_tick = max(1.0, (next_tick(work.schedule, now) - now).total_seconds() + 1)
    retry = POLL_SECONDS if active else until_tick
    last = next((r for r in runs if r.finished), None)
    if last is None:
        if active:
            return State(None, f"{what}: first scheduled run in progress", retry)
        return State(True, f"{what} scheduled ({work.schedule})", retry)
    if last.phase == Phase.FAILED:
        return State(False, _failure(what, last), retry)
    return State(True, f"{what}: last scheduled run succeeded", retry)


def summarize(type_: str, states: Mapping[str, State], reasons: tuple[str, str, str]) -> Observed:
    """One condition over several workloads: any failure wins, then anything still running; `reasons`
    are the (failed, in progress, fine) reasons."""
    failed, going, fine = reasons
    failures = [s.message for s in states.values() if s.status is False]
    if failures:
        return Observed(type_, False, failed, "; ".join(failures))
    running = [s.message for s in states.values() if s.status is None]
    if running:
        return Observed(type_, None, going, "; ".join(running))
    return Observed(type_, True, fine, "; ".join(s.message for s in states.values()))


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

    states: dict[str, State] = {}
    for ingest in spec.ingest:
        work = desired[ingest.name]
        if ingest.table not in table_properties:
            states[ingest.name] = State(None, f"ingest {ingest.name} waits for table {ingest.table}", POLL_SECONDS)
            continue
        try:
            if ingest.schedule:
                states[ingest.name] = scheduled(executor, work, f"ingest {ingest.name}", now)
            else:
                states[ingest.name] = _once(executor, work, ingest, now)
        except LookupError as error:  # a missing Secret key, image or interpreter: fixable config
            states[ingest.name] = State(False, f"ingest {ingest.name} cannot start: {error}", POLL_SECONDS * 6)

    last: dict[str, LastIngest] = {}
    for ingest in spec.ingest:
        found = ingest_record.last_ingest(table_properties.get(ingest.table, {}), ingest.name)
        if found is not None and (ingest.table not in last or found.time > last[ingest.table].time):
            last[ingest.table] = found
    retries = [s.retry_after for s in states.values() if s.retry_after is not None]
    conditions = (summarize(INGESTED, states, ("IngestFailed", "Ingesting", "Ingested")),) if states else ()  # no ingest declared: nothing to report
    return IngestReport(conditions, last, min(retries) if retries else None)
