"""What a FeatureSet sees of its DataLake (the view whose change nudges it): its own table's snapshot,
schema and existence and the catalog's reachability; nothing of the lake's other tables."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from loom.handlers.links import lake_table

FEATURESET = {"source": {"dataLakeRef": {"name": "movielens", "table": "user_features"}}}


def lake() -> dict[str, Any]:
    return {
        "metadata": {"name": "movielens", "generation": 3},
        "spec": {"catalog": {"type": "sql", "uri": "sqlite:///c.db"}, "namespace": "movielens",
                 "tables": [{"name": "user_features", "columns": [{"name": "userId", "type": "long"}]},
                            {"name": "ratings", "columns": [{"name": "userId", "type": "long"}]}]},
        "status": {
            "conditions": [{"type": "CatalogReady", "status": "True", "reason": "Connected"},
                           {"type": "SchemaCompatible", "status": "True", "reason": "Compatible"},
                           {"type": "Ready", "status": "True", "reason": "Ready"}],
            "tables": [{"name": "user_features", "currentSnapshotId": 11, "schemaId": 0, "rowCount": 10,
                        "lastIngest": {"files": 1}},
                       {"name": "ratings", "currentSnapshotId": 5, "schemaId": 0, "rowCount": 100}],
        },
    }


def own(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda obj: obj["status"]["tables"][0].update({field: value})


def other(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda obj: obj["status"]["tables"][1].update({field: value})


def refuse_other_edit(obj: dict[str, Any]) -> None:
    obj["metadata"]["generation"] = 4
    obj["spec"]["tables"][1]["columns"][0]["type"] = "int"
    obj["status"]["conditions"][1:] = [
        {"type": "SchemaCompatible", "status": "False", "reason": "SchemaChangeRefused", "message": "table ratings"},
        {"type": "Ready", "status": "False", "reason": "SchemaChangeRefused"}]


def catalog_down(obj: dict[str, Any]) -> None:
    obj["status"]["conditions"][0]["status"] = "False"


def undeclare(obj: dict[str, Any]) -> None:
    del obj["spec"]["tables"][0]


@pytest.mark.parametrize(("change", "nudged"), [
    (own("currentSnapshotId", 12), True),
    (own("schemaId", 1), True),
    (lambda obj: obj["status"]["tables"].pop(0), True),  # the table is not reported (any more)
    (catalog_down, True),
    (undeclare, True),
    (own("rowCount", 20), False),
    (own("lastIngest", {"files": 2}), False),
    (other("currentSnapshotId", 6), False),
    (other("schemaId", 1), False),
    (refuse_other_edit, False),
], ids=["own snapshot", "own schema", "own table gone", "catalog unreachable", "table undeclared",
        "own row count", "own ingest record", "other snapshot", "other schema", "other table's edit refused"])
def test_only_the_featuresets_own_table_nudges_it(change: Callable[[dict[str, Any]], None], nudged: bool) -> None:
    before = lake()
    after = copy.deepcopy(before)
    change(after)
    assert (lake_table(after, FEATURESET) != lake_table(before, FEATURESET)) is nudged
