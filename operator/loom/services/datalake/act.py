"""Carrying out a DataLake's actions through the Iceberg drivers and the executor, and nothing else.
What an action leaves behind is reported on the decided outcome: a table's state after it was created
or evolved, an Event for each change, and for an action that failed (an external system: the catalog,
the Kubernetes API) the condition it belongs to turns False with the redacted error and the reconcile
is retried after `dependency_retry_seconds`. The catalog actions (namespace, creations, evolutions)
go to the catalog as one call, which reports each table's result, so a failure still names its table."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from loom.api.datalake import TableStatus
from loom.domain.errors import error_name
from loom.domain.outcome import Decision, Observed, Outcome
from loom.drivers import iceberg_tables as tables
from loom.drivers.iceberg_lake import Dropped, Evolution, LakeWritten, NewTable
from loom.services.context import ReconcileContext
from loom.services.datalake.actions import (
    Action,
    CreateNamespace,
    CreateTable,
    DeleteWorkload,
    Deletion,
    DropNamespaceIfEmpty,
    DropTable,
    EvolveTable,
    SubmitWorkload,
    events,
)
from loom.services.datalake.decide import CATALOG_READY, FAILURE_REASONS, TABLES_READY, table_fields
from loom.services.datalake.session import Session

log = logging.getLogger(__name__)


class CatalogWriteError(RuntimeError):
    """A catalog change the driver reported as failed, with the catalog's message."""


CREATED_MEANWHILE = "created by another writer meanwhile; planning again against it"
CatalogAction = CreateNamespace | CreateTable | EvolveTable


def act(decision: Decision[Action], ctx: ReconcileContext, session: Session) -> Outcome:
    written = _write(decision.actions, session)
    done: list[Action] = []
    states: dict[str, tables.TableState] = {}
    failures: dict[str, list[str]] = {}
    failed_tables: set[str] = set()
    for action in decision.actions:
        if isinstance(action, SubmitWorkload) and action.table in failed_tables:
            failures.setdefault(action.condition, []).append(
                f"{action.workload.name} not submitted: table {action.table} could not be created")
            continue
        try:
            if isinstance(action, CatalogAction):
                changed, state = _written(action, written)
            else:
                changed, state = _carry_out(action, ctx), None
        except Exception as error:
            message = f"{_subject(action)}: {session.redact(error)}"
            log.warning("%s/%s: %s", ctx.namespace, ctx.name, message)
            failures.setdefault(_condition(action), []).append(message)
            if isinstance(action, CreateTable):
                failed_tables.add(action.table.name)
            continue
        if changed:
            done.append(action)
        if state is not None:
            states[state.name] = state
    return _report(decision.outcome, session.namespace, done, states, failures, ctx.config.dependency_retry_seconds)


def drop(deletions: Sequence[Deletion], session: Session) -> Dropped:
    """Carry out a deletion as one call; a call that failed as a whole (the catalog cannot be opened)
    stopped at the first table."""
    names = [action.name for action in deletions if isinstance(action, DropTable)]
    try:
        return session.drop(names, any(isinstance(action, DropNamespaceIfEmpty) for action in deletions))
    except Exception as error:
        return Dropped(error=f"{error_name(error)}: {error}", stopped_at=names[0] if names else None)


def _write(actions: Sequence[Action], session: Session) -> LakeWritten | Exception:
    """The catalog actions as one driver call, in their order; the error that failed the call itself
    (the catalog cannot be opened), which then fails each of them."""
    changes: list[NewTable | Evolution] = []
    create_namespace = False
    try:
        for action in actions:
            if isinstance(action, CreateNamespace):
                create_namespace = True
            elif isinstance(action, CreateTable):
                changes.append(NewTable(action.table.name, tuple(action.table.columns), action.changes))
            elif isinstance(action, EvolveTable):
                changes.append(session.evolution(action.name, action.changes))
        if not create_namespace and not changes:
            return LakeWritten()
        return session.write(create_namespace, changes)
    except Exception as error:
        return error


def _written(action: CatalogAction, written: LakeWritten | Exception) -> tuple[bool, tables.TableState | None]:
    """What the driver reported for one catalog action: whether it changed something (for its Event)
    and the table's state after it; raises its failure."""
    if isinstance(written, Exception):
        raise written
    if isinstance(action, CreateNamespace):
        if written.namespace_error:
            raise CatalogWriteError(written.namespace_error)
        return written.namespace_created, None
    result = written.tables[action.table.name if isinstance(action, CreateTable) else action.name]
    if result.error:
        raise CatalogWriteError(result.error)
    if isinstance(action, CreateTable) and not result.created:
        raise CatalogWriteError(CREATED_MEANWHILE)
    assert result.table is not None
    return True, result.table.state


def _carry_out(action: SubmitWorkload | DeleteWorkload, ctx: ReconcileContext) -> bool:
    """One workload action; it changes nothing the Events report."""
    if isinstance(action, SubmitWorkload):
        ctx.executor.submit(action.workload)
    else:
        ctx.executor.delete(action.namespace, action.name)
    return False


def _subject(action: Action) -> str:
    if isinstance(action, CreateNamespace):
        return f"namespace {action.namespace}"
    if isinstance(action, CreateTable):
        return f"table {action.table.name}"
    if isinstance(action, EvolveTable):
        return f"table {action.name}"
    if isinstance(action, SubmitWorkload):
        return f"{action.workload.name} cannot start"
    return f"{action.name} cannot be removed"


def _condition(action: Action) -> str:
    if isinstance(action, CreateNamespace):
        return CATALOG_READY
    if isinstance(action, CreateTable | EvolveTable):
        return TABLES_READY
    return action.condition


def _report(outcome: Outcome, namespace: str, done: Sequence[Action], states: dict[str, tables.TableState],
            failures: dict[str, list[str]], retry_seconds: float) -> Outcome:
    conditions = list(outcome.conditions)
    for type_, messages in failures.items():
        failed = Observed(type_, False, FAILURE_REASONS[type_], "; ".join(messages))
        index = next((i for i, c in enumerate(conditions) if c.type == type_), None)
        if index is None:
            conditions.append(failed)
        else:
            conditions[index] = failed
    fields: dict[str, Any] = dict(outcome.fields)
    if states:
        rows: list[TableStatus] = fields.get("tables", [])
        fields["tables"] = [row.model_copy(update=table_fields(states[row.name])) if row.name in states else row
                            for row in rows]
    if TABLES_READY in failures:
        fields.pop("table_count", None)  # unknown while a table action failed
    return replace(
        outcome,
        conditions=tuple(conditions),
        fields=fields,
        events=(*outcome.events, *events(namespace, done)),
        retry_after=retry_seconds if failures else outcome.retry_after,
    )

