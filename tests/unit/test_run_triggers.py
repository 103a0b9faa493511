"""Which Job changes reach which owner (the Kubernetes executor's runs, watched in a cluster)."""

from __future__ import annotations

from typing import Any

import pytest

from loom.api.kinds import DATALAKE, FEATURESET, KINDS
from loom.domain.workloads import Phase
from loom.handlers.runs import job_phase, owners
from loom.handlers.triggers import ObjectRef


@pytest.mark.parametrize(("status", "phase"), [
    ({}, None),
    ({"active": 1, "startTime": "2026-01-01T00:00:00Z"}, Phase.RUNNING),
    ({"startTime": "2026-01-01T00:00:00Z", "conditions": [{"type": "Complete", "status": "True"}]}, Phase.SUCCEEDED),
    ({"conditions": [{"type": "SuccessCriteriaMet", "status": "True"}]}, Phase.SUCCEEDED),
    ({"conditions": [{"type": "Failed", "status": "True"}]}, Phase.FAILED),
    ({"active": 1, "conditions": [{"type": "Failed", "status": "False"}]}, Phase.RUNNING),
])
def test_job_phase(status: dict[str, Any], phase: Phase | None) -> None:
    assert job_phase(status) == phase


def test_owners_come_from_the_owner_labels_not_the_cronjob_owner_reference() -> None:
    labels = {"loom.dev/workload": "lake-ingest-x", "loom.dev/datalake": "movielens", "app": "other"}
    assert owners(labels, "ns", KINDS) == [ObjectRef(DATALAKE.plural, "ns", "movielens")]
    assert owners({"loom.dev/featureset": "users"}, "ns", KINDS) == [ObjectRef(FEATURESET.plural, "ns", "users")]
    assert owners({"loom.dev/workload": "x"}, "ns", KINDS) == []
