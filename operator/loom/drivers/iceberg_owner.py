"""Which DataLake owns an Iceberg table, recorded on the table itself: `loom.dev/owner` holds the
DataLake's `<namespace>/<name>` and `loom.dev/owner-uid` its uid. The record travels with the table
(every catalog client sees it, whichever Kubernetes cluster or namespace the DataLake lives in), and
it is written in the same commit that creates or adopts the table.

The uid tells one DataLake from a later one of the same name, as Kubernetes owner references do: a
DataLake deleted and created again is a new object and no longer matches the record."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

OWNER = "loom.dev/owner"
OWNER_UID = "loom.dev/owner-uid"


@dataclass(frozen=True)
class TableOwner:
    namespace: str
    name: str
    uid: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def recorded_owner(properties: Mapping[str, str]) -> TableOwner | None:
    """The owner a table's properties record; None when they record none, or only half of one (the
    pair is written together, so a partial record is someone's hand edit and names no DataLake)."""
    owner, uid = properties.get(OWNER, ""), properties.get(OWNER_UID, "")
    namespace, _, name = owner.partition("/")
    if not (namespace and name and uid):
        return None
    return TableOwner(namespace, name, uid)


def owner_properties(owner: TableOwner) -> dict[str, str]:
    """The table properties that record `owner`."""
    return {OWNER: str(owner), OWNER_UID: owner.uid}
