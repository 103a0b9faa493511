"""One reconcile's hold on the catalog: the Secret read once, the catalog opened once and closed at the
end, each table loaded at most once (observe loads it, act changes that same object, so a change is
committed against exactly the metadata it was planned from), and a redactor that keeps the Secret's
values out of every message that leaves the operator. The catalog is opened `for_metadata`: the
operator writes no data, so a local warehouse needs no pyarrow in its process."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loom.api.datalake import DataLakeSpec
from loom.domain.errors import SecretNotFoundError
from loom.drivers import iceberg_tables as tables
from loom.drivers.iceberg_catalog import catalog_properties, for_metadata, open_catalog
from loom.drivers.kube import Kube

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog as IcebergCatalog
    from pyiceberg.table import Table as IcebergTable

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
    """The open catalog of one DataLake (or why there is none) and the tables loaded from it."""

    def __init__(self, namespace: str, redact: Redactor, secret_keys: tuple[str, ...] = (),
                 catalog: IcebergCatalog | None = None, failure: Unreachable | None = None) -> None:
        self.namespace = namespace
        self.redact = redact
        self.secret_keys = secret_keys
        self._catalog = catalog
        self.failure = failure
        self._tables: dict[str, IcebergTable | None] = {}

    @property
    def catalog(self) -> IcebergCatalog:
        if self._catalog is None:
            raise RuntimeError(f"the catalog is not open: {self.failure}")
        return self._catalog

    def table(self, name: str) -> IcebergTable | None:
        """The table as loaded the first time it was asked for in this session; None if it does not exist."""
        if name not in self._tables:
            self._tables[name] = tables.load_table(self.catalog, self.namespace, name)
        return self._tables[name]

    def created(self, name: str, table: IcebergTable) -> None:
        self._tables[name] = table


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
    """A session on the DataLake's catalog; one whose `failure` says why the Secret or the catalog could
    not be reached instead of raising."""
    try:
        secret = read_secret(spec, kube, namespace)
    except SecretNotFoundError as error:
        yield Session(spec.namespace, Redactor({}), failure=Unreachable(SECRET_NOT_FOUND, str(error)))
        return
    except Exception as error:  # the API server failed or refused: nothing here to redact yet
        yield Session(spec.namespace, Redactor({}), failure=Unreachable(SECRET_UNREADABLE, str(error)))
        return
    redact = Redactor(secret)
    keys = tuple(sorted(secret))
    try:
        catalog = open_catalog(spec.catalog.name, for_metadata(catalog_properties(spec.catalog, secret)))
    except Exception as error:  # unreachable database, bad URI, missing driver: all reported alike
        yield Session(spec.namespace, redact, keys, failure=Unreachable(CATALOG_UNAVAILABLE, redact(error)))
        return
    try:
        yield Session(spec.namespace, redact, keys, catalog)
    finally:
        catalog.close()
