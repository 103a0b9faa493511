"""A FeatureSet depends on its own lake table, not on the whole DataLake: through the real API server
and the operator, a new snapshot of one table brings back (within seconds, by the DataLake watch and
the FeatureSets-by-DataLake index, no timer) exactly the FeatureSets reading that table, and they
keep materializing while an edit of another table of the lake is refused."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from tests.integration.conftest import Kubectl, Operator, condition, eventually
from tests.integration.features.conftest import (
    USER_FEATURE_COLUMNS,
    append,
    conditions,
    datalake,
    featureset,
    lake_properties,
    lake_snapshot,
    wait_lake_ready,
)

TABLES = ("user_features", "user_features_copy")


def ready(kc: Kubectl, name: str, snapshot: int) -> dict[str, Any]:
    obj = kc.get("featureset", name)
    assert obj.get("status", {}).get("sourceSnapshotId") == snapshot, obj.get("status")
    assert conditions(obj).get("Ready") == ("True", "Ready"), obj.get("status")
    return obj


def test_a_new_snapshot_brings_back_only_the_featuresets_of_its_table(
    feast_env: str, kc: Kubectl, namespace: str, operator: Operator, movielens: list[pa.Table], tmp_path: Path,
) -> None:
    lake = datalake(tmp_path, TABLES)
    props = lake_properties(lake)
    kc.apply(lake)
    wait_lake_ready(kc)
    first, second = movielens
    a1 = append(kc, props, first, "a1", table="user_features")
    b1 = append(kc, props, first, "b1", table="user_features_copy")
    kc.apply(featureset("reads-a", table="user_features"))
    kc.apply(featureset("reads-b", table="user_features_copy"))
    eventually(lambda: ready(kc, "reads-a", a1), timeout=180, what="reads-a materialized")
    eventually(lambda: ready(kc, "reads-b", b1), timeout=180, what="reads-b materialized")

    # An unsafe edit of the other table (narrowing long -> int) is refused: the DataLake is not Ready.
    narrowed = [dict(c, type="int") if c["name"] == "ratingCount" else c for c in USER_FEATURE_COLUMNS]
    tables = [{"name": "user_features", "columns": USER_FEATURE_COLUMNS},
              {"name": "user_features_copy", "columns": narrowed}]
    kc.run("patch", "datalake", "movielens", "--type=merge", "-p", json.dumps({"spec": {"tables": tables}}))
    eventually(lambda: conditions(kc.get("datalake", "movielens")).get("SchemaCompatible", ("",))[0] == "False",
               timeout=60, what="the DataLake to refuse the edit")
    lake_obj = kc.get("datalake", "movielens")
    assert condition(lake_obj, "Ready")["status"] == "False" and "user_features_copy" in condition(
        lake_obj, "SchemaCompatible")["message"]
    b_before = kc.get("featureset", "reads-b")

    # A new snapshot of user_features: reads-a is woken and reconciled within seconds.
    a2 = append(kc, props, second, "a2", table="user_features")
    reported = time.monotonic()
    eventually(lambda: f"is at snapshot {a2}" in condition(kc.get("featureset", "reads-a"), "SourceReady")["message"],
               timeout=15, interval=0.1, what="reads-a to be reconciled")
    assert time.monotonic() - reported < 15

    # ... and materializes the snapshot although the DataLake is not Ready.
    eventually(lambda: ready(kc, "reads-a", a2), timeout=180, what="reads-a to materialize the new snapshot")
    assert conditions(kc.get("datalake", "movielens"))["Ready"][0] == "False"
    assert lake_snapshot(kc, "user_features_copy") == b1

    # reads-b was not written to: nothing it reads changed.
    b_after = kc.get("featureset", "reads-b")
    assert b_after["metadata"]["resourceVersion"] == b_before["metadata"]["resourceVersion"]
