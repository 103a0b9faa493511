"""Opening an Iceberg catalog from a DataLake's `spec.catalog` (shared by the operator and by the
ingest/maintenance processes, which receive the same property dict; how they receive it on their
command line is `loom.workload_args`).

pyiceberg is imported when a catalog is opened, not with the module: TrainingJobs and FeatureSets
only need the property dict, and an operator without DataLakes never loads pyiceberg."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from loom.api.datalake import Catalog, CatalogType

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog as IcebergCatalog

SQLITE_PREFIXES = ("sqlite:///", "sqlite+pysqlite:///")
FSSPEC_FILE_IO = "pyiceberg.io.fsspec.FsspecFileIO"


def catalog_properties(catalog: Catalog, secret: Mapping[str, str]) -> dict[str, str]:
    """The property dict `load_catalog` takes: type, uri, warehouse, extra properties, then the
    Secret's keys (credentials win over anything written in the spec)."""
    props: dict[str, str] = {"type": CatalogType(catalog.type).value}
    if catalog.uri:
        props["uri"] = catalog.uri
    if catalog.warehouse:
        props["warehouse"] = catalog.warehouse
    props.update(catalog.properties)
    props.update(secret)
    return props


def for_metadata(properties: Mapping[str, str]) -> dict[str, str]:
    """The properties for a process that reads and writes table metadata only (the operator; the
    workloads write the data): a local warehouse goes through fsspec's FileIO, where pyiceberg would
    pick pyarrow's, whose import brings pyarrow, numpy and pandas (about 120 MiB) into the process for
    JSON and Avro files. A `py-io-impl` among the properties wins."""
    if "py-io-impl" in properties or not properties.get("warehouse", "").startswith("file://"):
        return dict(properties)
    return {**properties, "py-io-impl": FSSPEC_FILE_IO}


def _local_dirs(properties: Mapping[str, str]) -> list[Path]:
    """Directories a SQL catalog needs on local disk: the file:// warehouse and the SQLite parent
    directory (SQLAlchemy creates the database file, but not the directory it lives in)."""
    dirs: list[Path] = []
    warehouse = properties.get("warehouse", "")
    if warehouse.startswith("file://"):
        dirs.append(Path(unquote(urlparse(warehouse).path)))
    uri = properties.get("uri", "")
    for prefix in SQLITE_PREFIXES:
        if uri.startswith(prefix):
            path = uri[len(prefix) :].split("?", 1)[0]
            if path and path != ":memory:":
                dirs.append(Path(path).parent)
    return dirs


def open_catalog(name: str, properties: Mapping[str, str]) -> IcebergCatalog:
    """A pyiceberg catalog for these properties; for sql catalogs the local directories are made first."""
    from pyiceberg.catalog import load_catalog

    if properties.get("type") == "sql":
        for directory in _local_dirs(properties):
            directory.mkdir(parents=True, exist_ok=True)
    return load_catalog(name, **dict(properties))

