"""What a DataLake's decision asks its act step to do, as typed values, and the Kubernetes Events that
report the ones that changed something."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from loom.api.datalake import Table
from loom.domain.outcome import Event
from loom.domain.table_changes import TableChanges
from loom.domain.workloads import Workload
from loom.drivers.iceberg_owner import OWNER, OWNER_UID, TableOwner


@dataclass(frozen=True)
class CreateNamespace:
    namespace: str


@dataclass(frozen=True)
class CreateTable:
    """Create a declared table with the layout of its creation plan. `recreated`: the status had it
    before, so it was dropped behind Loom's back and comes back empty (a Warning says so)."""

    table: Table
    changes: TableChanges
    recreated: bool = False


@dataclass(frozen=True)
class Adoption:
    """This DataLake takes a table over: one that recorded no owner (`previous` None) or whose
    recorded owner no longer exists."""

    previous: TableOwner | None


@dataclass(frozen=True)
class EvolveTable:
    """Apply a safe plan to the table as observed, in one commit; an adoption records the new owner in
    that same commit (its properties are among `changes`)."""

    name: str
    changes: TableChanges
    adoption: Adoption | None = None


@dataclass(frozen=True)
class SubmitWorkload:
    """Ensure the workload exists (the executor starts a once-run, or keeps the schedule). `condition`
    reports a failure to submit; `table` is the table it writes, not submitted if creating that failed."""

    workload: Workload
    condition: str
    table: str | None = None


@dataclass(frozen=True)
class DeleteWorkload:
    """Remove a workload this lake no longer declares (a changed or removed ingest or maintenance)."""

    namespace: str
    name: str
    condition: str


@dataclass(frozen=True)
class DropTable:
    name: str


@dataclass(frozen=True)
class DropNamespaceIfEmpty:
    namespace: str


Action = CreateNamespace | CreateTable | EvolveTable | SubmitWorkload | DeleteWorkload
Deletion = DropTable | DropNamespaceIfEmpty


def events(namespace: str, done: Sequence[Action]) -> tuple[Event, ...]:
    """Events for the actions that changed the catalog: the namespace, the new tables in one Event, each
    recreated table as a Warning, each evolved table with its changes."""
    out: list[Event] = []
    if any(isinstance(a, CreateNamespace) for a in done):
        out.append(Event("Normal", "NamespaceCreated", f"created namespace {namespace}"))
    created = [a.table.name for a in done if isinstance(a, CreateTable) and not a.recreated]
    if created:
        out.append(Event("Normal", "TablesCreated", f"created in {namespace}: " + ", ".join(created)))
    for action in done:
        if isinstance(action, CreateTable) and action.recreated:
            out.append(Event(
                "Warning", "TableRecreated",
                f"table {namespace}.{action.table.name} was missing from the catalog (dropped outside Loom); "
                "recreated it empty",
            ))
        elif isinstance(action, EvolveTable):
            out.extend(_evolved(namespace, action))
    return tuple(out)


def _evolved(namespace: str, action: EvolveTable) -> list[Event]:
    """An adoption, then the table's other changes (the owner record is not one of them)."""
    out = []
    if action.adoption is not None:
        previous = action.adoption.previous
        why = f"its owner DataLake {previous} no longer exists" if previous else "it recorded no owner"
        out.append(Event("Normal", "TableAdopted", f"table {namespace}.{action.name}: adopted, {why}"))
    rest = {k: v for k, v in action.changes.properties.items() if k not in (OWNER, OWNER_UID)}
    changes = replace(action.changes, properties=rest)
    if changes:
        out.append(Event("Normal", "TableEvolved", f"table {namespace}.{action.name}: " + "; ".join(changes.describe())))
    return out
