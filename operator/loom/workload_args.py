"""Command-line arguments the workloads share: which catalog to open and its properties (the lake
components, components/ingest and components/maintain), and where a file argument is (every component
that reads its input from a file). This is the command-line layer, so a bad argument ends the process
with a message (SystemExit), as argparse does."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable
from pathlib import Path

from loom.domain.workload_contract import FILES_ENV

# The non-secret catalog properties as a JSON object, for running a component by hand; workloads get
# them as a file (--catalog-properties-file), which no limit on the environment's size applies to.
PROPERTIES_ENV = "LOOM_CATALOG_PROPERTIES"


def workload_file(path: str | Path) -> Path:
    """A file argument: a relative path is one of the workload's files, in $LOOM_WORKLOAD_FILES (as the
    executors deliver them); without that variable, and for an absolute path, the path as given."""
    path = Path(path)
    directory = os.environ.get(FILES_ENV)
    return Path(directory) / path if directory and not path.is_absolute() else path


def add_catalog_arguments(parser: argparse.ArgumentParser) -> None:
    """The catalog options every lake workload takes (ingest, maintain, ...)."""
    parser.add_argument("--catalog-name", default="default", help="catalog name, as pyiceberg's load_catalog takes it")
    parser.add_argument("--catalog-properties-file", type=workload_file,
                        help=f"JSON object of catalog properties; a relative path is in ${FILES_ENV} "
                             f"(else ${PROPERTIES_ENV})")
    parser.add_argument("--secret-property", action="append", default=[], metavar="KEY=ENV",
                        help="a catalog property whose value is in environment variable ENV (repeatable)")


def workload_properties(path: Path | None, secret_properties: Iterable[str]) -> dict[str, str]:
    """A workload's catalog properties: the JSON object in a file (or $LOOM_CATALOG_PROPERTIES), plus each
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
