"""One table, one owner. A table belongs to the DataLake recorded on it (`drivers.iceberg_owner`):
that DataLake alone creates, evolves, ingests into, maintains and (under `deletionPolicy: Delete`)
drops it. Any other DataLake declaring the same table leaves it untouched and reports
`TableOwnedElsewhere` naming the owner, as Argo CD reports a resource another Application tracks
instead of syncing it, and as a Crossplane claim cannot bind a resource bound to another claim.

A declaring DataLake adopts the table (records itself in the commit that also applies its plan) when:

- the table records no owner: created before Loom recorded owners, or by another tool;
- its recorded owner no longer exists: no DataLake of that namespace and name has the recorded uid
  (it was deleted with `deletionPolicy: Retain`, or deleted and created again: a new object, like a
  Kubernetes owner reference, is not the old owner).

An owner that exists is never displaced, even while it is being deleted (its finalizer may still drop
the table), and neither is one that cannot be read (an API error, a namespace the operator may not
read): the table is left alone and the lookup is retried after the backoff. Removing or changing the
two properties by hand is how a table is handed to another DataLake while its owner lives.

Two DataLakes adopting the same unowned table at the same moment both commit, since Iceberg commits
cannot require a property's value; the last record stands and the other lake leaves the table alone
from its next reconcile."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from loom.api.datalake import Table
from loom.drivers.iceberg_lake import LoadedTable
from loom.drivers.iceberg_owner import TableOwner, owner_properties
from loom.services.datalake.actions import Adoption
from loom.services.datalake.observe import DataLakeObserved, OwnerSeen

OWNED_ELSEWHERE = "TableOwnedElsewhere"


@dataclass(frozen=True)
class Foreign:
    """A declared table another DataLake owns. `unknown`: whether that owner exists could not be read,
    so the lookup is retried after the backoff."""

    owner: TableOwner
    message: str
    unknown: bool = False


def me(observed: DataLakeObserved) -> TableOwner:
    """This DataLake as a table's owner."""
    return TableOwner(observed.namespace, observed.owner.name, observed.owner.uid)


def owned(table: Table, owner: TableOwner) -> Table:
    """The declared table with the properties that record `owner`; a declared value for those keys
    does not count (ownership is Loom's record, not a setting)."""
    return table.model_copy(update={"properties": {**table.properties, **owner_properties(owner)}})


def claim(name: str, seen: LoadedTable, owner: TableOwner, owners: Mapping[str, OwnerSeen]) -> Foreign | Adoption | None:
    """Whose an existing table is: None when `owner` owns it, an Adoption when `owner` takes it (the
    table records no owner, or one that is gone), Foreign when another DataLake keeps it."""
    recorded = seen.owner
    if recorded is None:
        return Adoption(None)
    if recorded.uid == owner.uid:
        return None
    found = owners.get(recorded.uid, OwnerSeen(None, f"DataLake {recorded} was not looked up"))
    if found.exists is False:
        return Adoption(recorded)
    if found.exists is None:
        return Foreign(recorded, f"table {name} belongs to DataLake {recorded}, which cannot be read "
                                 f"({found.error}); the table is left untouched", unknown=True)
    return Foreign(recorded, f"table {name} belongs to DataLake {recorded}; this DataLake leaves it untouched "
                             "while that one exists")
