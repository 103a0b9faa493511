"""Kopf's bookkeeping on real objects against the real API server: a spec too large for a full
diff-base annotation is still reconciled and its changes still seen, and an unreadable progress
annotation neither stops the reconcile nor the deletion: the finalizer's is reset with a warning."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from tests.integration.conftest import Kubectl, Operator, condition, eventually, sample

DIFFBASE = "loom.dev/last-handled-configuration"
RECONCILE_PROGRESS = "loom.dev/reconcile"  # Kopf kept a reconcile's progress here before it ran in a loop
DELETION_PROGRESS = "loom.dev/deletion-policy"  # the DataLake finalizer's progress
MAX_ANNOTATIONS = 256 * 1024  # the API server's limit on all annotations of an object together


def _reconciled(kc: Kubectl, generation: int) -> dict[str, Any]:
    obj = kc.get("datalake", "movielens")
    assert obj["metadata"]["generation"] == generation, obj["metadata"]
    ready = condition(obj, "Ready")
    assert ready is not None and ready["reason"] and ready["observedGeneration"] == generation, obj.get("status")
    return obj


def _resting_lake() -> dict[str, Any]:
    lake = sample("datalake")
    lake["spec"]["ingest"] = []
    lake["spec"].pop("maintenance")
    return lake


def _create(kc: Kubectl, manifest: dict[str, Any]) -> None:
    """`kubectl create`: `apply` would keep a copy of the whole manifest in an annotation of its own."""
    kc.run("create", "-f", "-", stdin=yaml.safe_dump(manifest))


def _ok_count() -> float:
    return REGISTRY.get_sample_value("loom_reconcile_total", {"kind": "DataLake", "result": "ok"}) or 0.0


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    """WARNING lines of the bookkeeping module (the operator runs in this process)."""
    lines: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("loom.handlers.bookkeeping")
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


def test_spec_larger_than_the_annotation_limit_is_reconciled(kc: Kubectl, operator: Operator) -> None:
    lake = _resting_lake()
    for i, table in enumerate(lake["spec"]["tables"]):
        table["properties"] = {f"loom.test.p{j}": f"{i}-{j}-" + "x" * 4000 for j in range(32)}
    assert len(json.dumps(lake["spec"])) > MAX_ANNOTATIONS  # a full diff-base could not be stored
    _create(kc, lake)
    # Kopf writes its bookkeeping beside the reconcile loop, which may report first.
    first = eventually(lambda: (obj := _reconciled(kc, 1)) and DIFFBASE in obj["metadata"].get("annotations", {})
                       and obj, what="a condition and Kopf's diff-base on the large DataLake")
    assert len(first["metadata"]["annotations"][DIFFBASE]) < 200  # the digest, not the essence

    # A spec change is still an update with a digest for the base ...
    kc.run("patch", "datalake", "movielens", "--type", "json", "-p",
           json.dumps([{"op": "replace", "path": "/spec/tables/0/properties/loom.test.p0", "value": "changed"}]))
    eventually(lambda: _reconciled(kc, 2), what="the change observed")
    # ... and so is an annotation a user sets to ask for a reconcile, which leaves the generation as it is.
    before = eventually(lambda: _ok_count() > 0 and _ok_count())
    kc.run("annotate", "datalake", "movielens", "example.com/reconcile-requested=1")
    eventually(lambda: _ok_count() > before, what="a reconcile for the annotation")


def test_unreadable_bookkeeping_stops_neither_the_reconcile_nor_the_deletion(
    kc: Kubectl, operator: Operator, warnings: list[str],
) -> None:
    lake = _resting_lake()
    lake["metadata"]["annotations"] = {RECONCILE_PROGRESS: "not json {", DIFFBASE: "[1, 2",
                                       DELETION_PROGRESS: '{"retries": "x"}'}
    _create(kc, lake)
    eventually(lambda: _reconciled(kc, 1), what="the DataLake reconciled despite its garbage")

    kc.run("delete", "datalake", "movielens", "--wait=false")
    eventually(lambda: kc.run("get", "datalake", "movielens", check=False).returncode != 0, timeout=60,
               what="the deletion to finish")
    assert any(DELETION_PROGRESS in line and "invalid retries" in line for line in warnings), warnings

    def reset_event() -> bool:
        events = kc.run("get", "events", "--field-selector", "involvedObject.name=movielens", "-o",
                        "jsonpath={range .items[*]}{.type}/{.reason}{'\\n'}{end}").stdout
        return "Warning/BookkeepingReset" in events

    eventually(reset_event, what="a Warning event for the reset")
