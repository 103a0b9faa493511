"""Opening an Iceberg catalog from a DataLake's `spec.catalog` (shared by the operator and by the
ingest/maintenance processes, which receive the same property dict)."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import unquote, urlparse

from pyiceberg.catalog import Catalog as IcebergCatalog
from pyiceberg.catalog import load_catalog

from loom.api.datalake import Catalog, CatalogType

SQLITE_PREFIXES = ("sqlite:///", "sqlite+pysqlite:///")
# How workloads receive the non-secret catalog properties (a JSON object).
PROPERTIES_ENV = "LOOM_CATALOG_PROPERTIES"


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
    if properties.get("type") == "sql":
        for directory in _local_dirs(properties):
            directory.mkdir(parents=True, exist_ok=True)
    return load_catalog(name, **dict(properties))


def add_catalog_arguments(parser: argparse.ArgumentParser) -> None:
    """The catalog options every lake workload takes (ingest, maintain, ...)."""
    parser.add_argument("--catalog-name", default="default", help="catalog name, as pyiceberg's load_catalog takes it")
    parser.add_argument("--catalog-properties-file", type=Path,
                        help=f"JSON object of catalog properties (else ${PROPERTIES_ENV})")
    parser.add_argument("--secret-property", action="append", default=[], metavar="KEY=ENV",
                        help="a catalog property whose value is in environment variable ENV (repeatable)")


def workload_properties(path: Path | None, secret_properties: Iterable[str]) -> dict[str, str]:
    """A workload's catalog properties: the JSON object in $LOOM_CATALOG_PROPERTIES (or a file), plus each
    KEY=ENV whose value sits in an environment variable filled from the catalog's Secret, so that
    credentials never appear on a command line."""
    text = path.read_text() if path else os.environ.get(PROPERTIES_ENV)
    if not text:
        raise SystemExit(f"catalog properties are needed: --catalog-properties-file or ${PROPERTIES_ENV}")
    loaded = json.loads(text)
    if not isinstance(loaded, dict):
        raise SystemExit("catalog properties must be a JSON object")
    properties = {str(k): str(v) for k, v in loaded.items()}
    for item in secret_properties:
        key, _, env = item.partition("=")
        if not key or env not in os.environ:
            raise SystemExit(f"--secret-property {item}: expected KEY=ENV with ENV set")
        properties[key] = os.environ[env]
    return properties
