"""Reads of Iceberg catalog namespaces that the other drivers do not offer (their writes are in
`iceberg_tables`: ensure_namespace, drop_namespace_if_empty)."""

from __future__ import annotations

from pyiceberg.catalog import Catalog as IcebergCatalog


def namespace_exists(catalog: IcebergCatalog, namespace: str) -> bool:
    return catalog.namespace_exists(namespace)
