"""pyiceberg's and Feast's private names are used in exactly one module per library
(drivers/pyiceberg_internals.py, drivers/feast_internals.py), whose integration tests pin the
behaviour Loom relies on. Anywhere else in the operator, the components or the benchmarks, a private
import or attribute fails here with its file and line."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT

SCANNED = ("operator/loom", "components", "bench")
INTERNALS = {"operator/loom/drivers/pyiceberg_internals.py", "operator/loom/drivers/feast_internals.py"}
LIBRARIES = {"pyiceberg", "feast"}
# Private attributes of pyiceberg and Feast objects Loom has needed; the owner of `tx._updates` is not
# known without types, so these names are refused on any object.
PRIVATE_ATTRIBUTES = {
    "_requirements",
    "_updates",
    "_get_client",
    "_mmh3",
    "_redis_key",
    "_redis_key_prefix",
    "_dataframe_to_data_files",
}


def _library(module: str | None) -> bool:
    return module is not None and module.split(".", 1)[0] in LIBRARIES


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def violations(source: str) -> Iterator[tuple[int, str]]:
    """(line, what) for every use of a private pyiceberg or Feast name in this module's source."""
    tree = ast.parse(source)
    library_aliases: set[str] = set()  # local names bound to pyiceberg/feast modules or objects
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _library(alias.name):
                    library_aliases.add(alias.asname or alias.name.split(".", 1)[0])
                    if any(_private(part) for part in alias.name.split(".")):
                        yield node.lineno, f"import {alias.name}"
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _library(node.module):
            assert node.module is not None
            if any(_private(part) for part in node.module.split(".")):
                yield node.lineno, f"from {node.module} import ..."
            for alias in node.names:
                library_aliases.add(alias.asname or alias.name)
                if _private(alias.name):
                    yield node.lineno, f"from {node.module} import {alias.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            on_library = isinstance(node.value, ast.Name) and node.value.id in library_aliases
            if node.attr in PRIVATE_ATTRIBUTES or (on_library and _private(node.attr)):
                yield node.lineno, f".{node.attr}"
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"getattr", "setattr", "hasattr"}
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in PRIVATE_ATTRIBUTES
        ):
            yield node.lineno, f"{node.func.id}(..., {node.args[1].value!r})"


def _sources() -> Iterator[Path]:
    for top in SCANNED:
        yield from sorted((ROOT / top).rglob("*.py"))


def test_private_library_names_stay_in_the_internals_modules() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path in _sources()
        if path.relative_to(ROOT).as_posix() not in INTERNALS
        for line, what in violations(path.read_text())
    ]
    assert not found, "private pyiceberg/Feast API outside drivers/*_internals.py:\n" + "\n".join(found)


def test_the_internals_modules_are_scanned_and_do_use_private_names() -> None:
    """The exemption is needed: each internals module holds what the scan refuses elsewhere."""
    scanned = {path.relative_to(ROOT).as_posix() for path in _sources()}
    assert INTERNALS <= scanned
    for module in INTERNALS:
        assert list(violations((ROOT / module).read_text())), module


def test_the_scan_finds_each_kind_of_use() -> None:
    source = "\n".join([
        "from pyiceberg.io.pyarrow import ArrowScan, _dataframe_to_data_files",  # 1
        "from feast.infra.online_stores.helpers import _mmh3 as hash_field",  # 2
        "import feast.infra._private",  # 3
        "from pyiceberg.table._internal import something",  # 4
        "requirements = (*tx._requirements, extra)",  # 5
        "catalog.commit_table(table, requirements, tx._updates)",  # 6
        "client = RedisOnlineStore()._get_client(config)",  # 7
        "import pyiceberg.io.pyarrow as pio",  # 8
        "pio._to_requested_schema(x)",  # 9
        "getattr(store, '_redis_key_prefix')",  # 10
        "from loom.drivers.feast_internals import redis_client",  # 11: public, Loom's own
        "self._client = redis_client(config)",  # 12: Loom's own private attribute
        "from feast import FeatureStore; FeatureStore.__name__",  # 13: dunder
    ])
    assert sorted(line for line, _ in violations(source)) == [1, 2, 3, 4, 5, 6, 7, 9, 10]
