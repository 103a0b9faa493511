"""Cleaning up after a deleted DataLake: its workloads (ingests, maintenance) always go, by the owner
label, whatever else fails; its tables are dropped only under `deletionPolicy: Delete`, only when
the DataLake ever got a status (a lake that never reconciled never created anything), and only the
tables that record this DataLake as their owner (another lake's table, or one never adopted, stays)."""

from __future__ import annotations

from loom.api.datalake import DataLakeSpec
from loom.api.kinds import DATALAKE
from loom.api.meta import DeletionPolicy
from loom.builders.labels import owned_by
from loom.domain.errors import error_name
from loom.services.context import ReconcileContext
from loom.services.datalake.act import drop
from loom.services.datalake.decide import deletion
from loom.services.datalake.session import Session, open_session
from loom.services.deletion import Cleanup, Left, remove_workloads


def delete(spec: DataLakeSpec | None, ctx: ReconcileContext) -> Cleanup:
    """One attempt; `spec` is None when it is invalid (then nothing but workloads can exist)."""
    cleanup = remove_workloads(ctx.executor, ctx.namespace, owned_by(DATALAKE.kind, ctx.name))
    if spec is None or not ctx.status:
        return cleanup
    if spec.deletion_policy != DeletionPolicy.DELETE:  # Retain: the tables are the user's
        return cleanup
    with open_session(spec, ctx.kube, ctx.namespace) as session:
        if session.failure is not None:
            return cleanup + Cleanup(left=(_tables_left(spec, [t.name for t in spec.tables], session.failure.message),))
        try:
            owned = _owned(spec, session, ctx.uid)
        except Exception as error:  # re-described without the original, whose text may quote a credential
            reason = session.redact(f"{error_name(error)}: {error}")
            return cleanup + Cleanup(left=(_tables_left(spec, [t.name for t in spec.tables], reason),))
        dropped = drop(deletion(spec, owned), session)
        removed = tuple(f"table {spec.namespace}.{t}" for t in dropped.tables)
        if not dropped.error:
            return cleanup + Cleanup(removed)
        reason = session.redact(dropped.error)  # the original's text may quote a credential
        if dropped.stopped_at is None:
            left = Left(f"namespace {spec.namespace} in catalog {spec.catalog.name}", reason)
            return cleanup + Cleanup(removed, (left,))
        names = [t.name for t in spec.tables if t.name in owned]  # in the order they were dropped
        rest = names[names.index(dropped.stopped_at):]
        return cleanup + Cleanup(removed, (_tables_left(spec, rest, reason),))


def _owned(spec: DataLakeSpec, session: Session, uid: str) -> set[str]:
    """The declared tables that exist and record this DataLake (by uid) as their owner."""
    read = session.read([table.name for table in spec.tables])
    if read.errors:
        raise RuntimeError("; ".join(f"table {name}: {error}" for name, error in read.errors.items()))
    owned = set()
    for name, loaded in read.tables.items():
        owner = loaded.owner if loaded is not None else None
        if owner is not None and owner.uid == uid:
            owned.add(name)
    return owned


def _tables_left(spec: DataLakeSpec, tables: list[str], reason: str) -> Left:
    """The tables `deletionPolicy: Delete` could not drop, and how to drop them by hand."""
    names = ", ".join(f"{spec.namespace}.{t}" for t in tables)
    how = "; drop them with pyiceberg: " + ", ".join(
        f"catalog.purge_table({spec.namespace + '.' + t!r})" for t in tables)
    return Left(f"tables {names} in catalog {spec.catalog.name}", reason[:240] + how)
