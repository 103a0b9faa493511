"""Deletion through the real kube-apiserver and the operator: a user's `kubectl delete` finishes even
when the FeatureSet's Feast registry URL cannot be parsed or its Redis online store is down (then
after the configured bound, with a Warning naming what was left), and a deleted DataLake leaves no
schedule, run directory or lock file of its workloads in the local executor's state."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from loom import devcluster
from loom.drivers.iceberg_catalog import open_catalog
from tests.integration.conftest import Kubectl, eventually, free_port, sample, start_operator
from tests.integration.features.conftest import (
    LAKE_NAMESPACE,
    USER_FEATURES,
    datalake,
    featureset,
    lake_properties,
    wait_lake_ready,
)

ATTEMPTS = 2  # the operator's deletion_attempts here, each 1 s apart: a finalizer lets go within seconds


def events(kc: Kubectl, name: str) -> list[tuple[str, str, str]]:
    out = kc.run("get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json").stdout
    return [(e["type"], e["reason"], e["message"]) for e in json.loads(out)["items"]]


def gone(kc: Kubectl, kind: str, name: str) -> bool:
    return kc.run("get", kind, name, check=False).returncode != 0


def fill_lake(kc: Kubectl, lake: dict[str, Any]) -> None:
    """Three users' features in the lake table, reported by the DataLake, so a FeatureSet applies its view."""
    table = open_catalog("default", lake_properties(lake)).load_table((LAKE_NAMESPACE, USER_FEATURES))
    now = datetime.now(timezone.utc)
    rows = [{"userId": u, "ratingCount": u, "meanRating": 3.5, "favoriteGenre": "Drama", "eventTimestamp": now}
            for u in (1, 2, 3)]
    table.append(pa.Table.from_pylist(rows, schema=table.schema().as_arrow()))
    kc.run("annotate", "--overwrite", "datalake", "movielens", "test.loom.dev/nudge=filled")


def test_featureset_with_redis_down_is_deleted_after_the_bound_with_a_warning(
    kc: Kubectl, namespace: str, cluster: devcluster.Cluster, tmp_path: Path
) -> None:
    closed = f"127.0.0.1:{free_port()}"  # nothing listens there
    op = start_operator(namespace, feast_redis=closed, deletion_attempts=ATTEMPTS)
    with op.runner:
        lake = datalake(tmp_path)
        kc.apply(lake)
        wait_lake_ready(kc)
        fill_lake(kc, lake)
        kc.apply(featureset())
        eventually(lambda: kc.get("featureset", "user-features").get("status", {}).get("featureViewVersion"),
                   timeout=90, what="the feature view to be applied")
        kc.run("delete", "featureset", "user-features", "--timeout=60s")
        assert gone(kc, "featureset", "user-features")
        warnings = [m for t, r, m in events(kc, "user-features") if (t, r) == ("Warning", "CleanupIncomplete")]
    assert len(warnings) == 1, events(kc, "user-features")
    assert f"deleted after {ATTEMPTS} attempt(s) with leftovers: feature view user_features in the Feast registry " \
           f"{op.config.feast_registry_uri} left: kept until its online data can be removed" \
           in warnings[0]
    assert f"online data of feature view user_features in the redis online store {closed} left: " in warnings[0]
    assert "ConnectionError" in warnings[0]
    assert op.runner.exception is None, op.runner.output


def test_featureset_with_an_unparseable_registry_url_is_deleted_at_once(
    kc: Kubectl, namespace: str, cluster: devcluster.Cluster, tmp_path: Path
) -> None:
    op = start_operator(namespace, deletion_attempts=ATTEMPTS)
    with op.runner:
        lake = datalake(tmp_path)
        kc.apply(lake)
        wait_lake_ready(kc)
        fill_lake(kc, lake)
        kc.apply(featureset(registry={"uri": "postgresql://loom:s3cret@db\x01:5432/feast?%zz"}))
        eventually(lambda: kc.get("featureset", "user-features").get("status", {}).get("conditions"),
                   timeout=60, what="a status")
        kc.run("delete", "featureset", "user-features", "--timeout=30s")
        assert gone(kc, "featureset", "user-features")
    assert not [e for e in events(kc, "user-features") if e[1] == "CleanupIncomplete"], "nothing was applied"
    assert op.runner.exception is None, op.runner.output


def test_datalake_deletion_leaves_no_executor_state(
    kc: Kubectl, namespace: str, cluster: devcluster.Cluster, tmp_path: Path
) -> None:
    lake = sample("datalake")  # deletionPolicy Retain; scheduled and once ingests, scheduled compaction
    for ingest in lake["spec"]["ingest"]:
        ingest["source"]["uri"] = f"file://{tmp_path}/incoming/{ingest['name']}/*.parquet"
    op = start_operator(namespace, deletion_attempts=ATTEMPTS)
    state = op.config.state_dir
    with op.runner:
        kc.apply(lake)
        schedules, runs, locks = (state / part / namespace for part in ("schedules", "runs", "locks"))

        def started() -> bool:
            return len(list(schedules.glob("*.json"))) >= 3 and any(p.is_dir() for p in runs.glob("*"))

        eventually(started, timeout=90, what="the lake's schedules and its once-ingest's run")
        kc.run("delete", "datalake", "movielens", "--timeout=60s")
        assert gone(kc, "datalake", "movielens")
        left = [p for base in (schedules, runs, locks) if base.is_dir() for p in base.iterdir()]
    assert left == [], left
    assert op.runner.exception is None, op.runner.output
