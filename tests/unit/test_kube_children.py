"""How a child's status is read: a condition counts only when the controller wrote it for the object's
current generation, and a condition the controller does not report at all is no obstacle where it
is optional. (Applying, listing and pruning children run against a real API server in
tests/integration/test_cluster_serving.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from loom.drivers.kube_children import ChildKind, condition_status, current, holds, label_selector


def child(generation: int = 2, observed: int | None = 2, **conditions: str) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": [{"type": t, "status": s} for t, s in conditions.items()]}
    if observed is not None:
        status["observedGeneration"] = observed
    return {"metadata": {"name": "m", "generation": generation}, "status": status}


def test_a_selector_requires_every_label_in_a_stable_order() -> None:
    assert label_selector({"b": "2", "a": "1"}) == "a=1,b=2"


def test_a_childs_path_is_its_namespaced_collection_or_the_object() -> None:
    model = ChildKind("Model", "mlops.seldon.io/v1alpha1", "models")
    assert model.path("ml") == "/apis/mlops.seldon.io/v1alpha1/namespaces/ml/models"
    assert model.path("ml", "v3") == "/apis/mlops.seldon.io/v1alpha1/namespaces/ml/models/v3"


@pytest.mark.parametrize(("generation", "observed", "expected"), [(2, 2, True), (3, 2, False), (2, None, True)])
def test_a_status_is_current_when_it_observed_this_generation_or_records_none(
    generation: int, observed: int | None, expected: bool
) -> None:
    assert current(child(generation, observed)) is expected


def test_an_object_without_status_is_current_and_reports_no_condition() -> None:
    bare = {"metadata": {"name": "m", "generation": 1}}
    assert current(bare)
    assert condition_status(bare, "Ready") is None


@pytest.mark.parametrize(("status", "expected"), [("True", True), ("False", False), ("Unknown", False)])
def test_a_condition_reads_true_only_as_the_string_true(status: str, expected: bool) -> None:
    assert condition_status(child(Ready=status), "Ready") is expected
    assert condition_status(child(Ready=status), "Other") is None


@pytest.mark.parametrize(("obj", "expected"), [
    (child(ModelReady="True"), True),
    (child(ModelReady="True", Extra="True"), True),
    (child(ModelReady="True", Extra="Unknown"), False),   # reported and not True
    (child(), False),                                     # required but not reported
    (child(ModelReady="False"), False),
    (child(3, 2, ModelReady="True"), False),              # said of the previous spec
])
def test_holds_needs_the_required_conditions_and_the_optional_ones_where_reported(
    obj: dict[str, Any], expected: bool
) -> None:
    assert holds(obj, ("ModelReady",), ("Extra",)) is expected
