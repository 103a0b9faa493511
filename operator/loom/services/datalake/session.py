"""One reconcile's hold on the catalog: the Secret read once, the catalog's properties built once, each
table read at most once (observe reads them, act evolves a table against exactly the metadata it was
planned from), and a redactor that keeps the Secret's values out of every message that leaves the
operator. The catalog work itself is done by whole calls of `drivers/iceberg_lake` (in the driver
helper once it is started): one read for observe, one write for all of act's catalog changes, each
opening the catalog `for_metadata`: the operator writes no data, so a
local warehouse needs no pyarrow in the process that opens it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from loom.api.datalake import DataLakeSpec
from loom.domain.errors import SecretNotFoundError
from loom.domain.table_changes import TableChanges
from loom.drivers import iceberg_lake as lake
from loom.drivers.iceberg_catalog import catalog_properties, for_metadata
from loom.drivers.iceberg_lake import Dropped, Evolution, LakeRead, LakeWritten, LoadedTable, NewTable
from loom.drivers.kube import Kube

SECRET_NOT_FOUND = "SecretNotFound"
SECRET_UNREADABLE = "SecretUnreadable"
CATALOG_UNAVAILABLE = "CatalogUnavailable"


class Redactor:
    """Replaces the Secret's values in a message (exception texts can quote a URI with a password);
    built from the Secret alone, so that plain words such as the catalog type stay readable."""

    def __init__(self, secret: Mapping[str, str]) -> None:
        self.values = sorted((v for v in secret.values() if v), key=len, reverse=True)

    def __call__(self, text: object) -> str:
        message = str(text)
        for value in self.values:
            message = message.replace(value, "***")
        return message


@dataclass(frozen=True)
class Unreachable:
    """An external system that could not be read: the condition reason, and what it said (redacted)."""

    reason: str
    message: str


class Session:
    """The catalog of one DataLake (or why it cannot be reached) and the tables read from it."""

    def __init__(self, namespace: str, redact: Redactor, secret_keys: tuple[str, ...] = (),
                 catalog: tuple[str, Mapping[str, str]] | None = None, failure: Unreachable | None = None) -> None:
        self.namespace = namespace
        self.redact = redact
        self.secret_keys = secret_keys
        self._catalog = catalog
        self.failure = failure
        self._tables: dict[str, LoadedTable | None] = {}

    @property
    def catalog(self) -> tuple[str, Mapping[str, str]]:
        """The catalog's name and properties."""
        if self._catalog is None:
            raise RuntimeError(f"the catalog cannot be reached: {self.failure}")
        return self._catalog

    def read(self, names: Sequence[str]) -> LakeRead:
        """The namespace and the named tables, remembered for `table` and `evolve`."""
        found = lake.read(*self.catalog, self.namespace, tuple(names))
        self._tables.update(found.tables)
        return found

    def table(self, name: str) -> LoadedTable | None:
        """The table as read the first time it was asked for in this session; None if it does not exist."""
        if name not in self._tables:
            found = self.read([name])
            if name in found.errors:
                raise RuntimeError(found.errors[name])
        return self._tables[name]

    def evolution(self, name: str, changes: TableChanges) -> Evolution:
        """A plan for a table, bound to the metadata this session read it with."""
        current = self.table(name)
        assert current is not None, "only tables read in this session are evolved"
        return Evolution(name, current.state.metadata_location, changes)

    def write(self, create_namespace: bool, changes: Sequence[NewTable | Evolution]) -> LakeWritten:
        """The namespace if asked, then the tables' creations and evolutions in one call; the tables
        written are remembered as they are now."""
        written = lake.write(*self.catalog, self.namespace, create_namespace, tuple(changes))
        self._tables.update({name: t.table for name, t in written.tables.items() if t.table is not None})
        return written

    def drop(self, names: Sequence[str], namespace_if_empty: bool) -> Dropped:
        return lake.drop(*self.catalog, self.namespace, tuple(names), namespace_if_empty)


def read_secret(spec: DataLakeSpec, kube: Kube, namespace: str) -> dict[str, str]:
    """The Secret keys that join the catalog properties (one key when `secretRef.key` is set)."""
    ref = spec.catalog.secret_ref
    if ref is None:
        return {}
    values = kube.get_secret(namespace, ref.name)
    if ref.key is None:
        return values
    if ref.key not in values:
        raise SecretNotFoundError(f"Secret {namespace}/{ref.name} has no key {ref.key!r}")
    return {ref.key: values[ref.key]}


@contextmanager
def open_session(spec: DataLakeSpec, kube: Kube, namespace: str) -> Iterator[Session]:
    """A session on the DataLake's catalog; one whose `failure` says why the Secret could not be read
    instead of raising (an unreachable catalog fails the session's first call)."""
    try:
        secret = read_secret(spec, kube, namespace)
    except SecretNotFoundError as error:
        yield Session(spec.namespace, Redactor({}), failure=Unreachable(SECRET_NOT_FOUND, str(error)))
        return
    except Exception as error:  # the API server failed or refused: nothing here to redact yet
        yield Session(spec.namespace, Redactor({}), failure=Unreachable(SECRET_UNREADABLE, str(error)))
        return
    properties = for_metadata(catalog_properties(spec.catalog, secret))
    yield Session(spec.namespace, Redactor(secret), tuple(sorted(secret)), (spec.catalog.name, properties))
