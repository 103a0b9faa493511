"""The informer: the newest of each watched object, what a reader's transform keeps of it, found by
its workload label without a LIST, and forgotten when deleted or relabelled."""

from __future__ import annotations

from typing import Any

from loom.domain.workloads import WORKLOAD_LABEL
from loom.drivers.informer import Informer


def child(name: str, workload: str | None, phase: str = "Pending") -> dict[str, Any]:
    labels = {WORKLOAD_LABEL: workload} if workload else {}
    return {"metadata": {"name": name, "namespace": "ml", "labels": labels}, "status": {"phase": phase}}


def test_objects_are_found_by_name_and_by_their_workload_label() -> None:
    informer = Informer(index_label=WORKLOAD_LABEL)
    informer.seen("trainjobs", "ml", "a-1", child("a-1", "a-1"))
    informer.seen("trainjobs", "ml", "b-1", child("b-1", "b-1"))
    informer.seen("trainjobs", "other", "a-1", child("a-1", "a-1"))
    assert informer.get("trainjobs", "ml", "a-1") == child("a-1", "a-1")
    assert informer.labelled("trainjobs", "ml", "a-1") == [child("a-1", "a-1")]
    assert informer.labelled("pytorchjobs", "ml", "a-1") == []  # another kind is not mixed up
    informer.seen("trainjobs", "ml", "a-1", child("a-1", "a-1", "Running"))  # the newest event wins
    assert informer.labelled("trainjobs", "ml", "a-1") == [child("a-1", "a-1", "Running")]


def test_a_deleted_or_relabelled_object_leaves_the_index() -> None:
    informer = Informer(index_label=WORKLOAD_LABEL)
    informer.seen("trainjobs", "ml", "a-1", child("a-1", "a-1"))
    informer.seen("trainjobs", "ml", "a-1", child("a-1", "b-1"))
    assert informer.labelled("trainjobs", "ml", "a-1") == [] and len(informer.labelled("trainjobs", "ml", "b-1")) == 1
    informer.seen("trainjobs", "ml", "a-1", None)
    assert informer.labelled("trainjobs", "ml", "b-1") == [] and informer.get("trainjobs", "ml", "a-1") is None
    informer.seen("trainjobs", "ml", "x", child("x", None))  # unlabelled: kept, not indexed
    assert informer.get("trainjobs", "ml", "x") is not None


def test_a_transform_keeps_only_what_its_reader_needs() -> None:
    informer = Informer(index_label=WORKLOAD_LABEL)
    informer.transform("trainjobs", lambda body: body["status"]["phase"])
    informer.seen("trainjobs", "ml", "a-1", child("a-1", "a-1", "Running"))
    informer.seen("jobs", "ml", "a-1", child("a-1", "a-1"))
    assert informer.labelled("trainjobs", "ml", "a-1") == ["Running"]
    assert informer.get("jobs", "ml", "a-1") == child("a-1", "a-1")  # other kinds keep their bodies
